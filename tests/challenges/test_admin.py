"""Admin: staff plan challenges ahead, feature photos from the gallery, rebuild scores."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from challenges import periods
from challenges.models import Challenge, PhotoOfTheDay, Score
from tests.challenges.helpers import approved_photo, ledger_sum, make_challenge, points_of, upload_photo
from tests.factories import make_label, make_volunteer

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "boss-pass-1")
    client.force_login(user)
    client.user = user
    return client


class TestChallengeAdmin:
    def test_the_add_form_suggests_the_next_free_day_and_a_label(self, staff_client):
        make_label("mug", name="Mug")
        today = periods.challenge_date_at(timezone.now())
        make_challenge(day=today)
        response = staff_client.get("/admin/challenges/challenge/add/")
        assert response.status_code == 200
        html = response.content.decode()
        assert (today + dt.timedelta(days=1)).isoformat() in html
        assert "Photograph a mug somewhere nobody would expect one." in html

    def test_staff_plan_a_challenge_ahead_with_the_default_window(self, staff_client):
        label = make_label("mug")
        day = periods.challenge_date_at(timezone.now()) + dt.timedelta(days=3)
        response = staff_client.post("/admin/challenges/challenge/add/", {
            "date": day.isoformat(), "label": label.pk, "title": "Mugs outdoors", "prompt": "A mug in a tree",
            "description": "", "starts_at_0": "", "starts_at_1": "", "ends_at_0": "", "ends_at_1": "",
            "bonus_points": "",
        })
        assert response.status_code == 302, response.content.decode()[:3000]
        challenge = Challenge.objects.get(date=day)
        assert challenge.planned_by == staff_client.user
        assert (challenge.starts_at, challenge.ends_at) == periods.challenge_window(day)
        assert challenge.bonus_points == 20

    def test_a_repeat_within_the_window_is_allowed_with_a_warning(self, staff_client):
        label = make_label("mug")
        day = periods.challenge_date_at(timezone.now())
        make_challenge(label=label, day=day)
        response = staff_client.post("/admin/challenges/challenge/add/", {
            "date": (day + dt.timedelta(days=2)).isoformat(), "label": label.pk, "title": "Again", "prompt": "p",
            "description": "", "starts_at_0": "", "starts_at_1": "", "ends_at_0": "", "ends_at_1": "",
            "bonus_points": "5",
        }, follow=True)
        assert response.status_code == 200
        assert "staff override" in response.content.decode()
        assert Challenge.objects.count() == 2


class TestGalleryAdmin:
    def test_the_feature_action_makes_photos_of_the_day(self, staff_client):
        owner = make_volunteer()
        photo = approved_photo(volunteer=owner)
        listing = staff_client.get("/admin/challenges/approvedphoto/")
        assert listing.status_code == 200
        assert f"/api/v1/photos/{photo.pk}/thumbnail/" in listing.content.decode()
        response = staff_client.post("/admin/challenges/approvedphoto/", {
            "action": "feature_photos", "_selected_action": [photo.pk]}, follow=True)
        assert response.status_code == 200
        assert PhotoOfTheDay.objects.filter(photo=photo).exists()
        assert points_of(owner.user) == 10 + 25

    def test_a_photo_rejected_meanwhile_is_reported_and_the_others_are_featured(self, staff_client, monkeypatch):
        from challenges import services
        from collector.models import Photo, PhotoStatus

        first, second = approved_photo(volunteer=make_volunteer("ann")), approved_photo(volunteer=make_volunteer("bo"))
        real = services.photo_feature

        def another_reviewer_rejects_first_meanwhile(*, photo_id, staff_user):
            if photo_id == first.pk:
                Photo.objects.filter(pk=photo_id).update(status=PhotoStatus.REJECTED)
            return real(photo_id=photo_id, staff_user=staff_user)

        monkeypatch.setattr(services, "photo_feature", another_reviewer_rejects_first_meanwhile)
        response = staff_client.post("/admin/challenges/approvedphoto/", {
            "action": "feature_photos", "_selected_action": [first.pk, second.pk]}, follow=True)
        page = response.content.decode()
        assert response.status_code == 200
        assert f"Photo {first.pk} not featured: Only approved photos can be featured." in page
        assert "Featured 1 photo(s)." in page
        assert list(PhotoOfTheDay.objects.values_list("photo_id", flat=True)) == [second.pk]

    def test_removing_a_feature_in_the_admin_takes_its_points_back(self, staff_client):
        owner = make_volunteer()
        photo = approved_photo(volunteer=owner)
        staff_client.post("/admin/challenges/approvedphoto/", {"action": "feature_photos", "_selected_action": [photo.pk]})
        feature = PhotoOfTheDay.objects.get()
        response = staff_client.post(f"/admin/challenges/photooftheday/{feature.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert not PhotoOfTheDay.objects.exists()
        assert points_of(owner.user) == 10


    def test_editing_a_feature_to_another_photo_moves_its_points_with_it(self, staff_client, settings):
        first_owner, second_owner = make_volunteer(), make_volunteer()
        first, second = approved_photo(volunteer=first_owner), approved_photo(volunteer=second_owner)
        staff_client.post("/admin/challenges/approvedphoto/", {"action": "feature_photos", "_selected_action": [first.pk]})
        feature = PhotoOfTheDay.objects.get()
        assert points_of(first_owner.user) == settings.POINTS_PHOTO_APPROVED + settings.POINTS_FEATURED
        day = periods.local_date(timezone.now()) + dt.timedelta(days=1)
        response = staff_client.post(f"/admin/challenges/photooftheday/{feature.pk}/change/",
                                     {"photo": second.pk, "featured_on": day.isoformat()})
        assert response.status_code == 302, response.content.decode()[:2000]
        feature.refresh_from_db()
        assert (feature.photo_id, feature.featured_on) == (second.pk, day)
        assert points_of(first_owner.user) == settings.POINTS_PHOTO_APPROVED, "the old photo's feature points left"
        assert points_of(second_owner.user) == settings.POINTS_PHOTO_APPROVED + settings.POINTS_FEATURED
        assert ledger_sum(first_owner.user) == points_of(first_owner.user)
        assert ledger_sum(second_owner.user) == points_of(second_owner.user)

    def test_a_feature_cannot_be_moved_to_a_photo_that_is_not_approved(self, staff_client, settings):
        owner = make_volunteer()
        photo = approved_photo(volunteer=owner)
        pending = upload_photo()
        staff_client.post("/admin/challenges/approvedphoto/", {"action": "feature_photos", "_selected_action": [photo.pk]})
        feature = PhotoOfTheDay.objects.get()
        response = staff_client.post(f"/admin/challenges/photooftheday/{feature.pk}/change/",
                                     {"photo": pending.pk, "featured_on": feature.featured_on.isoformat()}, follow=True)
        assert "Only approved photos can be featured." in response.content.decode()
        assert PhotoOfTheDay.objects.get().photo_id == photo.pk
        assert points_of(owner.user) == settings.POINTS_PHOTO_APPROVED + settings.POINTS_FEATURED


class TestScoreAdmin:
    def test_the_rebuild_action_restores_scores_from_the_ledger(self, staff_client):
        owner = make_volunteer()
        approved_photo(volunteer=owner)
        row = Score.objects.filter(volunteer=owner.user).first()
        Score.objects.update(points=999)
        response = staff_client.post("/admin/challenges/score/", {"action": "rebuild_from_ledger",
                                                                 "_selected_action": [row.pk]}, follow=True)
        assert response.status_code == 200
        assert points_of(owner.user) == 10
        assert staff_client.get("/admin/challenges/pointentry/").status_code == 200
