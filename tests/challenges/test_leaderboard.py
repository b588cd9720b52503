"""Leaderboards: periods, ranks, tie-break, own row, names, the API, recompute."""

import datetime as dt
import importlib
import io
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone

from challenges import selectors, services
from challenges.models import PointEntry, Score
from tests.challenges.helpers import approved_photo, make_challenge, upload_photo, review
from collector.models import Photo, PhotoStatus, Volunteer
from tests.factories import client_for, image_bytes, make_label, make_volunteer
from config.scheduler import jobs_declared

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


def _set_earned(photo, when):
    """Move a photo's ledger rows to another moment, and rebuild the scores (as if it happened then)."""
    PointEntry.objects.filter(photo=photo).update(earned_at=when, created_at=when)
    services.scores_recompute()


class TestLeaderboardApi:
    def test_it_ranks_by_points_with_names_and_approved_photos(self, client):
        alice, bob = make_volunteer("alice"), make_volunteer("bob")
        approved_photo(volunteer=alice)
        approved_photo(volunteer=alice)
        approved_photo(volunteer=bob)
        response = client.get("/api/v1/leaderboard/?period=day")
        assert response.status_code == 200
        body = response.json()
        assert body["results"] == [
            {"rank": 1, "display_name": "alice", "points": 20, "approved_photos": 2},
            {"rank": 2, "display_name": "bob", "points": 10, "approved_photos": 1},
        ]
        assert body["count"] == 2 and body["own_row"] is None and body["period"] == "day"

    def test_it_hides_names_without_consent_to_public_credit(self, client, django_user_model):
        django_user_model.objects.create_user("staff-without-profile")  # user ids now run ahead of profile ids
        shy = make_volunteer("shy-person", consent_public_credit=False)
        assert shy.user_id != shy.pk  # so the name below tells which of the two it shows
        approved_photo(volunteer=shy)
        row = client.get("/api/v1/leaderboard/?period=all").json()["results"][0]
        assert row["display_name"] == f"Volunteer #{shy.user_id}"
        assert "shy-person" not in client.get("/api/v1/leaderboard/?period=all").content.decode()

    def test_ties_are_broken_by_approved_photos_then_who_joined_first(self, client, settings):
        first, second, third = make_volunteer("first"), make_volunteer("second"), make_volunteer("third")
        # third: 2 photos (20); second: 1 photo + 1 vote ... make equal points with different photo counts
        approved_photo(volunteer=third)
        approved_photo(volunteer=third)
        p = approved_photo(volunteer=second)
        for fan in [make_volunteer() for _ in range(5)]:
            services.vote_cast(user=fan.user, photo_id=p.pk)  # 10 + 5*2 = 20, one photo
        approved_photo(volunteer=first)
        q = approved_photo(volunteer=first)
        assert q  # first: 20 points, 2 photos, joined before third
        names = [r["display_name"] for r in client.get("/api/v1/leaderboard/?period=all").json()["results"]]
        assert names == ["first", "third", "second"]
        assert names == [r["display_name"] for r in client.get("/api/v1/leaderboard/?period=all").json()["results"]]

    def test_it_paginates_and_shows_the_callers_row_outside_the_page(self):
        volunteers = [make_volunteer(f"v{i:02d}") for i in range(5)]
        for i, v in enumerate(volunteers):
            for _ in range(5 - i):
                approved_photo(volunteer=v)
        client = client_for(volunteers[4].user)
        page1 = client.get("/api/v1/leaderboard/?period=week&page_size=2").json()
        assert [r["rank"] for r in page1["results"]] == [1, 2]
        assert page1["count"] == 5 and page1["next"].endswith("page=2") and page1["previous"] is None
        assert page1["own_row"] == {"rank": 5, "display_name": "v04", "points": 10, "approved_photos": 1}
        page3 = client.get("/api/v1/leaderboard/?period=week&page_size=2&page=3").json()
        assert [r["display_name"] for r in page3["results"]] == ["v04"]
        assert page3["next"] is None

    def test_a_caller_without_points_gets_an_unranked_own_row(self):
        approved_photo()
        newcomer = make_volunteer("newbie")
        own = client_for(newcomer.user).get("/api/v1/leaderboard/?period=month").json()["own_row"]
        assert own == {"rank": None, "display_name": "newbie", "points": 0, "approved_photos": 0}

    def test_the_challenge_board_counts_entries_only(self, client):
        challenge = make_challenge()
        entrant, other = make_volunteer("entrant"), make_volunteer("other")
        approved_photo(volunteer=entrant, challenge=challenge)
        approved_photo(volunteer=other)
        approved_photo(volunteer=other)
        body = client.get(f"/api/v1/leaderboard/?challenge={challenge.pk}").json()
        assert body["period"] == "challenge" and body["challenge"] == challenge.pk
        assert body["results"] == [{"rank": 1, "display_name": "entrant", "points": 30, "approved_photos": 1}]

    def test_bad_parameters_are_400_and_unknown_challenges_404(self, client):
        bad = client.get("/api/v1/leaderboard/?period=year")
        assert bad.status_code == 400 and "period" in bad.json()["error"]["fields"]
        assert client.get("/api/v1/leaderboard/?page_size=1000").status_code == 400
        assert client.get("/api/v1/leaderboard/?page=0").status_code == 400
        missing = client.get("/api/v1/leaderboard/?challenge=424242")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


class TestPeriods:
    def test_points_count_in_the_day_week_and_month_they_were_earned(self):
        v = make_volunteer()
        now = dt.datetime(2026, 11, 25, 12, tzinfo=UTC)  # a Wednesday
        old = approved_photo(volunteer=v)
        _set_earned(old, dt.datetime(2026, 11, 23, 12, tzinfo=UTC))  # Monday, same week
        older = approved_photo(volunteer=v)
        _set_earned(older, dt.datetime(2026, 11, 2, 12, tzinfo=UTC))  # same month, earlier week
        oldest = approved_photo(volunteer=v)
        _set_earned(oldest, dt.datetime(2026, 10, 30, 12, tzinfo=UTC))  # last month
        today = approved_photo(volunteer=v)
        _set_earned(today, now)
        points = {p: selectors.leaderboard(period=p, now=now).rows[0].points for p in ("day", "week", "month", "all")}
        assert points == {"day": 10, "week": 20, "month": 30, "all": 40}

    def test_a_take_back_leaves_the_period_the_points_were_earned_in(self):
        v = make_volunteer()
        photo = approved_photo(volunteer=v)
        monday = dt.datetime(2026, 11, 23, 12, tzinfo=UTC)
        _set_earned(photo, monday)
        review(photo, "reject")
        assert selectors.leaderboard(period="day", now=monday).rows == []
        assert Score.objects.get(period="d2026-11-23", volunteer=v.user).points == 0

    def test_day_boundary_follows_time_zone(self, settings):
        settings.TIME_ZONE = "America/New_York"
        v = make_volunteer()
        photo = approved_photo(volunteer=v)
        # 03:00 UTC on the 26th is 22:00 on the 25th in New York
        _set_earned(photo, dt.datetime(2026, 11, 26, 3, tzinfo=UTC))
        assert selectors.leaderboard(period="day", now=dt.datetime(2026, 11, 26, 4, tzinfo=UTC)).period_key == "d2026-11-25"
        assert selectors.leaderboard(period="day", now=dt.datetime(2026, 11, 26, 4, tzinfo=UTC)).rows[0].points == 10
        assert selectors.leaderboard(period="day", now=dt.datetime(2026, 11, 26, 6, tzinfo=UTC)).rows == []


class TestRecompute:
    def test_it_rebuilds_scores_from_the_ledger(self):
        challenge = make_challenge()
        a, b = make_volunteer(), make_volunteer()
        p = approved_photo(volunteer=a, challenge=challenge)
        services.vote_cast(user=b.user, photo_id=p.pk)
        approved_photo(volunteer=b)
        review(upload_photo(volunteer=b), "reject")
        before = sorted(Score.objects.values_list("period", "volunteer_id", "points", "approved_photos"))
        Score.objects.update(points=0)
        Score.objects.filter(period="all").delete()
        services.scores_recompute()
        after = sorted(Score.objects.filter(points__gt=0).values_list("period", "volunteer_id", "points", "approved_photos"))
        assert after == [r for r in before if r[2] > 0]

    def test_the_rotate_command_can_recompute(self):
        from io import StringIO

        from django.core.management import call_command

        v = make_volunteer()
        approved_photo(volunteer=v)
        Score.objects.all().delete()
        out = StringIO()
        call_command("challenges_rotate", "--skip-novelty", "--recompute", stdout=out)
        assert Score.objects.get(period="all", volunteer=v.user).points == 10
        assert "rebuilt" in out.getvalue()


class TestWinnersAndHistory:
    def test_challenge_winners_lists_the_top_of_each_challenge(self):
        today = timezone.localdate()
        challenge = make_challenge(day=today)
        a, b = make_volunteer("a-one"), make_volunteer("b-two")
        approved_photo(volunteer=a, challenge=challenge)
        approved_photo(volunteer=a, challenge=challenge)
        approved_photo(volunteer=b, challenge=challenge)
        results = selectors.challenge_winners(since=today - dt.timedelta(days=1), until=today)
        assert len(results) == 1
        assert [w.display_name for w in results[0].winners] == ["a-one", "b-two"]
        assert results[0].entries == 3

    def test_points_history_explains_every_change(self):
        v = make_volunteer()
        photo = approved_photo(volunteer=v)
        review(photo, "reject")
        history = selectors.points_history(user=v.user)
        assert [(e.reason, e.points, e.note) for e in history] == [
            ("approved", -10, "rejected after approval"), ("approved", 10, "")]
        assert history[0].photo_id == photo.pk


class TestUserDeletedInAdmin:
    def test_the_board_size_drops_when_a_user_is_deleted_directly(self):
        a, b = make_volunteer(), make_volunteer()
        approved_photo(volunteer=a)
        approved_photo(volunteer=a)
        approved_photo(volunteer=b)
        assert selectors.leaderboard(period="all").total == 2
        assert selectors.leaderboard(period="all", limit=1, viewer=b.user).own_row.rank == 2
        a.user.delete()
        page = selectors.leaderboard(period="all", limit=1, viewer=b.user)
        assert page.total == 1 and [r.volunteer_id for r in page.rows] == [b.user_id]
        assert page.own_row.rank == 1
        services.rank_buckets_compact()
        assert selectors.leaderboard(period="all", limit=1, viewer=b.user).own_row.rank == 1


class TestCompactCommand:
    def test_it_folds_changes_and_ranks_stay_the_same(self, settings):
        from io import StringIO

        from django.core.management import call_command

        from challenges.models import RankBucket, RankBucketChange

        volunteers = [make_volunteer() for _ in range(3)]
        for i, v in enumerate(volunteers):
            for _ in range(i + 1):
                approved_photo(volunteer=v)
        ranks = [selectors.leaderboard(period="all", viewer=v.user, limit=1).own_row.rank for v in volunteers]
        assert ranks == [3, 2, 1]
        assert RankBucketChange.objects.exists()
        out = StringIO()
        call_command("challenges_compact", stdout=out)
        assert "Folded" in out.getvalue()
        assert not RankBucketChange.objects.exists()
        assert sorted(RankBucket.objects.filter(period="all").values_list("points", "volunteers")) == [
            (10, 1), (20, 1), (30, 1)]
        assert [selectors.leaderboard(period="all", viewer=v.user, limit=1).own_row.rank for v in volunteers] == ranks
        job = next(j for j in jobs_declared() if j["id"] == "challenges_compact")
        assert job["command"] == ["challenges_compact"] and job["minute"].startswith("*/")


def _labelled_folder(root: Path, photos: int) -> Path:
    for i in range(photos):
        path = root / "mug" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(size=(64, 48), seed=1000 + i))
    return root


class TestBootstrapImport:
    """photos_import --approve brings data, not fame: its account earns nothing and is on no board."""

    def test_imported_photos_earn_no_points_and_the_importer_is_on_no_board(self, client, tmp_path):
        make_label("mug")
        maria = make_volunteer("maria")
        approved_photo(volunteer=maria)
        out = io.StringIO()
        call_command("photos_import", str(_labelled_folder(tmp_path / "set", 5)), "--volunteer", "flowers-set",
                     "--create-volunteer", "--approve", stdout=out, stderr=io.StringIO())
        assert "Imported 5 photos (approved)" in out.getvalue()
        importer = Volunteer.objects.get(display_name="flowers-set")
        assert Photo.objects.filter(volunteer=importer.user, status=PhotoStatus.APPROVED).count() == 5
        for period in ("day", "week", "month", "all"):
            body = client.get(f"/api/v1/leaderboard/?period={period}").json()
            assert [r["display_name"] for r in body["results"]] == ["maria"], period
            assert body["count"] == 1
        assert not PointEntry.objects.filter(volunteer=importer.user).exists()
        # Rebuilt from the ledger, the boards stay the same.
        call_command("challenges_rotate", "--recompute", stdout=io.StringIO(), stderr=io.StringIO())
        assert [r["display_name"] for r in client.get("/api/v1/leaderboard/?period=all").json()["results"]] == ["maria"]

    def test_votes_for_imported_photos_earn_nothing_either(self, tmp_path):
        make_label("mug")
        call_command("photos_import", str(_labelled_folder(tmp_path / "set", 1)), "--volunteer", "flowers-set",
                     "--create-volunteer", "--approve", stdout=io.StringIO(), stderr=io.StringIO())
        photo = Photo.objects.get()
        Volunteer.objects.filter(user=photo.volunteer).update(consent_public_credit=True)  # shown, so votable
        services.vote_cast(user=make_volunteer("fan").user, photo_id=photo.pk)
        assert not PointEntry.objects.filter(volunteer=photo.volunteer).exists()
        assert selectors.leaderboard(period="all").total == 0

    def test_an_existing_installation_loses_the_importers_points_on_the_next_rotation(self, client, tmp_path):
        """Before the rule, the import's approvals earned points ("Volunteer #5" led with 4,980); the migration
        marks such accounts and challenges_rotate takes the points back."""
        make_label("mug")
        maria = make_volunteer("maria")
        approved_photo(volunteer=maria)
        importer = make_volunteer("flowers-set", consent_public_credit=False)
        from collector import services as collector_services
        from django.core.files.uploadedfile import SimpleUploadedFile

        for i in range(3):  # the old import path: photo_create approving its own photos, no bootstrap mark
            collector_services.photo_create(
                user=importer.user, image_file=SimpleUploadedFile("p.jpg", image_bytes(size=(64, 48), seed=50 + i)),
                label_slug="mug", auto_approve_by=importer.user)
        names = [r["display_name"] for r in client.get("/api/v1/leaderboard/?period=all").json()["results"]]
        assert names == [f"Volunteer #{importer.user_id}", "maria"]  # what the operator saw

        migration = importlib.import_module("collector.migrations.0008_volunteer_is_bootstrap")
        migration.mark_import_accounts(apps, None)
        importer.refresh_from_db()
        assert importer.is_bootstrap
        maria.refresh_from_db()
        assert not maria.is_bootstrap

        out = io.StringIO()
        call_command("challenges_rotate", stdout=out, stderr=io.StringIO())
        assert "Bootstrap accounts (photos_import): 3 ledger rows took back their points." in out.getvalue()
        body = client.get("/api/v1/leaderboard/?period=all").json()
        assert [r["display_name"] for r in body["results"]] == ["maria"] and body["count"] == 1
        assert sum(PointEntry.objects.filter(volunteer=importer.user).values_list("points", flat=True)) == 0
        assert selectors.ledger_scores(period="all") == [(maria.user_id, 10, 1)]
        services.scores_recompute()
        assert [r["display_name"] for r in client.get("/api/v1/leaderboard/?period=all").json()["results"]] == ["maria"]
        out = io.StringIO()
        call_command("challenges_rotate", stdout=out, stderr=io.StringIO())
        assert "Bootstrap accounts" not in out.getvalue()  # nothing left to take back

    def test_the_migration_leaves_a_volunteer_who_signs_in_alone(self):
        make_label("mug")
        person = make_volunteer("person", password="a-long-password-1")
        from collector import services as collector_services
        from django.core.files.uploadedfile import SimpleUploadedFile

        collector_services.photo_create(
            user=person.user, image_file=SimpleUploadedFile("p.jpg", image_bytes(size=(64, 48), seed=7)),
            label_slug="mug", auto_approve_by=person.user)
        importlib.import_module("collector.migrations.0008_volunteer_is_bootstrap").mark_import_accounts(apps, None)
        person.refresh_from_db()
        assert not person.is_bootstrap
