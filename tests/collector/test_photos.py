"""GET /api/v1/photos/, /photos/{id}/ and /photos/{id}/thumbnail/: a volunteer sees their own photos."""

import pytest
from django.core.files.storage import default_storage
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient

from collector.models import PhotoStatus
from tests.collector.asserts import assert_error
from tests.factories import client_for, make_label, make_photo, make_reviewer, make_volunteer


@pytest.mark.django_db
class TestPhotoList:
    url = "/api/v1/photos/"

    def test_it_lists_own_photos_newest_first(self, api, volunteer, label):
        mine = [make_photo(volunteer=volunteer, label=label) for _ in range(3)]
        make_photo(label=label)  # someone else's
        body = api.get(self.url).json()
        assert body["count"] == 3
        assert [row["id"] for row in body["results"]] == [p.pk for p in reversed(mine)]
        assert body["results"][0]["status"] == "pending" and body["results"][0]["label"] == "mug"

    def test_it_paginates(self, api, volunteer, label, monkeypatch):
        monkeypatch.setattr(PageNumberPagination, "page_size", 2)
        ids = [make_photo(volunteer=volunteer, label=label).pk for _ in range(5)]
        first = api.get(self.url).json()
        assert first["count"] == 5 and len(first["results"]) == 2 and first["next"] and first["previous"] is None
        seen = [row["id"] for row in first["results"]]
        page = first
        while page["next"]:
            page = api.get(page["next"]).json()
            seen += [row["id"] for row in page["results"]]
        assert seen == list(reversed(ids))
        assert_error(api.get(self.url + "?page=99"), 404, "not_found")

    def test_it_filters_by_status_and_shows_the_reason(self, api, volunteer, label):
        make_photo(volunteer=volunteer, label=label)
        approved = make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED)
        rejected = make_photo(volunteer=volunteer, label=label, status=PhotoStatus.REJECTED)
        assert [r["id"] for r in api.get(self.url + "?status=approved").json()["results"]] == [approved.pk]
        rows = api.get(self.url + "?status=rejected").json()["results"]
        assert [r["id"] for r in rows] == [rejected.pk]
        assert rows[0]["rejection_reason"] == "blurry" and rows[0]["reviewed_at"]
        assert api.get(self.url + "?status=pending").json()["count"] == 1

    def test_it_refuses_an_unknown_status(self, api):
        assert_error(api.get(self.url + "?status=lost"), 400, "invalid", ["status"])

    def test_it_needs_a_token(self):
        assert_error(APIClient().get(self.url), 401, "not_authenticated")


@pytest.mark.django_db
class TestPhotoDetail:
    def test_it_shows_own_photo(self, api, volunteer, label):
        photo = make_photo(volunteer=volunteer, label=label)
        body = api.get(f"/api/v1/photos/{photo.pk}/").json()
        assert body["id"] == photo.pk and body["sha256"] == photo.sha256

    def test_anyone_elses_photo_is_a_404(self, api, label):
        other = make_photo(label=label, status=PhotoStatus.APPROVED)
        assert_error(api.get(f"/api/v1/photos/{other.pk}/"), 404, "not_found")
        assert_error(api.get("/api/v1/photos/999999/"), 404, "not_found")


@pytest.mark.django_db
class TestThumbnail:
    def thumb(self, client, photo):
        return client.get(f"/api/v1/photos/{photo.pk}/thumbnail/")

    def test_the_owner_fetches_it_with_their_token(self, api, volunteer, label):
        photo = make_photo(volunteer=volunteer, label=label)
        response = self.thumb(api, photo)
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "private" in response["Cache-Control"]
        with default_storage.open(photo.thumbnail_key, "rb") as handle:
            assert b"".join(response.streaming_content) == handle.read()

    def test_other_volunteers_and_strangers_get_404_for_pending_photos(self, label):
        photo = make_photo(label=label)
        assert_error(self.thumb(client_for(make_volunteer().user), photo), 404)
        assert_error(self.thumb(APIClient(), photo), 404)

    def test_reviewers_see_pending_photos(self, label):
        photo = make_photo(label=label)
        assert self.thumb(client_for(make_reviewer()), photo).status_code == 200

    def test_approved_photos_of_consenting_volunteers_are_public(self, label):
        shy = make_volunteer(consent_public_credit=False)
        public = make_photo(volunteer=make_volunteer(consent_public_credit=True), label=label, status=PhotoStatus.APPROVED)
        private = make_photo(volunteer=shy, label=label, status=PhotoStatus.APPROVED)
        response = self.thumb(APIClient(), public)
        assert response.status_code == 200 and "public" in response["Cache-Control"]
        assert_error(self.thumb(APIClient(), private), 404)
        rejected = make_photo(volunteer=make_volunteer(consent_public_credit=True), label=make_label(),
                              status=PhotoStatus.REJECTED)
        assert_error(self.thumb(APIClient(), rejected), 404)

    def test_a_missing_file_is_a_404(self, api, volunteer, label):
        photo = make_photo(volunteer=volunteer, label=label)
        default_storage.delete(photo.thumbnail_key)
        assert_error(self.thumb(api, photo), 404)
