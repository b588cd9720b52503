"""POST /api/v1/photos/{id}/review/: reviewers approve, reject with a reason, relabel."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from collector import selectors
from collector.models import Photo, PhotoReview, PhotoStatus
from tests.collector.asserts import assert_error
from tests.factories import client_for, make_label, make_photo, make_reviewer, make_volunteer


def review(client, photo, **data):
    return client.post(f"/api/v1/photos/{photo.pk}/review/", data, format="json")


@pytest.fixture
def reviewer(db):
    return make_reviewer("rev")


@pytest.fixture
def photo(label, volunteer):
    return make_photo(volunteer=volunteer, label=label)


@pytest.mark.django_db
class TestReviewApi:
    def test_it_approves_and_records_who_and_when(self, reviewer, photo):
        before = timezone.now()
        response = review(client_for(reviewer), photo, decision="approve")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "approved"
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.APPROVED and photo.reviewed_by == reviewer
        assert photo.reviewed_at >= before and photo.approved_at >= before
        decision = PhotoReview.objects.get(photo=photo)
        assert decision.reviewer == reviewer and decision.decision == "approved" and decision.created_at >= before
        assert photo in selectors.photos_approved()

    @pytest.mark.parametrize("reason", ["blurry", "wrong_label", "duplicate", "inappropriate", "other"])
    def test_it_rejects_with_a_reason(self, reviewer, photo, reason, api):
        response = review(client_for(reviewer), photo, decision="reject", reason=reason, note="see chat")
        assert response.status_code == 200, response.content
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.REJECTED and photo.rejection_reason == reason
        assert photo not in selectors.photos_approved()
        mine = api.get(f"/api/v1/photos/{photo.pk}/").json()
        assert mine["status"] == "rejected" and mine["rejection_reason"] == reason, "the volunteer sees why"

    def test_a_rejection_needs_a_reason(self, reviewer, photo):
        assert_error(review(client_for(reviewer), photo, decision="reject"), 400, "invalid", ["reason"])
        assert_error(review(client_for(reviewer), photo, decision="reject", reason="ugly"), 400, "invalid", ["reason"])
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.PENDING and not PhotoReview.objects.exists()

    def test_it_relabels_while_approving(self, reviewer, photo):
        cup = make_label("cup")
        response = review(client_for(reviewer), photo, decision="approve", label="cup")
        assert response.status_code == 200 and response.json()["label"] == "cup"
        photo.refresh_from_db()
        assert photo.label == cup
        decision = PhotoReview.objects.get(photo=photo)
        assert (decision.label_before.slug, decision.label_after.slug) == ("mug", "cup")

    def test_an_unknown_label_is_refused(self, reviewer, photo):
        assert_error(review(client_for(reviewer), photo, decision="approve", label="nope"), 400, fields=["label"])
        assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.PENDING

    def test_a_later_rejection_takes_the_photo_out_of_datasets(self, reviewer, photo):
        review(client_for(reviewer), photo, decision="approve")
        second = make_reviewer()
        review(client_for(second), photo, decision="reject", reason="wrong_label")
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.REJECTED and photo.approved_at is None and photo.reviewed_by == second
        assert photo not in selectors.photos_approved()
        assert list(PhotoReview.objects.filter(photo=photo).values_list("reviewer", "decision")) == [
            (reviewer.pk, "approved"), (second.pk, "rejected")]

    def test_reviewers_never_review_their_own_photos(self, label):
        from collector.services import volunteer_get_or_create_for_user

        reviewer = make_reviewer()
        own = make_photo(volunteer=volunteer_get_or_create_for_user(user=reviewer), label=label)
        assert_error(review(client_for(reviewer), own, decision="approve"), 403, "own_photo")
        assert_error(review(client_for(reviewer), own, decision="reject", reason="blurry"), 403, "own_photo")
        assert Photo.objects.get(pk=own.pk).status == PhotoStatus.PENDING

    def test_volunteers_without_the_permission_get_403(self, photo, label):
        other = make_volunteer()
        assert_error(review(client_for(other.user), photo, decision="approve"), 403, "permission_denied")
        from django.contrib.auth import get_user_model

        staff = get_user_model().objects.create_user("plainstaff", password="x-pass-word-1", is_staff=True)
        assert_error(review(client_for(staff), photo, decision="approve"), 403)
        assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.PENDING

    def test_strangers_get_401(self, photo):
        assert_error(review(APIClient(), photo, decision="approve"), 401)

    def test_an_unknown_photo_is_a_404(self, reviewer):
        assert_error(client_for(reviewer).post("/api/v1/photos/424242/review/", {"decision": "approve"},
                                               format="json"), 404, "not_found")

    def test_a_bad_decision_is_a_400(self, reviewer, photo):
        assert_error(review(client_for(reviewer), photo, decision="maybe"), 400, "invalid", ["decision"])

    def test_sending_a_decision_twice_records_it_once(self, reviewer, photo):
        for _ in range(2):
            assert review(client_for(reviewer), photo, decision="reject", reason="blurry").status_code == 200
        assert PhotoReview.objects.filter(photo=photo).count() == 1
        review(client_for(reviewer), photo, decision="reject", reason="duplicate")  # another reason: a new decision
        assert list(PhotoReview.objects.filter(photo=photo).values_list("reason", flat=True)) == ["blurry", "duplicate"]

    def test_an_api_only_reviewer_needs_the_permission_not_staff_status(self, photo):
        from django.contrib.auth.models import Permission

        user = make_volunteer().user
        user.user_permissions.add(Permission.objects.get(codename="review_photo"))
        response = review(client_for(user), photo, decision="approve")
        assert response.status_code == 200, response.content
        assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.APPROVED



@pytest.mark.django_db
class TestReviewQueueApi:
    url = "/api/v1/review/queue/"

    def test_it_lists_pending_photos_disputed_first_then_oldest_never_ones_own(self, reviewer, label):
        from collector.services import volunteer_get_or_create_for_user

        older, newer, disputed = (make_photo(label=label) for _ in range(3))
        Photo.objects.filter(pk=disputed.pk).update(disputed=True)
        make_photo(volunteer=volunteer_get_or_create_for_user(user=reviewer), label=label)  # own: never listed
        make_photo(label=label, status=PhotoStatus.APPROVED)  # decided: not listed
        body = client_for(reviewer).get(self.url).json()
        assert [item["id"] for item in body["results"]] == [disputed.pk, older.pk, newer.pk]
        assert body["results"][0]["disputed"] is True and body["results"][1]["flag"] == ""
        assert client_for(reviewer).get(self.url + "?label=nope").json()["count"] == 0

    def test_only_reviewers_and_only_known_flags(self, reviewer, volunteer):
        assert_error(client_for(volunteer.user).get(self.url), 403, "permission_denied")
        assert_error(APIClient().get(self.url), 401)
        assert_error(client_for(reviewer).get(self.url + "?flag=blurry"), 400, "invalid", ["flag"])
