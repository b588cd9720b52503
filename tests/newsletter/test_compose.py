"""Composing an edition: each section from the other apps' data, shown the way a reader sees it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from challenges import periods
from challenges import services as challenge_services
from collector.models import PhotoStatus
from newsletter import emails, selectors, services
from newsletter.models import Edition
from tests.challenges.helpers import approved_photo, make_challenge
from tests.factories import image_bytes, make_label, make_photo, make_reviewer, make_volunteer
from tests.newsletter.conftest import make_edition, parts
from training.models import DatasetVersion, ModelVersion

pytestmark = pytest.mark.django_db


def _window():
    now = timezone.now()
    return now - timedelta(days=1), now + timedelta(minutes=1)


def _vote(photo, times):
    for _ in range(times):
        challenge_services.vote_cast(user=make_volunteer().user, photo_id=photo.pk)


def _model_version(version, *, accuracy, recall, in_service=True, published_at=None):
    dataset = DatasetVersion.objects.create(fingerprint=f"fp{version}", cutoff=timezone.now(), photo_count=10)
    if in_service:
        ModelVersion.objects.filter(in_service=True).update(in_service=None)
    return ModelVersion.objects.create(
        version=version, status="published", in_service=True if in_service else None, dataset_version=dataset,
        strategy="head", labels=sorted(recall), published_at=published_at or timezone.now(),
        metrics={"int8": {"accuracy": accuracy, "per_class": {k: {"recall": v} for k, v in recall.items()}},
                 "float32": {"accuracy": accuracy + 0.01}},
    )


class TestBestPhotos:
    def test_it_ranks_by_votes_and_keeps_only_consenting_volunteers_credited_by_name(self):
        label = make_label("mug", name="Mug")
        ada = make_volunteer("Ada", consent_public_credit=True)
        bob = make_volunteer("Bob", consent_public_credit=True)
        shy = make_volunteer("Shy", consent_public_credit=True)
        few = approved_photo(volunteer=ada, label=label)
        many = approved_photo(volunteer=bob, label=label)
        hidden = approved_photo(volunteer=shy, label=label)
        _vote(few, 1)
        _vote(many, 3)
        _vote(hidden, 5)
        shy.consent_public_credit = False  # the most voted photo's author withdraws consent
        shy.save()
        since, until = _window()

        rows = selectors.section_best_photos(since=since, until=until, limit=6)

        assert [(r["photo_id"], r["credit"], r["votes"]) for r in rows] == [(many.pk, "Bob", 3), (few.pk, "Ada", 1)]
        assert rows[0]["label_name"] == "Mug"

    def test_it_leaves_out_photos_approved_outside_the_period(self):
        approved_photo(volunteer=make_volunteer(consent_public_credit=True))
        now = timezone.now()

        assert selectors.section_best_photos(since=now + timedelta(minutes=1), until=now + timedelta(days=7),
                                              limit=6) == []

    def test_it_lists_a_staff_pick_above_voted_photos(self):
        voted = approved_photo(volunteer=make_volunteer("Voted", consent_public_credit=True))
        picked = approved_photo(volunteer=make_volunteer("Picked", consent_public_credit=True))
        _vote(voted, 1)
        challenge_services.photo_feature(photo_id=picked.pk, staff_user=make_reviewer())
        since, until = _window()

        rows = selectors.section_best_photos(since=since, until=until, limit=6)

        assert [r["credit"] for r in rows] == ["Picked", "Voted"]
        assert rows[0]["featured"] is True


class TestChallengeWinners:
    def test_it_lists_an_ended_challenge_with_its_top_volunteers_by_public_name(self):
        challenge = make_challenge(label=make_label("bike", name="Bike"), title="Bikes in odd places")
        winner = make_volunteer("Winner", consent_public_credit=True)
        private = make_volunteer("Private", consent_public_credit=False)
        approved_photo(volunteer=winner, challenge=challenge)
        approved_photo(volunteer=winner, challenge=challenge)
        approved_photo(volunteer=private, challenge=challenge)
        challenge.refresh_from_db()

        running = selectors.section_challenge_winners(since=challenge.starts_at - timedelta(days=1),
                                                      until=challenge.ends_at - timedelta(minutes=1))
        ended = selectors.section_challenge_winners(since=challenge.starts_at - timedelta(days=1),
                                                    until=challenge.ends_at)

        assert running == []
        assert len(ended) == 1
        row = ended[0]
        assert row["challenge"] == "Bikes in odd places" and row["entries"] == 3
        assert [w["display_name"] for w in row["winners"]] == ["Winner", f"Volunteer #{private.user_id}"]
        assert row["winners"][0]["points"] > row["winners"][1]["points"]


class TestLeaderboard:
    def test_it_keeps_the_top_ten_of_the_week(self):
        label = make_label()
        volunteers = [make_volunteer(f"Player{i:02d}", consent_public_credit=True) for i in range(12)]
        for i, volunteer in enumerate(volunteers):
            for _ in range(1 + i // 4):
                approved_photo(volunteer=volunteer, label=label)

        this_week_ends = periods.period_at("week", timezone.now()).end

        during = selectors.section_leaderboard(until=this_week_ends - timedelta(minutes=1))
        board = selectors.section_leaderboard(until=this_week_ends)

        assert during["rows"] == []  # last week's board: nobody scored then
        rows = board["rows"]
        assert board["period"] == "week" and board["end"] == this_week_ends.isoformat()
        assert len(rows) == 10
        assert [r["rank"] for r in rows] == list(range(1, 11))
        assert {r["display_name"] for r in rows[:4]} == {f"Player{i:02d}" for i in range(8, 12)}
        assert rows[0]["points"] >= rows[-1]["points"]


class TestModelNews:
    def test_it_reports_new_versions_accuracy_change_and_improved_labels(self):
        since, until = _window()
        _model_version(1, accuracy=0.70, recall={"mug": 0.5, "bike": 0.9},
                       published_at=since - timedelta(days=3))
        previous = Edition.objects.create(
            period_start=since - timedelta(days=7), period_end=since, subject="Last week", status="sent",
            scheduled_for=since, content={"model": selectors.section_model_news(
                since=since - timedelta(days=7), until=since, previous=None)})
        _model_version(2, accuracy=0.80, recall={"mug": 0.75, "bike": 0.9})

        news = selectors.section_model_news(since=since, until=until, previous=previous.content)

        assert [v["version"] for v in news["versions"]] == [2]
        assert news["versions"][0]["accuracy"] == pytest.approx(0.80)  # the int8 file phones download
        assert news["accuracy"] == pytest.approx(0.80) and news["accuracy_before"] == pytest.approx(0.70)
        assert news["improved"] == [{"label": "mug", "before": 0.5, "now": 0.75}]

    def test_it_quotes_the_field_accuracy_of_the_model_in_service_once_there_are_enough_photos(self, settings):
        from collector.models import Photo

        since, until = _window()
        settings.TRAINING_FIELD_ACCURACY_MIN_SAMPLES = 4
        _model_version(5, accuracy=0.80, recall={"mug": 0.75})
        label = make_label("mug")
        photos = [approved_photo(volunteer=make_volunteer(), label=label) for _ in range(4)]
        for photo, predicted in zip(photos[:3], ("mug", "mug", "cup")):  # the phone classified three of them
            Photo.objects.filter(pk=photo.pk).update(predicted_label=predicted, model_version=5)

        assert selectors.section_model_news(since=since, until=until, previous=None)["field"] is None  # 3 < 4

        Photo.objects.filter(pk=photos[3].pk).update(predicted_label="mug", model_version=5)
        news = selectors.section_model_news(since=since, until=until, previous=None)
        assert news["field"] == {"version": 5, "accuracy": 0.75, "samples": 4}
        edition = make_edition()
        edition.content["model"] = news
        rendered = emails.edition(edition).message(to="r@example.org", unsubscribe="https://x.example/u/").message()
        for part in parts(_reparse(rendered)):
            assert "model version 5 named 75" in part and "of 4 reviewed photos right" in part

    def test_it_says_so_when_there_is_no_model_yet(self):
        since, until = _window()

        news = selectors.section_model_news(since=since, until=until, previous=None)

        assert news["versions"] == [] and news["accuracy"] is None and news["improved"] == []


class TestLabelsNeeded:
    def test_it_asks_for_labels_furthest_below_target_and_worst_recognised(self):
        full = make_label("full", name="Full", production_target=2)
        scarce = make_label("scarce", name="Scarce", production_target=10)
        weak = make_label("weak", name="Weak", production_target=2)
        volunteer = make_volunteer()
        for label in (full, full, weak, weak, scarce):
            make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED, image=image_bytes(size=(64, 48)))

        rows = selectors.section_labels_needed(recall={"full": 0.95, "weak": 0.2, "scarce": 0.9}, limit=5)

        assert [r["label"] for r in rows] == ["scarce", "weak", "full"]
        assert rows[0]["approved"] == 1 and rows[0]["target"] == 10
        without_model = selectors.section_labels_needed(recall={}, limit=5)
        assert [r["label"] for r in without_model] == ["scarce"]  # the others reached their target


class TestQuietPeriods:
    def test_it_composes_no_edition_when_the_period_brought_nothing(self, settings):
        settings.NEWSLETTER_SKIP_EMPTY = True  # the default
        assert services.edition_compose(now=timezone.now()) is None
        assert not Edition.objects.exists()

    def test_it_composes_one_once_a_public_photo_is_approved_in_the_period(self, settings):
        from collector.models import PhotoStatus
        from tests.factories import make_photo

        settings.NEWSLETTER_SKIP_EMPTY = True
        make_photo(status=PhotoStatus.APPROVED)  # its volunteer agreed to public credit (factory default)
        edition = services.edition_compose(now=timezone.now() + timedelta(days=7))
        assert edition is not None and edition.content["best_photos"]


class TestEditionCompose:
    def test_it_composes_once_per_slot_on_schedule_or_waiting_for_approval(self, settings):
        now = timezone.now()
        first = services.edition_compose(now=now)
        again = services.edition_compose(now=now)
        settings.NEWSLETTER_REQUIRE_APPROVAL = True
        next_week = services.edition_compose(now=now + timedelta(days=7))

        assert first is not None and again is None
        assert first.status == "scheduled" and first.scheduled_for == first.period_end <= now
        assert first.period_end - first.period_start == timedelta(days=7)
        assert next_week.status == "awaiting_approval"
        assert next_week.period_start == first.period_end
        assert Edition.objects.count() == 2

    def test_it_places_the_slot_on_the_configured_weekday_and_hour(self, settings):
        settings.TIME_ZONE = "UTC"
        settings.NEWSLETTER_WEEKDAY = "wed"
        settings.NEWSLETTER_HOUR = 7
        from datetime import datetime, timezone as tz

        before = selectors.slot_latest(now=datetime(2026, 3, 4, 6, 59, tzinfo=tz.utc))  # Wednesday 06:59
        after = selectors.slot_latest(now=datetime(2026, 3, 4, 7, 0, tzinfo=tz.utc))

        assert before == datetime(2026, 2, 25, 7, 0, tzinfo=tz.utc)
        assert after == datetime(2026, 3, 4, 7, 0, tzinfo=tz.utc)

    def test_a_version_s_accuracy_comes_with_its_interval_and_photos(self, smtp):
        version = _model_version(4, accuracy=0.61, recall={"kettle": 0.4})
        version.default_variant = "float32"
        version.metrics["float32"].update(accuracy=0.613, interval=[0.534, 0.687], photos=153)
        version.save()
        edition = make_edition(introduction="Our intro")
        rendered = emails.edition(edition)
        message = rendered.message(to="r@example.org", unsubscribe="https://crowdlens.example/u/x/").message()
        text, html = parts(_reparse(message))
        assert "Model version 4 published, accuracy 61 % (95 % interval 53-69 %, 153 photos)" in text
        assert "(95&nbsp;% interval 53-69&nbsp;%, 153 photos)" in html or "(95\xa0% interval 53-69\xa0%, 153 photos)" in html

    def test_it_renders_every_section_in_both_parts(self, smtp):
        volunteer = make_volunteer("Shooter", consent_public_credit=True)
        label = make_label("kettle", name="Kettle", production_target=50)
        approved_photo(volunteer=volunteer, label=label)
        _model_version(3, accuracy=0.66, recall={"kettle": 0.4})
        edition = make_edition(introduction="Our intro")
        edition.content["leaderboard"] = selectors.section_leaderboard(
            until=periods.period_at("week", timezone.now()).end)

        rendered = emails.edition(edition)
        message = rendered.message(to="r@example.org", unsubscribe="https://crowdlens.example/u/x/").message()
        text, html = parts(_reparse(message))

        for part in (text, html):
            assert "Our intro" in part and "Shooter" in part and "Kettle" in part
            assert "Model version 3 published" in part
            assert "Please photograph next" in part or "PLEASE PHOTOGRAPH NEXT" in part
            assert "https://crowdlens.example/u/x/" in part
        assert "Leaderboard, top ten" in html and "1. Shooter" in text
        assert "LEADERBOARD, TOP TEN (week of " in text and "Week of " in html


def _reparse(message):
    from email import message_from_bytes, policy

    return message_from_bytes(message.as_bytes(), policy=policy.default)


class TestNamesAtSendTime:
    def test_it_names_a_volunteer_who_withdrew_consent_after_composing_only_by_number(self, smtp):
        volunteer = make_volunteer("Regrets", consent_public_credit=True)
        approved_photo(volunteer=volunteer)
        edition = make_edition()
        edition.content["leaderboard"] = selectors.section_leaderboard(
            until=periods.period_at("week", timezone.now()).end)
        assert edition.content["leaderboard"]["rows"][0]["display_name"] == "Regrets"
        volunteer.consent_public_credit = False
        volunteer.save()

        rendered = emails.edition(edition)

        assert "Regrets" not in rendered.text + rendered.html
        assert f"1. Volunteer #{volunteer.user_id}" in rendered.text
