"""Daily challenges: label choice, the rotate job, entering uploads, the API, day boundaries in TIME_ZONE."""

import datetime as dt
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from challenges import periods, services
from challenges.models import Challenge
from collector.models import Label
from config.domain_errors import Unprocessable
from config.scheduler import jobs_declared
from tests.challenges.helpers import approved_photo, make_challenge
from tests.factories import client_for, make_label, make_volunteer, upload

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


class TestLabelChoice:
    def test_it_picks_the_label_furthest_below_its_targets_before_any_training_run(self):
        full = make_label("full", prototype_target=2)
        for _ in range(2):
            approved_photo(label=full)
        halfway = make_label("halfway", prototype_target=4)
        for _ in range(2):
            approved_photo(label=halfway)
        make_label("empty", prototype_target=4)
        choice = services.challenge_label_choose(day=dt.date(2026, 1, 10))
        assert choice.label.slug == "empty"
        assert "below its targets" in choice.reason

    # The choice by recall, and a label the run did not know counting as recall 0, are tested against a real
    # training run in test_training_link.py.

    def test_it_falls_back_to_targets_when_training_fails(self, monkeypatch, caplog):
        from training import selectors as training_selectors

        def broken():
            raise RuntimeError("feature cache unreadable")

        monkeypatch.setattr(training_selectors, "latest_recall_by_label", broken)
        approved_photo(label=make_label("full", prototype_target=1))
        make_label("empty")
        choice = services.challenge_label_choose(day=dt.date(2026, 1, 10))
        assert choice.label.slug == "empty" and "below its targets" in choice.reason
        assert "latest_recall_by_label failed" in caplog.text

    def test_it_never_repeats_a_label_within_the_window(self, settings):
        settings.CHALLENGE_NO_REPEAT_DAYS = 3
        for slug in ("a", "b", "c"):  # no photos, no run: a before b before c
            make_label(slug)
        day = dt.date(2026, 1, 10)
        make_challenge(label=make_label("a"), day=day - dt.timedelta(days=2))
        assert services.challenge_label_choose(day=day).label.slug == "b"
        # three days ago is outside a 3-day window
        Challenge.objects.all().update(date=day - dt.timedelta(days=3))
        assert services.challenge_label_choose(day=day).label.slug == "a"

    def test_it_also_respects_challenges_planned_ahead(self):
        for slug in ("a", "b"):  # no photos, no run: a before b
            make_label(slug)
        day = dt.date(2026, 1, 10)
        make_challenge(label=make_label("a"), day=day + dt.timedelta(days=1))
        assert services.challenge_label_choose(day=day).label.slug == "b"

    def test_it_falls_back_to_the_label_used_longest_ago_when_all_were_used(self, settings):
        settings.CHALLENGE_NO_REPEAT_DAYS = 30
        day = dt.date(2026, 1, 10)
        make_challenge(label=make_label("a"), day=day - dt.timedelta(days=2))
        make_challenge(label=make_label("b"), day=day - dt.timedelta(days=5))
        choice = services.challenge_label_choose(day=day)
        assert choice.label.slug == "b"
        assert "longest ago" in choice.reason

    def test_it_ignores_inactive_labels(self):
        make_label("gone", active=False)
        assert services.challenge_label_choose(day=dt.date(2026, 1, 10)) is None


class TestRotateCommand:
    def test_it_opens_todays_challenge_with_a_prompt(self):
        make_label("mug", name="Mug")
        out = StringIO()
        call_command("challenges_rotate", "--now", "2026-03-10T00:00:05+00:00", stdout=out)
        challenge = Challenge.objects.get()
        assert challenge.date == dt.date(2026, 3, 10)
        assert challenge.label.slug == "mug"
        assert challenge.prompt == "Photograph a mug somewhere nobody would expect one."
        assert challenge.opened_at is not None
        assert challenge.starts_at == dt.datetime(2026, 3, 10, tzinfo=UTC)
        assert challenge.ends_at == dt.datetime(2026, 3, 11, tzinfo=UTC)
        assert "mug" in out.getvalue()

    def test_labels_imported_after_the_rotation_get_a_challenge_at_the_next_compaction(self, settings):
        # README's first steps: `make run` (the scheduler rotates at once, with no label yet), then labels_import.
        out = StringIO()
        call_command("challenges_rotate", stdout=out)
        assert "No active label" in out.getvalue() and not Challenge.objects.exists()
        make_label("mug", name="Mug")
        out = StringIO()
        call_command("challenges_compact", stdout=out)
        challenge = Challenge.objects.get()
        assert challenge.label.slug == "mug" and challenge.opened_at is not None
        assert "No challenge was open: opened" in out.getvalue()
        out = StringIO()
        call_command("challenges_compact", stdout=out)  # one open: nothing more to do
        assert "opened" not in out.getvalue() and Challenge.objects.count() == 1
        job = next(j for j in jobs_declared() if j["id"] == "challenges_compact")
        assert job["run_at_start"] is True  # a restarted scheduler asks at once, not minutes later

    def test_a_challenge_planned_for_today_but_not_yet_opened_is_opened_by_the_compaction(self):
        planned = make_challenge(label=make_label("mug"))
        assert planned.opened_at is None
        call_command("challenges_compact", stdout=StringIO())
        planned.refresh_from_db()
        assert planned.opened_at is not None and Challenge.objects.count() == 1

    def test_a_day_staff_emptied_stays_empty(self):
        """Staff deleted today's challenge (to plan another, or none): compaction does not bring one back,
        since every label was there before the day began."""
        make_label("mug")
        Label.objects.update(created_at=timezone.now() - dt.timedelta(days=2))
        call_command("challenges_rotate", stdout=StringIO())
        Challenge.objects.all().delete()
        out = StringIO()
        call_command("challenges_compact", stdout=out)
        assert not Challenge.objects.exists() and "opened" not in out.getvalue()

    def test_compaction_says_it_opened_a_challenge_only_when_it_did(self):
        make_label("mug")
        assert services.challenge_open_if_none() is not None
        Challenge.objects.update(opened_at=None)  # planned, not yet opened
        assert services.challenge_open_if_none() is not None
        assert services.challenge_open_if_none() is None  # open: nothing to do
        assert Challenge.objects.count() == 1

    def test_running_twice_creates_one_challenge(self):
        make_label("mug")
        call_command("challenges_rotate", "--now", "2026-03-10T00:00:05+00:00", stdout=StringIO())
        call_command("challenges_rotate", "--now", "2026-03-10T08:00:00+00:00", stdout=StringIO())
        assert Challenge.objects.count() == 1

    def test_it_keeps_a_challenge_staff_planned(self):
        make_label("apple")
        planned = make_challenge(label=make_label("zebra"), day=dt.date(2026, 3, 10), title="Zebras!")
        call_command("challenges_rotate", "--now", "2026-03-10T00:00:05+00:00", stdout=StringIO())
        assert list(Challenge.objects.values_list("pk", "title")) == [(planned.pk, "Zebras!")]

    def test_it_rotates_at_the_configured_time_in_time_zone(self, settings):
        settings.TIME_ZONE = "Europe/Berlin"
        settings.CHALLENGE_ROTATE_AT = (6, 30)
        make_label("mug")
        # 05:00 UTC on 10 March is 06:00 in Berlin: still the 9th's challenge day
        call_command("challenges_rotate", "--now", "2026-03-10T05:00:00+00:00", stdout=StringIO())
        challenge = Challenge.objects.get()
        assert challenge.date == dt.date(2026, 3, 9)
        assert challenge.starts_at == dt.datetime(2026, 3, 9, 5, 30, tzinfo=UTC)
        assert challenge.ends_at == dt.datetime(2026, 3, 10, 5, 30, tzinfo=UTC)

    def test_it_is_scheduled_daily(self, settings):
        job = next(j for j in jobs_declared() if j["id"] == "challenges_rotate")
        assert job["command"] == ["challenges_rotate"]
        assert (job["hour"], job["minute"]) == settings.CHALLENGE_ROTATE_AT


class TestDayBoundaries:
    @pytest.fixture(autouse=True)
    def _berlin(self, settings):
        settings.TIME_ZONE = "Europe/Berlin"

    def test_autumn_dst_day_lasts_25_hours(self):
        start, end = periods.challenge_window(dt.date(2026, 10, 25))
        assert start == dt.datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # midnight CEST
        assert end == dt.datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # midnight CET
        assert end - start == dt.timedelta(hours=25)

    def test_spring_dst_day_lasts_23_hours(self):
        start, end = periods.challenge_window(dt.date(2026, 3, 29))
        assert end - start == dt.timedelta(hours=23)

    def test_periods_follow_local_midnight_across_the_change(self):
        # 23:30 on 25 Oct local (CET, UTC+1) is 22:30 UTC: still the 25th
        assert periods.period_keys(dt.datetime(2026, 10, 25, 22, 30, tzinfo=UTC))[0] == "d2026-10-25"
        assert periods.period_keys(dt.datetime(2026, 10, 25, 23, 30, tzinfo=UTC))[0] == "d2026-10-26"
        # 00:30 CEST on the 25th is 22:30 UTC on the 24th
        assert periods.period_keys(dt.datetime(2026, 10, 24, 22, 30, tzinfo=UTC))[0] == "d2026-10-25"
        week = periods.period_at("week", dt.datetime(2026, 10, 25, 12, tzinfo=UTC))
        assert week.key == "w2026-10-19"
        assert week.end - week.start == dt.timedelta(days=7, hours=1)

    def test_an_upload_counts_until_local_midnight_on_a_dst_day(self):
        label = make_label("mug")
        challenge = make_challenge(label=label, day=dt.date(2026, 10, 25))
        just_before = dt.datetime(2026, 10, 25, 22, 59, 59, tzinfo=UTC)  # 23:59:59 CET
        assert services.challenge_entry_check(challenge_id=challenge.pk, label=label, now=just_before) == challenge
        with pytest.raises(Unprocessable) as closed:
            services.challenge_entry_check(challenge_id=challenge.pk, label=label,
                                           now=dt.datetime(2026, 10, 25, 23, 0, tzinfo=UTC))
        assert closed.value.code == "challenge_closed"
        with pytest.raises(Unprocessable) as early:
            services.challenge_entry_check(challenge_id=challenge.pk, label=label,
                                           now=dt.datetime(2026, 10, 24, 21, 59, tzinfo=UTC))
        assert early.value.code == "challenge_not_open"

    def test_a_challenge_day_starting_at_rotate_time_shifts_with_dst(self, settings):
        settings.CHALLENGE_ROTATE_AT = (2, 30)  # does not exist on spring-forward night in Berlin
        start, end = periods.challenge_window(dt.date(2026, 3, 29))
        assert start.astimezone(ZoneInfo("Europe/Berlin")).hour == 3  # skipped 02:30 is read after the jump
        assert end == dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST


class TestUploadEntersChallenge:
    def test_it_accepts_an_entry_while_open_for_its_label(self):
        challenge = make_challenge(label=make_label("mug"))
        response = upload(client_for(make_volunteer().user), label="mug", challenge=challenge.pk)
        assert response.status_code == 201, response.content
        assert response.json()["challenge"] == challenge.pk

    def test_it_refuses_another_label_with_422(self):
        challenge = make_challenge(label=make_label("mug"))
        make_label("cup")
        volunteer = make_volunteer()
        response = upload(client_for(volunteer.user), label="cup", challenge=challenge.pk)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "challenge_wrong_label"
        assert "'mug'" in error["message"] and "'cup'" in error["message"]
        assert "challenge" in error["fields"]
        assert not volunteer.user.photos.exists()

    def test_it_refuses_an_unknown_challenge(self):
        make_label("mug")
        response = upload(client_for(make_volunteer().user), label="mug", challenge=987654)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "unknown_challenge"

    def test_it_refuses_a_closed_challenge_and_stores_nothing(self, tmp_path):
        label = make_label("mug")
        yesterday = periods.challenge_date_at(timezone.now()) - dt.timedelta(days=1)
        challenge = make_challenge(label=label, day=yesterday)
        volunteer = make_volunteer()
        response = upload(client_for(volunteer.user), label="mug", challenge=challenge.pk)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "challenge_closed"
        assert "closed at" in response.json()["error"]["message"]
        assert not volunteer.user.photos.exists()
        assert not list((tmp_path / "media").rglob("*.jpg"))

    def test_it_refuses_a_challenge_not_open_yet(self):
        label = make_label("mug")
        tomorrow = periods.challenge_date_at(timezone.now()) + dt.timedelta(days=1)
        challenge = make_challenge(label=label, day=tomorrow)
        response = upload(client_for(make_volunteer().user), label="mug", challenge=challenge.pk)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "challenge_not_open"

    def test_an_upload_without_a_challenge_is_not_checked(self):
        make_challenge(label=make_label("mug"))
        make_label("cup")
        assert upload(client_for(make_volunteer().user), label="cup").status_code == 201


class TestChallengeApi:
    def test_today_returns_the_open_challenge(self, client):
        challenge = make_challenge(label=make_label("mug", name="Mug"), bonus_points=9)
        response = client.get("/api/v1/challenges/today/")
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == challenge.pk
        assert body["label"] == "mug" and body["label_name"] == "Mug"
        assert body["status"] == "open" and body["bonus_points"] == 9
        assert body["prompt"] == challenge.prompt

    def test_today_is_404_in_the_error_shape_without_a_challenge(self, client):
        response = client.get("/api/v1/challenges/today/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "no_challenge"

    def test_list_shows_recent_and_upcoming_with_their_status(self, client):
        today = periods.challenge_date_at(timezone.now())
        past = make_challenge(day=today - dt.timedelta(days=3))
        current = make_challenge(day=today)
        future = make_challenge(day=today + dt.timedelta(days=2))
        make_challenge(day=today - dt.timedelta(days=40))  # too old
        response = client.get("/api/v1/challenges/")
        assert response.status_code == 200
        rows = [(r["id"], r["status"]) for r in response.json()["results"]]
        assert rows == [(future.pk, "upcoming"), (current.pk, "open"), (past.pk, "closed")]
