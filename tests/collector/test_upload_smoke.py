import pytest

from collector.models import Photo
from tests.factories import client_for, image_bytes, make_label, make_volunteer, upload


@pytest.mark.django_db
class TestUploadSmoke:
    def test_it_creates_a_pending_photo(self, settings):
        label = make_label("mug")
        volunteer = make_volunteer()
        response = upload(client_for(volunteer.user), image_bytes(size=(800, 600)), label="mug")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["status"] == "pending" and body["label"] == "mug"
        assert (body["width"], body["height"]) == (800, 600)
        photo = Photo.objects.get(pk=body["id"])
        assert photo.label == label
