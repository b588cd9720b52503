"""The volunteer's journey in a real browser (Debian chromium through Playwright), at phone size."""

import pytest

from collector import services as collector_services
from collector.models import Photo, PhotoStatus, Volunteer
from tests.factories import image_bytes, make_label, make_reviewer
from tests.pages.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _jpeg(seed: int) -> dict:
    return {"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": image_bytes(size=(800, 600), seed=seed)}


def _image_loaded(page, selector: str) -> None:
    """Wait until the image has really arrived (lazy images load once scrolled to)."""
    page.locator(selector).first.scroll_into_view_if_needed()
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0 }", arg=selector
    )


def _sign_up(page, name: str) -> None:
    page.goto("/signup/")
    page.get_by_label("Display name", exact=True).fill(name)
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_label("My photos may be used to train").check()
    page.get_by_label("Show my display name").check()
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url("**/capture/")


class TestVolunteerJourney:
    def test_it_signs_up_uploads_and_sees_the_photo_pending(self, phone):
        make_label("mug")
        _sign_up(phone, "maria")
        screenshot(phone, "capture")
        phone.get_by_label("What does the photo show?").select_option("mug")
        phone.get_by_label("Photo", exact=True).set_input_files(_jpeg(1))
        phone.get_by_role("button", name="Upload").click()
        result = phone.locator("#result")
        result.wait_for(state="visible")
        assert "Pending review" in result.inner_text()
        photo = Photo.objects.get()
        assert photo.volunteer.username == "maria" and photo.status == PhotoStatus.PENDING
        assert photo.idempotency_key  # the page sent one
        # The thumbnail shown is the stored one.
        _image_loaded(phone, "#result-img")
        screenshot(phone, "capture-result")

        phone.goto("/me/")
        row = phone.locator(f'[data-photo-id="{photo.pk}"]')
        assert "Pending review" in row.inner_text()
        _image_loaded(phone, f'[data-photo-id="{photo.pk}"] img')
        screenshot(phone, "me")
        assert phone.js_errors == []

    def test_it_retries_a_lost_response_with_the_same_key_and_stores_one_photo(self, phone):
        make_label("mug")
        _sign_up(phone, "maria")
        sent = []

        def lose_first_response(route):
            sent.append(route.request.header_value("Idempotency-Key"))
            if len(sent) == 1:
                route.fetch()  # the server receives and stores the photo ...
                route.abort("connectionreset")  # ... but the phone never hears back
            else:
                route.continue_()

        phone.route("**/api/v1/photos/", lose_first_response)
        phone.get_by_label("What does the photo show?").select_option("mug")
        phone.get_by_label("Photo", exact=True).set_input_files(_jpeg(2))
        phone.get_by_role("button", name="Upload").click()
        phone.locator("#result").wait_for(state="visible")
        assert len(sent) == 2 and sent[0] == sent[1] and len(sent[0]) == 36
        assert "already received earlier" in phone.locator("#result").inner_text()
        assert Photo.objects.count() == 1
        assert Photo.objects.get().idempotency_key == sent[0]
