"""Many random operations over three weeks that cross a month end and a DST change,
then every leaderboard is compared with a full recomputation from the ledger."""

import datetime as dt
import random
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from challenges import periods, selectors, services
from challenges.models import Challenge, PointEntry, RankBucket, Score, Vote
from collector import services as collector_services
from collector.models import Photo, PhotoStatus
from config.domain_errors import DomainError
from tests.challenges.helpers import make_challenge, upload_photo
from tests.factories import make_label, make_reviewer, make_volunteer

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc
ZONE = "Europe/Berlin"


def _independent_boards():
    """Every board, computed here from raw ledger rows with zoneinfo: {key: [(user, points, photos)] ranked}."""
    zone = ZoneInfo(ZONE)
    sums = defaultdict(lambda: [0, 0])
    for e in PointEntry.objects.all():
        local = e.earned_at.astimezone(zone).date()
        monday = local - dt.timedelta(days=local.weekday())
        photos = (1 if e.reverses_id is None else -1) if e.reason == "approved" else 0
        keys = [f"d{local}", f"w{monday}", f"m{local:%Y-%m}", "all"] + ([f"c{e.challenge_id}"] if e.challenge_id else [])
        for key in keys:
            sums[(key, e.volunteer_id)][0] += e.points
            sums[(key, e.volunteer_id)][1] += photos
    boards = defaultdict(list)
    for (key, uid), (points, photos) in sums.items():
        assert points >= 0, f"negative points in {key}"
        if points > 0:
            boards[key].append((uid, points, photos))
    for rows in boards.values():
        rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
    return boards


def _board(**kwargs):
    page = selectors.leaderboard(limit=10_000, **kwargs)
    return page.period_key, [(r.volunteer_id, r.points, r.approved_photos) for r in page.rows], page


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_keep_every_leaderboard_exact(seed, settings, monkeypatch):
    settings.TIME_ZONE = ZONE
    rng = random.Random(seed)
    clock = [dt.datetime(2026, 10, 18, 9, tzinfo=UTC)]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])

    labels = [make_label(f"l{i}") for i in range(3)]
    volunteers = [make_volunteer(consent_public_credit=rng.random() < 0.7) for _ in range(8)]
    reviewers = [make_reviewer() for _ in range(2)]
    challenges = {}
    photos: list[Photo] = []
    done = defaultdict(int)

    def today_challenge():
        day = periods.challenge_date_at(clock[0])
        if day not in challenges:
            challenges[day] = make_challenge(label=rng.choice(labels), day=day)
        return challenges[day]

    for _ in range(260):
        clock[0] += dt.timedelta(minutes=rng.randrange(10, 300))  # ~3 weeks in all
        op = rng.choice(["upload", "upload", "approve", "approve", "reject", "relabel", "vote", "vote", "unvote",
                         "feature", "unfeature", "delete_account", "compact"])
        try:
            if op == "upload":
                c = today_challenge()
                entered = rng.random() < 0.5
                photos.append(upload_photo(volunteer=rng.choice(volunteers), challenge=c if entered else None,
                                           label=None if entered else rng.choice(labels), seed=rng.randrange(10**9)))
            elif not photos:
                continue
            else:
                photo = rng.choice(photos)
                if op in ("approve", "reject"):
                    collector_services.photo_review(photo_id=photo.pk, reviewer=rng.choice(reviewers),
                                                    decision=op, reason="" if op == "approve" else "blurry")
                elif op == "relabel":
                    collector_services.photo_relabel(photo_id=photo.pk, reviewer=rng.choice(reviewers),
                                                     label_slug=rng.choice(labels).slug)
                elif op == "vote":
                    approved = [p.pk for p in Photo.objects.filter(status=PhotoStatus.APPROVED).only("pk")]
                    services.vote_cast(user=rng.choice(volunteers).user,
                                       photo_id=rng.choice(approved) if approved else photo.pk)
                elif op == "unvote":
                    services.vote_withdraw(user=rng.choice(volunteers).user, photo_id=photo.pk)
                elif op == "feature":
                    services.photo_feature(photo_id=photo.pk, staff_user=rng.choice(reviewers))
                elif op == "unfeature":
                    services.photo_unfeature(photo_id=photo.pk, staff_user=rng.choice(reviewers))
                elif op == "compact":
                    services.rank_buckets_compact()
                elif op == "delete_account" and rng.random() < 0.15 and len(volunteers) > 4:
                    gone = volunteers.pop(rng.randrange(len(volunteers)))
                    collector_services.volunteer_delete(user=gone.user)
            done[op] += 1
        except DomainError:  # collector's and challenges' services raise domain errors
            done[op + " refused"] += 1  # own photo, not approved, withdrawn ...
    assert done["approve"] > 20 and done["vote"] > 10 and done["upload"] > 20, dict(done)

    # the ledger agrees with the photos' state: one active grant per approved photo, one per counted vote
    for photo in Photo.objects.all():
        active = PointEntry.objects.filter(photo=photo, active=True)
        if photo.status == PhotoStatus.APPROVED and photo.volunteer_id:
            assert active.filter(reason="approved").count() == 1
            votes = Vote.objects.filter(photo=photo).exclude(voter_id=photo.volunteer_id).count()
            assert active.filter(reason="vote").count() == votes
        else:
            assert not active.exists()

    expected = _independent_boards()
    instants = [dt.datetime(2026, 10, 18, 12, tzinfo=UTC) + dt.timedelta(hours=6 * i) for i in range(4 * 24)]
    checked = 0
    for period in ("day", "week", "month", "all"):
        for now in instants:
            key, rows, page = _board(period=period, now=now)
            assert rows == expected.get(key, []), (period, now, key)
            assert page.total == len(rows)
            assert rows == [tuple(r) for r in selectors.ledger_scores(period=period, now=now)]
            checked += 1
    for challenge in Challenge.objects.all():
        key, rows, _ = _board(challenge_id=challenge.pk)
        assert rows == expected.get(key, [])
        checked += 1
    assert checked > 300

    # own rank: every volunteer's own row matches their place in every full board, with the
    # histogram's changes unfolded, then folded, then rebuilt by recompute
    from django.contrib.auth import get_user_model

    users = list(get_user_model().objects.all())

    def check_own_ranks():
        for period in ("day", "week", "month", "all"):
            for now in instants[::8]:
                key = periods.period_at(period, now).key
                full = expected.get(key, [])
                for user in users:
                    page = selectors.leaderboard(period=period, limit=1, viewer=user, now=now)
                    place = next((i + 1 for i, r in enumerate(full) if r[0] == user.pk), None)
                    assert page.own_row.rank == place, (period, now, user.pk)

    check_own_ranks()
    services.rank_buckets_compact()
    assert not RankBucket.objects.filter(volunteers__lt=0).exists()
    check_own_ranks()

    # the pre-aggregated rows are exactly what recompute builds from the ledger
    before = sorted(Score.objects.filter(points__gt=0).values_list("period", "volunteer_id", "points", "approved_photos"))
    totals_before = {key: selectors._ranked_total(key) for key in expected}
    buckets_before = sorted(RankBucket.objects.values_list("period", "points", "volunteers"))
    services.scores_recompute()
    after = sorted(Score.objects.filter(points__gt=0).values_list("period", "volunteer_id", "points", "approved_photos"))
    assert before == after
    assert totals_before == {key: selectors._ranked_total(key) for key in expected}
    assert totals_before == {key: len(rows) for key, rows in expected.items()}
    assert buckets_before == sorted(RankBucket.objects.values_list("period", "points", "volunteers"))
    check_own_ranks()
