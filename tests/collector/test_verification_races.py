"""Verdict races on PostgreSQL, each thread on its own connection: verdicts arriving at once are all kept and
approve a photo once; a staff decision racing verdicts wins, and the verdicts after it are refused."""

from __future__ import annotations

import pytest
from django.db import connection

from challenges.models import PointEntry, PointReason
from collector import services
from collector.models import Photo, PhotoReview, PhotoStatus, Verification
from config.domain_errors import Conflict
from tests.challenges.test_concurrency import _race
from tests.factories import make_label, make_photo, make_reviewer, make_volunteer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...)"),
]


@pytest.fixture(autouse=True)
def community(settings):
    settings.COMMUNITY_REVIEW = True
    settings.COMMUNITY_REVIEW_MIN_APPROVED = 1
    settings.COMMUNITY_REVIEW_MIN_VOTES = 3
    settings.COMMUNITY_REVIEW_AGREEMENT = 2 / 3
    settings.COMMUNITY_REVIEW_GOLD_EVERY = 1000


def verifiers(n: int, label):
    users = []
    for _ in range(n):
        volunteer = make_volunteer()
        make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED)
        users.append(volunteer.user)
    return users


def test_eight_verdicts_at_once_are_all_kept_and_approve_once():
    label = make_label("tulip")
    photo = make_photo(label=label)
    users = verifiers(8, label)
    errors = _race([lambda u=u: services.verification_submit(user=u, photo_id=photo.pk, verdict="agree")
                    for u in users])
    assert errors == [], errors
    assert Verification.objects.filter(photo=photo).count() == 8, "no verdict lost"
    assert PhotoReview.objects.filter(photo=photo, by_community=True).count() == 1, "approved once"
    assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.APPROVED
    # Every verdict matched: one active verify grant each, none twice.
    grants = PointEntry.objects.filter(photo=photo, reason=PointReason.VERIFY, active=True)
    assert sorted(grants.values_list("volunteer_id", flat=True)) == sorted(u.pk for u in users)


def test_the_same_verdict_sent_many_times_at_once_counts_once():
    label = make_label("tulip")
    photo = make_photo(label=label)
    user = verifiers(1, label)[0]
    errors = _race([lambda: services.verification_submit(user=user, photo_id=photo.pk, verdict="agree")] * 6)
    assert len(errors) == 5 and all(isinstance(e, Conflict) and e.code == "already_verified" for e in errors), errors
    assert Verification.objects.filter(photo=photo).count() == 1


def test_a_staff_decision_racing_verdicts_wins():
    label = make_label("tulip")
    photo = make_photo(label=label)
    users = verifiers(5, label)
    services.verification_submit(user=users[0], photo_id=photo.pk, verdict="agree")
    reviewer = make_reviewer()
    jobs = [lambda u=u: services.verification_submit(user=u, photo_id=photo.pk, verdict="agree") for u in users[1:]]
    jobs.append(lambda: services.photo_review(photo_id=photo.pk, reviewer=reviewer, decision="reject",
                                              reason="blurry"))
    errors = _race(jobs)
    assert all(isinstance(e, Conflict) and e.code == "already_decided" for e in errors), errors
    photo.refresh_from_db()
    reviews = list(PhotoReview.objects.filter(photo=photo).order_by("id").values_list("by_community", "decision"))
    # Either staff came first (the verdicts after it are refused) or the crowd approved first and staff's later
    # rejection replaced it. Staff's decision stands in both cases.
    assert reviews[-1] == (False, "rejected") and photo.status == PhotoStatus.REJECTED
    assert len([r for r in reviews if r[0]]) <= 1
    kept = Verification.objects.filter(photo=photo).count()
    assert kept == 1 + (len(users) - 1 - len(errors)), "every verdict not refused was kept"
    assert not PointEntry.objects.filter(photo=photo, reason=PointReason.VERIFY, active=True).exists()
