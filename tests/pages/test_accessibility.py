"""The volunteer pages audited with axe-core (npm's, pinned) in Debian's chromium, at phone and desktop width.

Every page a volunteer sees, filled with the data that makes its tables, lists and badges appear
(a challenge, a leaderboard, photos pending, approved and rejected, a points history, a sent
newsletter), must show no axe violation at all, whatever its impact, at 390 and 1280 px.
"""

from __future__ import annotations

import datetime as dt
import io
import random

import pytest
from PIL import Image
from django.utils import timezone

from challenges import periods
from challenges import services as challenge_services
from collector import services as collector_services
from collector.models import PhotoStatus
from tests.axe import assert_accessible
from tests.factories import image_bytes, make_label, make_photo, make_reviewer, make_volunteer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
PASSWORD = "a-long-password-1"

PUBLIC_PAGES = ["/", "/leaderboard/", "/leaderboard/?period=all", "/gallery/", "/challenges/", "/signup/",
                "/signin/", "/capture/", "/newsletter/", "/newsletter/archive/"]
SIGNED_IN_PAGES = ["/", "/capture/", "/me/", "/leaderboard/", "/gallery/"]


@pytest.fixture
def site():
    """A challenge with entries, a ranked volunteer with approved, pending and rejected photos and a points
    history, a second volunteer, a featured photo and a sent newsletter edition."""
    mug, keys = make_label("mug"), make_label("keys", description="House or car keys")
    make_label("plant")
    today = periods.challenge_date_at(timezone.now())
    challenge = challenge_services.challenge_create(day=today, label=mug, title="Mugs in the wild",
                                                    prompt="Photograph a mug somewhere nobody would expect one.")
    challenge_services.challenge_create(day=today - dt.timedelta(days=1), label=keys, title="Keys, lost and found")
    challenge_services.challenge_create(day=today + dt.timedelta(days=1), label=keys, title="Keys again")
    reviewer = make_reviewer("rev")
    maria = make_volunteer("maria", password=PASSWORD)
    bo = make_volunteer("bo", consent_public_credit=False)
    photos = [make_photo(volunteer=maria, label=mug, image=image_bytes(seed=i)) for i in range(3)]
    photos.append(make_photo(volunteer=bo, label=keys, image=image_bytes(seed=3)))
    for photo in photos[:2] + photos[3:]:
        photo.challenge_id = challenge.pk if photo.label_id == mug.pk else None
        photo.save(update_fields=["challenge_id"])
        collector_services.photo_review(photo_id=photo.pk, reviewer=reviewer, decision="approve")
    collector_services.photo_review(photo_id=photos[2].pk, reviewer=reviewer, decision="reject", reason="blurry",
                                    note="Hold the phone still")
    make_photo(volunteer=maria, label=keys, image=image_bytes(seed=4))  # pending
    make_photo(volunteer=make_volunteer("cleo"), label=keys, image=image_bytes(seed=5), status=PhotoStatus.APPROVED,
               reviewer=reviewer)  # one maria may vote for
    challenge_services.photo_feature(photo_id=photos[0].pk, staff_user=reviewer)
    challenge_services.vote_cast(user=bo.user, photo_id=photos[1].pk)
    edition = _sent_edition()
    return {"maria": maria, "challenge": challenge, "edition": edition}


def _sent_edition():
    from newsletter import services as newsletter_services
    from newsletter.models import Edition, EditionStatus

    edition = newsletter_services.edition_compose(now=timezone.now() + dt.timedelta(days=7))
    Edition.objects.filter(pk=edition.pk).update(status=EditionStatus.SENT)
    return edition


def _browser_page(chromium, live_server, viewport):
    context = chromium.new_context(viewport=viewport, base_url=live_server.url, locale="en-US")
    context.set_default_timeout(10_000)
    return context, context.new_page()


def _sign_in(page) -> None:
    page.goto("/signin/")
    page.get_by_label("Display name").fill("maria")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin/" not in url)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_public_pages_have_no_axe_violation(chromium, live_server, site, width):
    context, page = _browser_page(chromium, live_server, WIDTHS[width])
    try:
        for path in [*PUBLIC_PAGES, f"/leaderboard/?challenge={site['challenge'].pk}",
                     f"/newsletter/archive/{site['edition'].pk}/"]:
            page.goto(path)
            assert_accessible(page, f"{path} signed out at {WIDTHS[width]['width']} px")
    finally:
        context.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_signed_in_pages_have_no_axe_violation(chromium, live_server, site, width):
    context, page = _browser_page(chromium, live_server, WIDTHS[width])
    try:
        _sign_in(page)
        for path in SIGNED_IN_PAGES:
            page.goto(path)
            assert_accessible(page, f"{path} signed in at {WIDTHS[width]['width']} px")
        # A vote: the flash message and the button that takes it back.
        page.goto("/gallery/")
        page.get_by_role("button", name="Vote for this keys by cleo").click()
        page.wait_for_selector(".messages .msg")
        assert_accessible(page, f"gallery after a vote at {WIDTHS[width]['width']} px")
    finally:
        context.close()


def test_the_home_page_without_a_challenge_has_no_axe_violation(chromium, live_server, site):
    from challenges.models import Challenge

    Challenge.objects.all().delete()
    for viewport in WIDTHS.values():
        context, page = _browser_page(chromium, live_server, viewport)
        try:
            page.goto("/")
            assert page.locator("#needed-labels li").count() == 3
            assert_accessible(page, f"home without a challenge at {viewport['width']} px")
        finally:
            context.close()


def test_a_sign_up_form_with_errors_has_no_axe_violation(chromium, live_server, site):
    context, page = _browser_page(chromium, live_server, WIDTHS["phone"])
    try:
        page.goto("/signup/")
        page.get_by_label("Display name", exact=True).fill("maria")
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Create my account").click()
        page.wait_for_selector(".error")
        assert_accessible(page, "sign-up with errors")
    finally:
        context.close()


def _noisy_jpeg(seed: int) -> dict:
    """About 120 kB that do not compress: an upload that lasts long enough to look at on a throttled link."""
    noise = Image.frombytes("RGB", (480, 360), random.Random(seed).randbytes(480 * 360 * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=80)
    return {"name": "IMG_0002.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}


FOCUS = "() => { const a = document.activeElement; return a && a !== document.body ? (a.id || a.tagName) : 'BODY' }"


class TestCameraPageForScreenReaders:
    def test_the_result_is_announced_and_the_focus_never_falls_to_the_body(self, chromium, live_server, site):
        from collector.models import Photo

        context, page = _browser_page(chromium, live_server, WIDTHS["phone"])
        context.clock.install()  # the page's timers run as usual, and can be run ahead (below)
        try:
            _sign_in(page)
            page.goto("/capture/")
            page.get_by_label("Photo", exact=True).set_input_files(_noisy_jpeg(7))
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions",
                     {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 40_000})
            posts = []
            page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/api/v1/photos/" in r.url else None)
            button = page.get_by_role("button", name="Upload")
            button.focus()
            page.keyboard.press("Enter")
            # While the bytes go out: the live region says so, the button keeps the focus and says it is busy.
            page.wait_for_function("() => { const p = document.getElementById('progress'); "
                                   "return !p.hidden && p.value > 0 && p.value < 100 }")
            page.keyboard.press("Enter")  # pressed again while busy: ignored, no second upload
            status = page.locator("#upload-status")
            assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
            assert status.inner_text() == "Uploading\u2026"
            assert page.evaluate(FOCUS) == "upload-button"
            assert button.get_attribute("aria-disabled") == "true"
            assert_accessible(page, "camera page while uploading")
            page.locator("#result").wait_for(state="visible")
            cdp.send("Network.emulateNetworkConditions",
                     {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
            photo = Photo.objects.filter(volunteer=site["maria"].user).latest("id")
            expected = f"Sent! Photo {photo.pk} of Mug: pending review."
            assert status.inner_text() == expected
            assert page.evaluate(FOCUS) == "upload-button"
            assert button.get_attribute("aria-disabled") is None
            # Still there for a screen reader that finishes its sentence first: every timer the page set for
            # the next minute fires now (a message cleared after a few seconds would be gone).
            page.clock.run_for(60_000)
            assert status.inner_text() == expected
            assert len(posts) == 1  # the second Enter while busy sent nothing
            assert_accessible(page, "camera page after an upload")
        finally:
            context.close()


def test_the_pages_a_link_or_a_mistake_lands_on_have_no_axe_violation(chromium, live_server, site, settings):
    """Pages reached from an email or by a mistake: the newsletter's confirm and unsubscribe pages (before and
    after their button, and with a broken link), a page that does not exist and the sign-in lock-out."""
    from newsletter import services as newsletter_services
    from newsletter import tokens

    from newsletter.models import Subscriber

    newsletter_services.subscriber_subscribe(email="reader@example.org")
    subscriber = Subscriber.objects.get(email="reader@example.org")
    settings.LOGIN_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT = 2
    for viewport in WIDTHS.values():
        context, page = _browser_page(chromium, live_server, viewport)
        where = f"at {viewport['width']} px"
        try:
            page.goto(f"/newsletter/confirm/{tokens.confirm_token(subscriber.pk)}/")
            assert_accessible(page, f"newsletter confirm {where}")
            page.get_by_role("button").first.click()
            page.wait_for_load_state()
            assert_accessible(page, f"newsletter confirmed {where}")
            page.goto(f"/newsletter/unsubscribe/{tokens.unsubscribe_token(subscriber.pk)}/")
            assert_accessible(page, f"newsletter unsubscribe {where}")
            page.get_by_role("button").first.click()
            page.wait_for_load_state()
            assert_accessible(page, f"newsletter unsubscribed {where}")
            page.goto("/newsletter/unsubscribe/not-a-token/")
            assert_accessible(page, f"newsletter broken link {where}")
            assert page.goto("/no-such-page/").status == 404
            assert_accessible(page, f"404 {where}")
            for _ in range(3):
                page.goto("/signin/")
                page.get_by_label("Display name").fill("maria")
                page.get_by_label("Password").fill("not-her-password")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_load_state()
            assert "Too many failed sign-ins" in page.content()
            assert_accessible(page, f"locked out {where}")
        finally:
            context.close()
        from axes.models import AccessAttempt

        AccessAttempt.objects.all().delete()
