"""The volunteer's journey in a real browser (Debian chromium through Playwright), at phone size."""

import datetime as dt
import io
import random

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from challenges import periods
from challenges import services as challenge_services
from challenges.models import Challenge, Vote
from collector import services as collector_services
from collector.models import Photo, PhotoStatus
from tests.factories import image_bytes, make_label, make_reviewer
from tests.pages.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _jpeg(seed: int) -> dict:
    return {"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": image_bytes(size=(800, 600), seed=seed)}


def _noisy_jpeg(seed: int) -> dict:
    """About 120 kB that do not compress: big enough to watch the progress bar on a throttled connection."""
    noise = Image.frombytes("RGB", (480, 360), random.Random(seed).randbytes(480 * 360 * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=80)
    return {"name": "IMG_0002.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}


def _image_loaded(page, selector: str) -> None:
    """Wait until the image has really arrived (lazy images load once scrolled to)."""
    page.locator(selector).first.scroll_into_view_if_needed()
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0 }", arg=selector
    )


def _check(page, name: str) -> None:
    """Screenshot at phone size, and the basics a screen reader needs: alt texts, labelled controls, one h1,
    and nothing wider than the screen."""
    screenshot(page, name)
    problems = page.evaluate("""() => {
        const out = [];
        document.querySelectorAll("img").forEach(i => { if (!i.hasAttribute("alt")) out.push("img without alt: " + i.src); });
        document.querySelectorAll("input:not([type=hidden]), select, textarea").forEach(c => {
            if (!(c.labels && c.labels.length) && !c.getAttribute("aria-label")) out.push("unlabelled control: " + c.name);
        });
        document.querySelectorAll("button").forEach(b => { if (!b.textContent.trim() && !b.getAttribute("aria-label")) out.push("button without name"); });
        if (document.querySelectorAll("h1").length !== 1) out.push("h1 count " + document.querySelectorAll("h1").length);
        if (document.documentElement.scrollWidth > window.innerWidth) out.push("wider than the screen: " + document.documentElement.scrollWidth);
        return out;
    }""")
    assert problems == [], (name, problems)
    assert page.foreign_requests == [], (name, page.foreign_requests)


def _sign_up(page, name: str) -> None:
    page.goto("/signup/")
    page.get_by_label("Display name", exact=True).fill(name)
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_label("My photos may be used to train").check()
    page.get_by_label("Show my display name").check()
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url("**/capture/")


class TestVolunteerJourney:
    def test_it_signs_up_uploads_is_approved_ranked_and_voted_for(self, new_phone):
        mug = make_label("mug")
        make_label("plant")
        challenge = challenge_services.challenge_create(
            day=periods.challenge_date_at(timezone.now()), label=mug, title="Mugs in the wild",
            prompt="Photograph a mug somewhere nobody would expect one.")
        maria = new_phone()
        maria.goto("/signup/")
        _check(maria, "signup")
        _sign_up(maria, "maria")

        # The camera page offers today's challenge first; upload through it on a slow connection.
        assert maria.get_by_label("What does the photo show?").input_value() == "challenge"
        _check(maria, "capture")
        maria.get_by_label("Photo", exact=True).set_input_files(_noisy_jpeg(1))
        cdp = maria.context.new_cdp_session(maria)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions",
                 {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 120_000})
        maria.get_by_role("button", name="Upload").click()
        # The progress bar moves while the bytes go out.
        maria.wait_for_function("() => { const p = document.getElementById('progress'); "
                                "return !p.hidden && p.value > 0 && p.value < 100 }")
        _check(maria, "capture-progress")
        result = maria.locator("#result")
        result.wait_for(state="visible")
        assert "Pending review" in result.inner_text()
        cdp.send("Network.emulateNetworkConditions",
                 {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        photo = Photo.objects.get()
        assert photo.volunteer.username == "maria" and photo.status == PhotoStatus.PENDING
        assert photo.challenge_id == challenge.pk and photo.label == mug
        _image_loaded(maria, "#result-img")  # the stored thumbnail, shown to its owner
        _check(maria, "capture-result")

        maria.goto("/me/")
        row = maria.locator(f'[data-photo-id="{photo.pk}"]')
        assert "Pending review" in row.inner_text()
        _image_loaded(maria, f'[data-photo-id="{photo.pk}"] img')

        # A reviewer approves it: 10 points + 20 challenge bonus.
        collector_services.photo_review(photo_id=photo.pk, reviewer=make_reviewer(), decision="approve")
        maria.reload()
        assert "Approved" in row.inner_text()
        assert "+20" in maria.locator("table").inner_text()
        _check(maria, "me")

        maria.goto("/leaderboard/")
        first = maria.locator("table.board tbody tr").first
        assert first.inner_text().split() == ["1", "maria", "(you)", "30", "1"]
        _check(maria, "leaderboard")
        maria.goto("/")
        assert "Mugs in the wild" in maria.locator("#challenge-h").inner_text()
        assert "maria" in maria.locator("#live-board").inner_text()

        # Someone else finds it in the gallery and votes for it, then takes the vote back.
        jo = new_phone()
        _sign_up(jo, "jo")
        jo.goto("/gallery/")
        card = jo.locator(f'[data-photo-id="{photo.pk}"]')
        assert card.locator(".votes").inner_text() == "0 votes"
        _image_loaded(jo, f'[data-photo-id="{photo.pk}"] img')
        card.get_by_role("button", name="Vote for this mug by maria").click()
        jo.wait_for_load_state()
        assert card.locator(".votes").inner_text() == "1 vote"
        assert Vote.objects.filter(photo=photo, voter__username="jo").count() == 1
        _check(jo, "gallery")
        maria.goto("/leaderboard/")
        assert maria.locator("table.board tbody tr").first.inner_text().split()[-2:] == ["32", "1"]  # + a vote
        card.get_by_role("button", name="Take back your vote").click()
        jo.wait_for_load_state()
        assert card.locator(".votes").inner_text() == "0 votes"
        assert not Vote.objects.exists()

        # The home page's challenge board refreshes itself (every 60 s) while it is open.
        jo.clock.install()
        jo.goto("/")
        board = jo.locator("#live-board tbody tr").first
        assert board.inner_text().split() == ["1", "maria", "30", "1"]
        second = collector_services.photo_create(
            user=photo.volunteer, image_file=SimpleUploadedFile("b.jpg", image_bytes(seed=7)), label_slug="mug",
            challenge_id=challenge.pk).photo
        collector_services.photo_review(photo_id=second.pk, reviewer=make_reviewer(), decision="approve")
        jo.clock.run_for(61_000)
        expect(board).to_contain_text("60")  # polled by Playwright, not by the page's (frozen) timers
        assert board.inner_text().split() == ["1", "maria", "60", "2"]
        _check(jo, "home")
        jo.goto("/challenges/")
        _check(jo, "challenges")
        assert maria.js_errors == [] and jo.js_errors == []

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

    def test_it_explains_a_closed_challenge_and_stops_offering_it(self, phone):
        mug = make_label("mug")
        challenge = challenge_services.challenge_create(day=periods.challenge_date_at(timezone.now()), label=mug,
                                                        title="Mugs in the wild")
        _sign_up(phone, "maria")
        assert phone.get_by_label("What does the photo show?").input_value() == "challenge"
        # The page stays open past the end of the challenge.
        Challenge.objects.filter(pk=challenge.pk).update(ends_at=timezone.now() - dt.timedelta(seconds=1))
        phone.get_by_label("Photo", exact=True).set_input_files(_jpeg(3))
        phone.get_by_role("button", name="Upload").click()
        error = phone.locator("#upload-status .error")
        error.wait_for()
        assert "The challenge \u201cMugs in the wild\u201d closed at" in error.inner_text()
        assert not Photo.objects.exists()
        # The choices were fetched again from the API: the challenge is gone, the label stays.
        phone.wait_for_function("() => !document.querySelector('#id_target option[value=challenge]')")
        options = phone.locator("#id_target option").all_inner_texts()
        assert options == ["Pick a label", "Mug"]
        phone.get_by_label("What does the photo show?").select_option("mug")
        phone.get_by_role("button", name="Upload").click()
        phone.locator("#result").wait_for(state="visible")
        assert Photo.objects.get().challenge_id is None
        assert phone.js_errors == []
