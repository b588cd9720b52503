"""Races on PostgreSQL: votes, approvals, rejections and features from many threads, each
with its own database connection, never double-count (skipped on SQLite, which
serialises writers anyway)."""

import threading

import pytest
from django.db import connection, connections

from challenges import selectors, services
from challenges.models import PointEntry, Score, Vote
from collector import services as collector_services
from tests.challenges.helpers import make_challenge, points_of, upload_photo
from tests.factories import make_reviewer, make_volunteer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...)"),
]


def _race(jobs):
    """Run callables at the same moment, each thread on its own connection; return their exceptions."""
    barrier = threading.Barrier(len(jobs))
    errors = []

    def run(job):
        try:
            barrier.wait()
            job()
        except Exception as exc:  # collected and asserted by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def _assert_scores_match_ledger():
    for period in ("day", "week", "month", "all"):
        key = selectors.period_resolve(period=period)[1]
        from_scores = [tuple(r) for r in Score.objects.filter(period=key, points__gt=0)
                       .order_by("-points", "-approved_photos", "volunteer_id")
                       .values_list("volunteer_id", "points", "approved_photos")]
        assert from_scores == selectors.ledger_scores(period=period)
        assert selectors.leaderboard(period=period).total == len(from_scores)


class TestRaces:
    def test_the_same_vote_sent_many_times_at_once_counts_once(self):
        owner, fan = make_volunteer(), make_volunteer()
        photo = upload_photo(volunteer=owner)
        collector_services.photo_review(photo_id=photo.pk, reviewer=make_reviewer(), decision="approve")
        errors = _race([lambda: services.vote_cast(user=fan.user, photo_id=photo.pk)] * 8)
        assert errors == []
        assert Vote.objects.filter(photo=photo).count() == 1
        assert points_of(owner.user) == 10 + 2
        assert PointEntry.objects.filter(reason="vote").count() == 1

    def test_many_voters_and_withdrawals_at_once_add_up(self):
        owner = make_volunteer()
        photo = upload_photo(volunteer=owner)
        collector_services.photo_review(photo_id=photo.pk, reviewer=make_reviewer(), decision="approve")
        fans = [make_volunteer() for _ in range(10)]
        for fan in fans[:5]:
            services.vote_cast(user=fan.user, photo_id=photo.pk)
        jobs = [lambda f=f: services.vote_withdraw(user=f.user, photo_id=photo.pk) for f in fans[:5]]
        jobs += [lambda f=f: services.vote_cast(user=f.user, photo_id=photo.pk) for f in fans[5:]]
        assert _race(jobs) == []
        assert Vote.objects.filter(photo=photo).count() == 5
        assert points_of(owner.user) == 10 + 5 * 2
        _assert_scores_match_ledger()

    def test_approval_racing_votes_and_a_rejection_never_double_counts(self):
        challenge = make_challenge()
        owner = make_volunteer()
        photo = upload_photo(volunteer=owner, challenge=challenge)
        reviewers = [make_reviewer() for _ in range(3)]
        collector_services.photo_review(photo_id=photo.pk, reviewer=reviewers[0], decision="approve")
        fans = [make_volunteer() for _ in range(6)]

        def approve(r):
            return lambda: collector_services.photo_review(photo_id=photo.pk, reviewer=r, decision="approve")

        jobs = [approve(r) for r in reviewers]
        jobs += [lambda f=f: services.vote_cast(user=f.user, photo_id=photo.pk) for f in fans]
        jobs += [lambda: services.photo_feature(photo_id=photo.pk, staff_user=reviewers[1])] * 2
        errors = _race(jobs)
        # a vote may lose to nothing here: the photo stays approved throughout
        assert errors == []
        assert points_of(owner.user) == 10 + 20 + 6 * 2 + 25
        assert points_of(owner.user, f"c{challenge.pk}") == 10 + 20 + 6 * 2 + 25
        assert PointEntry.objects.filter(photo=photo, reason="approved", active=True).count() == 1

        # now reject while more votes arrive: whichever order, the end state is exact
        late = [make_volunteer() for _ in range(4)]
        jobs = [lambda: collector_services.photo_review(photo_id=photo.pk, reviewer=reviewers[2], decision="reject",
                                                        reason="blurry")]
        jobs += [lambda f=f: services.vote_cast(user=f.user, photo_id=photo.pk) for f in late]
        errors = _race(jobs)
        assert all(getattr(e, "code", None) == "not_found" or getattr(e, "status_code", None) == 409 for e in errors)
        assert points_of(owner.user) == 0
        assert Score.objects.get(period="all", volunteer=owner.user).approved_photos == 0
        assert not PointEntry.objects.filter(photo=photo, active=True).exists()
        _assert_scores_match_ledger()

    def test_approvals_of_different_photos_of_one_volunteer_all_count(self):
        owner = make_volunteer()
        photos = [upload_photo(volunteer=owner) for _ in range(8)]
        reviewer = make_reviewer()
        jobs = [lambda p=p: collector_services.photo_review(photo_id=p.pk, reviewer=reviewer, decision="approve")
                for p in photos]
        assert _race(jobs) == []
        assert points_of(owner.user) == 80
        assert Score.objects.get(period="all", volunteer=owner.user).approved_photos == 8
        _assert_scores_match_ledger()

    def test_two_rotate_jobs_at_once_open_one_challenge(self):
        from challenges.models import Challenge
        from tests.factories import make_label

        make_label("mug")
        errors = _race([lambda: services.challenge_open_for_today()] * 4)
        assert errors == []
        assert Challenge.objects.count() == 1


class TestHistogramRaces:
    def test_compaction_racing_writes_keeps_every_rank_exact(self):
        from collections import Counter

        from django.contrib.auth import get_user_model

        from challenges.models import RankBucket, RankBucketChange

        owners = [make_volunteer() for _ in range(4)]
        reviewer = make_reviewer()
        photos = [upload_photo(volunteer=o) for o in owners for _ in range(2)]
        fans = [make_volunteer() for _ in range(6)]

        def approve(p):
            return lambda: collector_services.photo_review(photo_id=p.pk, reviewer=reviewer, decision="approve")

        def compact_often():
            for _ in range(5):
                services.rank_buckets_compact()

        jobs = [approve(p) for p in photos] + [compact_often] * 2
        assert _race(jobs) == []
        jobs = [lambda f=f, p=p: services.vote_cast(user=f.user, photo_id=p.pk) for f in fans for p in photos[::3]]
        jobs += [compact_often] * 2
        assert _race(jobs) == []

        for period in ("day", "week", "month", "all"):
            key = selectors.period_resolve(period=period)[1]
            histogram = Counter(Score.objects.filter(period=key, points__gt=0).values_list("points", flat=True))
            folded = Counter()
            for points, n in RankBucket.objects.filter(period=key).values_list("points", "volunteers"):
                folded[points] += n
            for points, d in RankBucketChange.objects.filter(period=key).values_list("points", "delta"):
                folded[points] += d
            assert +folded == histogram
            board = selectors.ledger_scores(period=period)
            for user in get_user_model().objects.all():
                place = next((i + 1 for i, r in enumerate(board) if r[0] == user.pk), None)
                assert selectors.leaderboard(period=period, limit=1, viewer=user).own_row.rank == place
        _assert_scores_match_ledger()
