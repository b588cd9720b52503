"""A staff member signs in to the admin in a real browser (Debian chromium through Playwright) with the
password and the code from an authenticator app, and with a recovery code; the sign-in page passes axe."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from config.two_factor import second_factor_enrol
from tests.axe import axe_violations, describe
from tests.hardening.test_two_factor import current_code, wait_out_device_throttle
from tests.pages.conftest import chromium  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "the-right-admin-password"


@pytest.fixture
def page(chromium, live_server, settings):  # noqa: F811
    settings.STAFF_REQUIRE_2FA = True
    context = chromium.new_context(base_url=live_server.url, locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def sign_in(page, code: str):
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Log in").click()


def test_staff_sign_in_with_the_authenticator_app_and_with_a_recovery_code(page):
    operator = get_user_model().objects.create_superuser("operator", "ops@example.org", PASSWORD)
    enrolment = second_factor_enrol(user=operator)

    page.goto("/admin/login/")
    violations = axe_violations(page)
    assert not violations, describe(violations)
    sign_in(page, "000000" if current_code(operator) != "000000" else "111111")
    assert "correct username, password and code" in page.locator(".errornote").inner_text()

    wait_out_device_throttle()
    sign_in(page, current_code(operator, steps_ahead=1))  # the app's next code: within django-otp's tolerance
    page.wait_for_url("**/admin/")
    assert page.get_by_role("heading", name="Review, training, challenges and newsletter").is_visible()

    page.context.clear_cookies()
    page.goto("/admin/")
    assert "/admin/login/" in page.url
    sign_in(page, enrolment["recovery_codes"][0])
    page.wait_for_url("**/admin/")
