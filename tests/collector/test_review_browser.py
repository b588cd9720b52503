"""The reviewer's pages in a real browser (Debian chromium through Playwright): the review queue by keyboard,
accessibility (axe-core) of the review pages at phone and desktop widths, and admin lists that fit 1280 px."""

from __future__ import annotations

import time

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from collector.models import Photo, PhotoReview, PhotoStatus
from collector.services import reviewers_group_sync
from tests.axe import axe_violations, describe
from tests.factories import image_bytes, make_label, make_photo, make_volunteer
from tests.pages.conftest import CHROMIUM_ARGS, chromium, screenshot  # noqa: F401 (chromium: the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUEUE = "/admin/collector/photo/review/"
PHONE, DESKTOP = 390, 1280
ACTIVE_PENDING_CARD = """() => {
    const a = document.activeElement;
    return a && a.classList.contains("review-card") && a.dataset.state === "pending" ? a.dataset.photoId : null;
}"""


@pytest.fixture
def browser_as(chromium, live_server):  # noqa: F811
    """browser_as(user, password, width): a signed-in admin page of that width (own cookies)."""
    contexts = []

    def make(username: str, password: str, width: int = DESKTOP):
        context = chromium.new_context(viewport={"width": width, "height": 900}, base_url=live_server.url,
                                       locale="en-US", device_scale_factor=1)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        page.goto("/admin/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/admin/")
        return page

    yield make
    for context in contexts:
        context.close()


def group_reviewer(username: str):
    """A reviewer as an operator makes one (`reviewers_group --add`); the group is made again here because
    these transactional tests start from flushed tables, without the migration's rows."""
    get_user_model().objects.create_user(username=username, password="review-pass-1")
    reviewers_group_sync(add_usernames=[username])


def pending_queue(n: int, labels) -> list[Photo]:
    volunteers = [make_volunteer(f"sender{i}") for i in range(3)]
    return [make_photo(volunteer=volunteers[i % 3], label=labels[i % len(labels)], image=image_bytes(seed=1000 + i))
            for i in range(n)]


def wait_for_pending_card(page) -> int:
    return int(page.wait_for_function(ACTIVE_PENDING_CARD).json_value())


class TestReviewByKeyboard:
    def test_a_reviewer_decides_50_photos_by_keyboard(self, browser_as):
        daisy, rose, tulip = make_label("daisy"), make_label("rose"), make_label("tulip")
        photos = pending_queue(50, [daisy, tulip])
        ids = [p.pk for p in photos]
        group_reviewer("rita")
        # The plan, in queue order: reject five with different reasons (r, then the reason's digit), relabel
        # one to rose and then approve it, approve three at once as a selection (x, x, x, a), approve the rest.
        rejects = {ids[4]: "1", ids[9]: "2", ids[17]: "3", ids[33]: "4", ids[45]: "5"}
        relabel = ids[6]
        selection = ids[20:23]
        page = browser_as("rita", "review-pass-1")

        page.goto(QUEUE)
        started, keys, decided, relabelled = time.perf_counter(), 0, 0, False
        while decided < 50:
            photo_id = wait_for_pending_card(page)
            if photo_id in rejects:
                page.keyboard.press("r")
                page.keyboard.press(rejects[photo_id])
                keys, decided = keys + 2, decided + 1
            elif photo_id == relabel and not relabelled:
                page.keyboard.press("l")
                page.keyboard.type("ro")  # the label list's own type-ahead picks "rose"
                assert page.locator("#prompt-label").input_value() == "rose"
                page.keyboard.press("Enter")
                keys, relabelled = keys + 4, True
                page.wait_for_function(f"() => document.getElementById('photo-{photo_id}').dataset.label === 'rose'")
            elif photo_id == selection[0]:
                for key in ("x", "ArrowRight", "x", "ArrowRight", "x", "a"):
                    page.keyboard.press(key)
                keys, decided = keys + 6, decided + 3
            else:
                page.keyboard.press("a")
                keys, decided = keys + 1, decided + 1
        page.wait_for_function("() => document.getElementById('review-status').textContent.includes('queue is empty')")
        elapsed = time.perf_counter() - started
        print(f"\n50 photos reviewed by keyboard in {elapsed:.1f} s ({keys} keys): "
              f"{50 / elapsed * 60:.0f} reviews per minute")

        states = {p.pk: (p.status, p.rejection_reason, p.label.slug)
                  for p in Photo.objects.select_related("label").filter(pk__in=ids)}
        reasons = {"1": "blurry", "2": "wrong_label", "3": "duplicate", "4": "inappropriate", "5": "other"}
        for photo_id in ids:
            if photo_id in rejects:
                assert states[photo_id][:2] == (PhotoStatus.REJECTED, reasons[rejects[photo_id]]), photo_id
            else:
                assert states[photo_id][:2] == (PhotoStatus.APPROVED, ""), photo_id
        assert states[relabel] == (PhotoStatus.APPROVED, "", "rose")
        assert sum(1 for s in states.values() if s[2] == "rose") == 1
        # One audit row per decision, plus the relabel: nothing decided twice.
        assert PhotoReview.objects.filter(photo_id__in=ids).count() == 51
        assert page.js_errors == []
        screenshot(page, "review-queue-done")

    def test_keys_pressed_while_the_next_batch_loads_never_re_decide_the_last_photo(self, browser_as, monkeypatch):
        from collector import review_views

        monkeypatch.setattr(review_views, "PAGE_SIZE", 2)
        photos = pending_queue(4, [make_label("daisy")])
        group_reviewer("rita")
        page = browser_as("rita", "review-pass-1")
        page.goto(QUEUE)
        held = []  # the next batch's page load, held back until the keys below have been pressed

        def hold_page_loads(route):
            if route.request.method == "GET":
                held.append(route)
            else:
                route.continue_()

        page.route("**/admin/collector/photo/review/*", hold_page_loads)
        assert wait_for_pending_card(page) == photos[0].pk
        page.keyboard.press("a")
        assert wait_for_pending_card(page) == photos[1].pk
        page.keyboard.press("a")  # the batch's last photo: the next batch is fetched now
        while not held:
            page.wait_for_timeout(20)
        for key in ("r", "1", "a", "l", "x", "a"):  # a reviewer who keeps going at human speed
            page.keyboard.press(key)
            page.wait_for_timeout(60)
        assert "Loading the next photos" in page.locator("#review-status").inner_text()
        assert page.locator("#reason-prompt").is_hidden() and page.locator("#label-prompt").is_hidden()
        for route in held:
            route.continue_()
        assert wait_for_pending_card(page) == photos[2].pk

        first, last = (Photo.objects.get(pk=p.pk) for p in photos[:2])
        assert (first.status, last.status) == (PhotoStatus.APPROVED, PhotoStatus.APPROVED)
        assert PhotoReview.objects.filter(photo_id__in=[p.pk for p in photos]).count() == 2, "decided once each"
        assert set(Photo.objects.filter(pk__in=[p.pk for p in photos[2:]]).values_list("status", flat=True)) == {
            PhotoStatus.PENDING}
        page.keyboard.press("a")  # keys work again once the next photos are shown
        page.wait_for_function(f"() => document.getElementById('photo-{photos[2].pk}').dataset.state === 'approved'")
        assert page.js_errors == []

    def test_a_double_click_decides_once_and_the_live_region_says_so(self, browser_as):
        photos = pending_queue(3, [make_label("daisy")])
        group_reviewer("rita")
        page = browser_as("rita", "review-pass-1")
        page.goto(QUEUE)
        first = page.locator(f"#photo-{photos[0].pk}")
        first.get_by_role("button", name="Approve").dblclick()
        page.wait_for_function(f"() => document.getElementById('photo-{photos[0].pk}').dataset.state === 'approved'")
        assert page.locator("#review-status").inner_text().startswith(f"Photo #{photos[0].pk} approved.")
        assert PhotoReview.objects.filter(photo=photos[0]).count() == 1
        # Focus went on to the next photo; Reject asks for the reason with real buttons.
        assert wait_for_pending_card(page) == photos[1].pk
        reasons = page.locator("#reason-prompt")
        assert not reasons.is_visible() and not page.locator("#label-prompt").is_visible()
        page.locator(f"#photo-{photos[1].pk}").get_by_role("button", name="Reject…").click()
        assert reasons.is_visible() and reasons.inner_text().startswith(f"Reject photo #{photos[1].pk} as:")
        assert not page.locator("#label-prompt").is_visible()
        page.get_by_role("button", name="2 Wrong label").click()
        assert not reasons.is_visible()
        page.wait_for_function(f"() => document.getElementById('photo-{photos[1].pk}').dataset.state === 'rejected'")
        assert Photo.objects.get(pk=photos[1].pk).rejection_reason == "wrong_label"
        assert wait_for_pending_card(page) == photos[2].pk
        assert page.js_errors == []


BUTTON_LOOK = """(button) => {
    const style = getComputedStyle(button);
    const primary = getComputedStyle(document.documentElement).getPropertyValue("--default-button-bg").trim();
    const probe = document.createElement("span");  // the variable's colour as the browser writes colours
    probe.style.color = primary; document.body.appendChild(probe);
    const primaryColour = getComputedStyle(probe).color; probe.remove();
    return {background: style.backgroundColor, weight: Number(style.fontWeight), primary: primaryColour};
}"""


class TestApproveIsTheStrongestAction:
    def test_approve_is_drawn_as_the_primary_button_and_no_weaker_than_reject_or_relabel(self, browser_as):
        """The action a reviewer takes most is the admin's primary (default) button, bold, on the queue's cards,
        its selection bar and a photo's own page; Reject and Relabel are the admin's ordinary buttons."""
        photos, copy, decided = audit_data()
        group_reviewer("rita")
        page = browser_as("rita", "review-pass-1")
        looks = {}
        page.goto(QUEUE)
        wait_for_pending_card(page)
        card = page.locator(f"#photo-{photos[0].pk}")
        looks["card approve"] = card.get_by_role("button", name="Approve").evaluate(BUTTON_LOOK)
        looks["card reject"] = card.get_by_role("button", name="Reject…").evaluate(BUTTON_LOOK)
        looks["selection approve"] = page.get_by_role("button", name="Approve selected").evaluate(BUTTON_LOOK)
        page.goto(f"/admin/collector/photo/{copy.pk}/change/")
        looks["page approve"] = page.locator("#approve-button").evaluate(BUTTON_LOOK)
        looks["page reject"] = page.locator("#reject-button").evaluate(BUTTON_LOOK)
        looks["page relabel"] = page.get_by_role("button", name="Relabel only").evaluate(BUTTON_LOOK)
        for name in ("card approve", "selection approve", "page approve"):
            assert looks[name]["background"] == looks[name]["primary"], (name, looks[name])
            assert looks[name]["weight"] >= 700, (name, looks[name])
        for name in ("card reject", "page reject", "page relabel"):
            assert looks[name]["background"] != looks[name]["primary"], (name, looks[name])
            assert looks[name]["weight"] < looks["page approve"]["weight"], (name, looks[name])


def audit_data():
    """Enough rows that every review page has its tables, filters, history and near-duplicate links."""
    daisy, tulip = make_label("daisy"), make_label("tulip")
    photos = pending_queue(4, [daisy, tulip])
    copy = make_photo(volunteer=make_volunteer("copycat"), label=daisy, image=image_bytes(seed=1000))
    assert copy.near_duplicate_of_id == photos[0].pk
    Photo.objects.filter(pk=photos[1].pk).update(predicted_label="tulip", predicted_confidence=0.61)
    decided = make_photo(label=daisy, status=PhotoStatus.REJECTED)
    return photos, copy, decided


class TestAccessibility:
    @pytest.mark.parametrize("width", [PHONE, DESKTOP])
    def test_the_review_pages_have_no_axe_violations(self, browser_as, width):
        photos, copy, decided = audit_data()
        group_reviewer("rita")
        page = browser_as("rita", "review-pass-1", width)
        pages = {
            "review queue": QUEUE,
            "photo list": "/admin/collector/photo/",
            "photo list, all": "/admin/collector/photo/?status=all",
            "photo page": f"/admin/collector/photo/{copy.pk}/change/",
            "decided photo page": f"/admin/collector/photo/{decided.pk}/change/",
            "review history": "/admin/collector/photoreview/",
            "admin index": "/admin/",
        }
        found = {}
        for name, url in pages.items():
            page.goto(url)
            screenshot(page, f"a11y-{name.replace(' ', '-').replace(',', '')}-{width}")
            found[name] = axe_violations(page)
            if name in ("review queue", "photo page", "decided photo page", "admin index"):
                # Nothing wider than the screen (lists may scroll their table inside its own box).
                assert page.evaluate("() => document.documentElement.scrollWidth") <= width, name
        # The queue's prompts are part of the page too.
        page.goto(QUEUE)
        wait_for_pending_card(page)
        page.keyboard.press("r")
        found["reason prompt"] = axe_violations(page)
        page.keyboard.press("Escape")
        page.keyboard.press("l")
        found["label prompt"] = axe_violations(page)
        found = {name: describe(violations) for name, violations in found.items() if violations}
        assert not found, "\n".join(f"{name} at {width} px:\n{text}" for name, text in found.items())


class TestAdminLists:
    def test_every_admin_list_fits_1280_px_without_sideways_scrolling(self, browser_as):
        audit_data()
        get_user_model().objects.create_superuser("root", "root@example.org", "root-pass-12345")
        _other_rows()
        page = browser_as("root", "root-pass-12345", DESKTOP)
        wide, with_rows, empty = {}, [], []
        for model in admin.site._registry:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            for query in ("", "?status=all") if model is Photo else ("",):
                page.goto(url + query)
                # The page itself, and the results table, which the admin scrolls inside its own box.
                width = page.evaluate("""() => Math.max(document.documentElement.scrollWidth, ...Array.from(
                    document.querySelectorAll('#changelist .results'),
                    e => e.scrollWidth - e.clientWidth + window.innerWidth))""")
                if width > DESKTOP:
                    wide[url + query] = width
                    screenshot(page, f"too-wide-{model._meta.model_name}")
                (with_rows if page.locator("#result_list").count() else empty).append(url + query)
        assert wide == {}
        print(f"\n{len(with_rows)} admin lists with rows fit 1280 px; empty: {empty}")
        assert len(with_rows) >= 19


def _other_rows():
    """A row or more in the other apps' lists (an empty list has no table to overflow)."""
    from challenges import periods
    from challenges import services as challenge_services
    from collector.services import photo_review
    from newsletter.services import edition_compose, subscriber_subscribe
    from tests.factories import make_reviewer
    from tests.training.test_admin import finished_run
    from config.models import SchedulerJobRun
    from training.models import ModelVersion, RunStatus, ServiceChange, TrainingRun, VersionStatus

    finished_run()
    TrainingRun.objects.create(status=RunStatus.SKIPPED, started_at=timezone.now(), finished_at=timezone.now())
    daisy = make_label("daisy")
    challenge_services.challenge_create(day=periods.challenge_date_at(timezone.now()), label=daisy,
                                        title="Daisies at dusk", prompt="A daisy as the light goes.")
    reviewer = make_reviewer("approver")
    reviewers_group_sync(add_usernames=["approver"])
    for photo in Photo.objects.filter(status=PhotoStatus.PENDING)[:2]:
        photo_review(photo_id=photo.pk, reviewer=reviewer, decision="approve")  # points, scores, gallery
    subscriber_subscribe(email="reader@example.org")
    edition_compose()
    run = TrainingRun.objects.exclude(dataset_version=None).first()
    ModelVersion.objects.create(version=4, status=VersionStatus.PUBLISHED, in_service=True, run=run,
                                dataset_version=run.dataset_version, strategy="head_only", labels=["cat", "dog"],
                                metrics={"float32": {"accuracy": 0.81}, "int8": {"accuracy": 0.8}},
                                published_at=timezone.now())
    ServiceChange.objects.create(from_version=3, to_version=4, reason="published", changed_by=reviewer)
    SchedulerJobRun.objects.create(job_id="train-nightly", scheduled_for=timezone.now(), finished_at=timezone.now(),
                                   exit_code=0)
    voter = make_volunteer("voter")
    challenge_services.vote_cast(user=voter.user, photo_id=Photo.objects.filter(status=PhotoStatus.APPROVED)
                                 .first().pk)


class TestModelHelps:
    def test_the_reviewer_previews_and_confirms_approving_where_the_model_agrees(self, browser_as, settings):
        from collector.services import photo_prediction_record

        settings.REVIEW_AGREE_THRESHOLDS = [0.8, 0.9]
        daisy, tulip = make_label("daisy"), make_label("tulip")
        photos = pending_queue(4, [daisy])
        sure, unsure, disagrees, unguessed = photos
        photo_prediction_record(photo_id=sure.pk, model_version=3, variant="float32",
                                top=[("daisy", 0.93), ("tulip", 0.07)])
        photo_prediction_record(photo_id=unsure.pk, model_version=3, variant="float32",
                                top=[("daisy", 0.6), ("tulip", 0.4)])
        photo_prediction_record(photo_id=disagrees.pk, model_version=3, variant="float32",
                                top=[("tulip", 0.91), ("daisy", 0.09)])
        group_reviewer("rita")
        page = browser_as("rita", "review-pass-1")
        page.goto(QUEUE + "?order=model_disagrees")
        first = page.locator(".review-card").first
        assert first.get_attribute("id") == f"photo-{disagrees.pk}", "model disagrees first"
        assert "Model v3 says\ntulip (0.91) (model disagrees)" in first.inner_text()
        page.get_by_label("Model agrees with the label at").select_option("0.8")
        page.get_by_role("button", name="Preview").click()
        preview = page.locator("#agree-preview")
        assert "1 photo waiting where the model agrees at ≥ 80%" in preview.inner_text()
        assert "not measured yet" in preview.inner_text()
        assert Photo.objects.filter(status=PhotoStatus.PENDING).count() == 4, "a preview approves nothing"
        page.get_by_role("button", name="Approve these 1 photo").click()
        page.wait_for_url("**/review/**")
        statuses = dict(Photo.objects.values_list("pk", "status"))
        assert statuses[sure.pk] == PhotoStatus.APPROVED
        assert {statuses[p.pk] for p in (unsure, disagrees, unguessed)} == {PhotoStatus.PENDING}
        assert PhotoReview.objects.get(photo=sure).note == "batch: the model agreed at >= 0.8"
        assert page.js_errors == []
        assert tulip
