"""The camera page without JavaScript: the form posts to /capture/ and the upload service stores the photo."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from collector.models import Photo
from tests.factories import image_bytes, make_label, make_volunteer

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client):
    volunteer = make_volunteer("ana")
    client.force_login(volunteer.user)
    return volunteer


class TestCapturePage:
    def test_it_tells_a_signed_out_visitor_what_it_is_and_offers_sign_up_or_sign_in(self, client):
        response = client.get("/capture/?target=mug")
        assert response.status_code == 200
        html = response.content.decode()
        text = " ".join(html.split())
        assert "This is the camera page: you photograph an everyday object" in text
        assert '<a class="btn" href="/signup/?next=/capture/%3Ftarget%3Dmug">Join as a volunteer</a>' in html
        assert '<a class="btn secondary" href="/signin/?next=/capture/%3Ftarget%3Dmug">Sign in</a>' in html
        assert 'type="file"' not in html  # no camera form that could not be sent

    def test_sign_up_from_there_leads_back_to_the_camera_with_the_label_chosen(self, client):
        make_label("mug")
        response = client.post("/signup/", {
            "display_name": "newbie", "password": "a-long-password-1", "consent_training": "on",
            "next": "/capture/?target=mug"})
        assert response.status_code == 302 and response["Location"] == "/capture/?target=mug"
        html = client.get(response["Location"]).content.decode()
        assert '<option value="mug" data-label="mug" selected>' in html

    def test_a_form_posted_after_signing_out_stores_nothing_and_says_why(self, client):
        make_label("mug")
        response = client.post("/capture/", {"target": "mug", "image": SimpleUploadedFile(
            "p.jpg", image_bytes(), content_type="image/jpeg")})
        assert response.status_code == 403
        assert "You were signed out, so the photo was not sent." in response.content.decode()
        assert Photo.objects.count() == 0

    def test_it_offers_the_camera_and_the_active_labels(self, client, signed_in):
        make_label("mug")
        make_label("old-phone", active=False)
        html = client.get("/capture/").content.decode()
        assert 'type="file" name="image" id="id_image" accept="image/*" capture="environment"' in html
        assert '<option value="mug" data-label="mug"' in html
        assert "old-phone" not in html
        assert '<progress id="progress"' in html
        assert "js/capture.js" in html

    def test_it_preselects_nothing_when_a_challenge_link_outlived_its_challenge(self, client, signed_in):
        make_label("mug")
        html = client.get("/capture/?target=challenge").content.decode()
        assert '<option value="" disabled selected>Pick a label</option>' in html
        assert 'value="challenge"' not in html

    def test_it_stores_a_photo_posted_without_javascript(self, client, signed_in):
        make_label("mug")
        response = client.post("/capture/", {
            "target": "mug", "image": SimpleUploadedFile("p.jpg", image_bytes(size=(64, 48))), "idempotency_key": "k1",
        })
        assert response.status_code == 201
        photo = Photo.objects.get()
        assert photo.volunteer == signed_in.user and photo.label.slug == "mug" and photo.status == "pending"
        html = response.content.decode()
        assert f'data-photo-id="{photo.pk}"' in html and "Pending review" in html
        assert f'src="/api/v1/photos/{photo.pk}/thumbnail/"' in html

    def test_it_enters_todays_challenge(self, client, signed_in):
        from django.utils import timezone

        from challenges import periods, services as challenge_services

        mug = make_label("mug")
        make_label("cup")
        challenge = challenge_services.challenge_create(day=periods.challenge_date_at(timezone.now()), label=mug)
        html = client.get("/capture/").content.decode()
        assert (f'<option value="challenge" data-label="mug" data-challenge="{challenge.pk}" selected>'
                "Today's challenge: Mug</option>") in html
        response = client.post("/capture/", {"target": "challenge",
                                             "image": SimpleUploadedFile("p.jpg", image_bytes(size=(64, 48)))})
        assert response.status_code == 201
        photo = Photo.objects.get()
        assert photo.challenge_id == challenge.pk and photo.label == mug

    def test_it_does_not_store_a_resubmitted_form_twice(self, client, signed_in):
        make_label("mug")
        data = image_bytes(size=(64, 48))
        for _ in range(2):
            response = client.post("/capture/", {"target": "mug", "image": SimpleUploadedFile("p.jpg", data),
                                                 "idempotency_key": "same"})
        assert response.status_code == 200
        assert "already received earlier" in response.content.decode()
        assert Photo.objects.count() == 1

    def test_it_explains_a_bad_upload(self, client, signed_in):
        make_label("mug")
        response = client.post("/capture/", {"target": "mug", "image": SimpleUploadedFile("p.jpg", b"not an image")})
        assert response.status_code == 415  # what the API answers for the same bytes
        assert '<p class="error">' in response.content.decode()
        assert not Photo.objects.exists()
        response = client.post("/capture/", {"target": "mug"})
        assert response.status_code == 400
        assert "Choose or take a photo first." in response.content.decode()

    def test_it_counts_uploads_against_the_apis_upload_rate(self, client, signed_in, settings):
        from tests.factories import client_for, upload

        settings.PHOTO_UPLOAD_RATE = "2/hour"
        make_label("mug")
        first = client.post("/capture/", {"target": "mug", "image": SimpleUploadedFile("a.jpg", image_bytes(seed=1))})
        assert first.status_code == 201
        assert upload(client_for(signed_in.user), image_bytes(seed=2), label="mug").status_code == 201  # same budget
        third = client.post("/capture/", {"target": "mug", "image": SimpleUploadedFile("c.jpg", image_bytes(seed=3))})
        assert third.status_code == 429
        assert "Too many uploads. Try again in 60 minutes." in third.content.decode()
        assert Photo.objects.count() == 2
