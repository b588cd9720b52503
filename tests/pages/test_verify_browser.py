"""The verify page on a phone (Debian's chromium through Playwright): three volunteers judge a photo by keyboard
and the community approves it; the page has no axe violation."""

from __future__ import annotations

import pytest

from collector.models import PhotoReview, PhotoStatus, Verification
from tests.axe import assert_accessible
from tests.factories import make_label, make_photo, make_volunteer
from tests.pages.test_browser import _check, _image_loaded

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, name: str) -> None:
    page.goto("/signin/")
    page.get_by_label("Display name").fill(name)
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin/" not in url)


def test_three_volunteers_approve_a_photo_by_keyboard(new_phone, settings):
    settings.COMMUNITY_REVIEW_MIN_APPROVED = 1
    settings.COMMUNITY_REVIEW_GOLD_EVERY = 1000
    tulip, rose = make_label("tulip", name="Tulip"), make_label("rose", name="Rose")
    photo = make_photo(volunteer=make_volunteer("sender"), label=tulip)
    names = ["ana", "ben", "cai"]
    for name in names:
        make_photo(volunteer=make_volunteer(name, password="a-long-password-1"), label=rose,
                   status=PhotoStatus.APPROVED)
    for index, name in enumerate(names):
        page = new_phone()
        sign_in(page, name)
        page.goto("/verify/")
        assert page.get_by_role("heading", name="Is this tulip?").is_visible()
        _image_loaded(page, ".verify-photo img")
        if index == 0:
            _check(page, "verify")
            assert_accessible(page, "verify page")
        page.keyboard.press("y")
        page.wait_for_url("**/verify/")
        page.wait_for_selector("#verify-empty")
        assert "your verdict on photo" in page.inner_text("main")
        page.keyboard.press("y")  # nothing left to judge: a stray key does nothing
        page.context.close()
    assert Verification.objects.filter(photo=photo, verdict="agree").count() == 3
    photo.refresh_from_db()
    assert photo.status == PhotoStatus.APPROVED
    assert PhotoReview.objects.get(photo=photo).by_community
