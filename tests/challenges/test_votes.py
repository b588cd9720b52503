"""Votes (API), staff features, novelty bonus and the galleries they rank."""

import datetime as dt

import pytest
from django.utils import timezone

from challenges import selectors, services
from challenges.models import PhotoOfTheDay, PhotoNovelty, PointEntry, Vote
from config.domain_errors import Conflict, Forbidden
from config.errors import status_for
from tests.challenges.helpers import approved_photo, points_of, review, upload_photo
from tests.factories import client_for, make_label, make_reviewer, make_volunteer

pytestmark = pytest.mark.django_db


class TestVoteApi:
    def test_it_counts_a_vote_once_and_gives_the_owner_points(self):
        owner, fan = make_volunteer(), make_volunteer()
        photo = approved_photo(volunteer=owner)
        client = client_for(fan.user)
        first = client.post(f"/api/v1/votes/{photo.pk}/")
        assert first.status_code == 201
        assert first.json() == {"photo_id": photo.pk, "votes": 1, "voted": True}
        again = client.post(f"/api/v1/votes/{photo.pk}/")
        assert again.status_code == 200 and again.json()["votes"] == 1
        assert Vote.objects.filter(photo=photo).count() == 1
        assert points_of(owner.user) == 10 + 2
        assert points_of(fan.user) == 0

    def test_taking_the_vote_back_takes_its_points_back(self):
        owner, fan = make_volunteer(), make_volunteer()
        photo = approved_photo(volunteer=owner)
        client = client_for(fan.user)
        client.post(f"/api/v1/votes/{photo.pk}/")
        response = client.delete(f"/api/v1/votes/{photo.pk}/")
        assert response.status_code == 200
        assert response.json() == {"photo_id": photo.pk, "votes": 0, "voted": False}
        assert points_of(owner.user) == 10
        assert not Vote.objects.exists()
        assert PointEntry.objects.filter(reason="vote").count() == 2  # the grant and its take-back
        assert client.delete(f"/api/v1/votes/{photo.pk}/").status_code == 200  # idempotent

    def test_it_refuses_a_vote_for_your_own_photo(self):
        owner = make_volunteer()
        photo = approved_photo(volunteer=owner)
        response = client_for(owner.user).post(f"/api/v1/votes/{photo.pk}/")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "own_photo"
        assert not Vote.objects.exists()

    def test_it_hides_photos_that_are_not_approved(self):
        photo = upload_photo()
        response = client_for(make_volunteer().user).post(f"/api/v1/votes/{photo.pk}/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert not Vote.objects.exists()

    def test_a_reviewer_cannot_vote_for_a_pending_photo(self):
        photo = upload_photo()
        response = client_for(make_reviewer()).post(f"/api/v1/votes/{photo.pk}/")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "not_approved"

    def test_it_hides_photos_of_volunteers_without_public_credit(self):
        shy = make_volunteer(consent_public_credit=False)
        photo = approved_photo(volunteer=shy)
        assert client_for(make_volunteer().user).post(f"/api/v1/votes/{photo.pk}/").status_code == 404

    def test_it_needs_a_signed_in_user(self, client):
        photo = approved_photo()
        response = client.post(f"/api/v1/votes/{photo.pk}/")
        assert response.status_code in (401, 403)
        assert "error" in response.json()
        assert not Vote.objects.exists()

    def test_votes_of_a_photo_rejected_later_stop_counting_and_return_with_approval(self):
        owner, fan = make_volunteer(), make_volunteer()
        photo = approved_photo(volunteer=owner)
        services.vote_cast(user=fan.user, photo_id=photo.pk)
        review(photo, "reject")
        assert points_of(owner.user) == 0
        review(photo, "approve")
        assert points_of(owner.user) == 12

    def test_selectors_report_counts_and_own_votes(self):
        a, b = approved_photo(), approved_photo()
        fans = [make_volunteer() for _ in range(3)]
        for fan in fans:
            services.vote_cast(user=fan.user, photo_id=a.pk)
        services.vote_cast(user=fans[0].user, photo_id=b.pk)
        assert selectors.photo_vote_counts([a.pk, b.pk, 999999]) == {a.pk: 3, b.pk: 1, 999999: 0}
        assert selectors.user_voted(fans[0].user, [a.pk, b.pk]) == {a.pk, b.pk}
        assert selectors.user_voted(fans[1].user, [a.pk, b.pk]) == {a.pk}


class TestFeature:
    def test_staff_feature_gives_points_once(self):
        owner = make_volunteer()
        photo = approved_photo(volunteer=owner)
        staff = make_reviewer()
        services.photo_feature(photo_id=photo.pk, staff_user=staff)
        services.photo_feature(photo_id=photo.pk, staff_user=staff)
        assert PhotoOfTheDay.objects.count() == 1
        assert points_of(owner.user) == 10 + 25
        assert [p.photo_id for p in selectors.featured_photos()] == [photo.pk]

    def test_unfeature_takes_the_points_back(self):
        owner = make_volunteer()
        photo = approved_photo(volunteer=owner)
        staff = make_reviewer()
        services.photo_feature(photo_id=photo.pk, staff_user=staff)
        assert services.photo_unfeature(photo_id=photo.pk, staff_user=staff) is True
        assert points_of(owner.user) == 10
        assert selectors.featured_photos() == []

    def test_only_staff_can_feature(self):
        photo = approved_photo()
        with pytest.raises(Forbidden) as refused:
            services.photo_feature(photo_id=photo.pk, staff_user=make_volunteer().user)
        assert status_for(refused.value) == 403 and refused.value.code == "permission_denied"
        assert not PhotoOfTheDay.objects.exists()

    def test_only_approved_photos_can_be_featured(self):
        photo = upload_photo()
        with pytest.raises(Conflict) as refused:
            services.photo_feature(photo_id=photo.pk, staff_user=make_reviewer())
        assert status_for(refused.value) == 409 and refused.value.code == "not_approved"


class TestBestPhotos:
    def test_it_ranks_by_votes_plus_features_and_shows_public_photos_only(self):
        voted, featured, plain = approved_photo(), approved_photo(), approved_photo()
        shy = approved_photo(volunteer=make_volunteer(consent_public_credit=False))
        fans = [make_volunteer() for _ in range(3)]
        for fan in fans:
            services.vote_cast(user=fan.user, photo_id=voted.pk)
        services.photo_feature(photo_id=featured.pk, staff_user=make_reviewer())  # worth 5 votes
        services.photo_feature(photo_id=shy.pk, staff_user=make_reviewer())
        ranked = selectors.best_photos()
        assert [p.photo_id for p in ranked] == [featured.pk, voted.pk, plain.pk]
        assert ranked[1].votes == 3 and ranked[0].featured
        assert ranked[0].credit == featured.volunteer.volunteer.display_name
        assert shy.pk in [p.photo_id for p in selectors.best_photos(public_only=False)]

    def test_it_filters_by_approval_time(self):
        photo = approved_photo()
        later = timezone.now() + dt.timedelta(minutes=1)
        assert selectors.best_photos(since=later) == []
        assert [p.photo_id for p in selectors.best_photos(until=later)] == [photo.pk]


class TestNovelty:
    # Scoring real embeddings (the odd photo earns the most, a near-duplicate nothing, each photo once, labels
    # with too few photos wait) is tested after a real training run in test_training_link.py.

    def test_it_does_nothing_before_training_computed_features(self):
        label = make_label()
        for _ in range(10):
            approved_photo(label=label)
        result = services.novelty_award()
        assert result.photos_scored == 0
        assert not PhotoNovelty.objects.exists()

    def test_it_scores_nothing_and_logs_when_training_fails(self, monkeypatch, caplog):
        from training import selectors as training_selectors

        def broken(ids):
            raise RuntimeError("feature cache unreadable")

        monkeypatch.setattr(training_selectors, "photo_embeddings", broken)
        label = make_label()
        for _ in range(10):
            approved_photo(label=label)
        assert services.novelty_award().photos_scored == 0
        assert not PhotoNovelty.objects.exists()
        assert "photo_embeddings failed" in caplog.text

    def test_points_scale_above_the_percentile(self, settings):
        assert services.novelty_points(0.5) == 0
        assert services.novelty_points(0.75) == 1
        assert services.novelty_points(0.875) == 8
        assert services.novelty_points(1.0) == 15
