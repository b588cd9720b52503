"""The Content-Security-Policy as a real browser applies it: no page of ours trips it, the camera page included."""

import pytest

from tests.factories import image_bytes, make_label, make_volunteer
from tests.pages.conftest import chromium, new_phone  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watch_violations(page) -> list[str]:
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.error('Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI))")
    return violations


class TestPolicyInTheBrowser:
    def test_no_page_trips_the_policy_and_the_camera_script_runs(self, new_phone):  # noqa: F811
        make_label("mug")
        make_volunteer("camera-user", password="camera-password-1")
        phone = new_phone()
        violations = watch_violations(phone)
        for path in ["/", "/leaderboard/", "/gallery/", "/signin/", "/newsletter/", "/admin/login/", "/api/docs/"]:
            phone.goto(path)
            phone.wait_for_load_state("networkidle")
        phone.goto("/api/docs/")
        phone.locator(".swagger-ui .info").wait_for()  # Swagger UI's set-up script ran

        phone.goto("/signin/")
        phone.get_by_label("Display name").fill("camera-user")
        phone.get_by_label("Password").fill("camera-password-1")
        phone.get_by_role("button", name="Sign in").click()
        phone.goto("/capture/")
        phone.get_by_label("Photo", exact=True).set_input_files(
            {"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": image_bytes(size=(800, 600), seed=3)})
        # capture.js shows the chosen photo from a blob: URL before uploading.
        phone.wait_for_function("() => { const p = document.getElementById('preview');"
                                " return p && p.src.startsWith('blob:') && p.complete && p.naturalWidth > 0 }")
        assert violations == []
        assert phone.js_errors == []
