"""Sign-up, sign-in, sign-out and the volunteer's own page, without JavaScript."""

import pytest
from django.contrib.auth import get_user_model

from collector.models import PhotoStatus, Volunteer
from tests.factories import make_label, make_photo, make_volunteer

pytestmark = pytest.mark.django_db


def _signup_data(**overrides):
    data = {"display_name": "maria", "password": "a-long-password-1", "email": "", "consent_training": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


class TestSignUp:
    def test_it_shows_the_form_with_labels(self, client):
        response = client.get("/signup/")
        assert response.status_code == 200
        html = response.content.decode()
        for field in ("display_name", "password", "email", "consent_training", "consent_public_credit"):
            assert f'<label for="id_{field}"' in html
        assert 'name="csrfmiddlewaretoken"' in html

    def test_it_creates_a_volunteer_and_signs_them_in(self, client):
        response = client.post("/signup/", _signup_data(email="m@example.org", consent_public_credit="on"))
        assert response.status_code == 302
        assert response["Location"] == "/capture/"
        volunteer = Volunteer.objects.get(display_name="maria")
        assert volunteer.consent_training and volunteer.consent_public_credit
        assert volunteer.user.email == "m@example.org"
        assert volunteer.user.check_password("a-long-password-1")
        assert client.get("/me/").status_code == 200  # the session is signed in

    def test_it_requires_consent_to_training(self, client):
        response = client.post("/signup/", _signup_data(consent_training=None))
        assert response.status_code == 400
        assert "please agree to take part" in response.content.decode()
        assert not Volunteer.objects.exists()

    def test_it_refuses_a_taken_name_case_insensitively(self, client):
        make_volunteer("Maria")
        response = client.post("/signup/", _signup_data(display_name="maria"))
        assert response.status_code == 400
        assert "Already taken." in response.content.decode()
        assert Volunteer.objects.count() == 1

    def test_it_refuses_a_weak_password_and_a_name_with_spaces(self, client):
        response = client.post("/signup/", _signup_data(display_name="has space", password="password"))
        assert response.status_code == 400
        html = response.content.decode()
        assert "no spaces" in html
        assert "This password is too common." in html
        assert not get_user_model().objects.exists()

    def test_it_refuses_a_name_that_looks_like_a_taken_one(self, client):
        make_volunteer("maria")
        response = client.post("/signup/", _signup_data(display_name="m\u0430ria"))  # Cyrillic а
        assert response.status_code == 400
        assert "Already taken." in response.content.decode()
        assert list(Volunteer.objects.values_list("display_name", flat=True)) == ["maria"]

    @pytest.mark.parametrize("password, reason", [
        ("maria.lopez!", "too similar to the display name"),
        ("Lopez.Maria", "too similar to the display name"),
        ("9081726354", "entirely numeric"),
        (" " * 12, "cannot be only spaces"),
    ])
    def test_it_refuses_a_password_like_the_name_all_digits_or_spaces(self, client, password, reason):
        response = client.post("/signup/", _signup_data(display_name="maria.lopez", password=password))
        assert response.status_code == 400
        assert reason in response.content.decode()
        assert not get_user_model().objects.exists()

    def test_the_password_signs_in_as_typed_spaces_included(self, client):
        response = client.post("/signup/", _signup_data(password="  a-long-password-1"))
        assert response.status_code == 302
        client.post("/signout/")
        assert client.post("/signin/", {"username": "maria", "password": "a-long-password-1"}).status_code == 200
        assert client.post("/signin/", {"username": "maria", "password": "  a-long-password-1"}).status_code == 302

    def test_it_follows_a_safe_next_and_ignores_another_host(self, client):
        response = client.post("/signup/", _signup_data(next="/gallery/"))
        assert response["Location"] == "/gallery/"
        client.post("/signout/")
        response = client.post("/signup/", _signup_data(display_name="other", next="https://evil.example/"))
        assert response["Location"] == "/capture/"


class TestSignInOut:
    def test_it_signs_in_with_display_name_and_password(self, client):
        make_volunteer("ana", password="a-long-password-1")
        response = client.post("/signin/", {"username": "ana", "password": "a-long-password-1"})
        assert response.status_code == 302
        assert response["Location"] == "/me/"
        assert "ana" in client.get("/me/").content.decode()

    def test_it_says_when_the_password_is_wrong(self, client):
        make_volunteer("ana", password="a-long-password-1")
        response = client.post("/signin/", {"username": "ana", "password": "wrong-password"})
        assert response.status_code == 200
        assert "enter a correct username and password" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_it_signs_out_with_a_post(self, client):
        volunteer = make_volunteer("ana")
        client.force_login(volunteer.user)
        response = client.post("/signout/")
        assert response.status_code == 302
        assert "_auth_user_id" not in client.session


class TestMePage:
    def test_it_sends_anonymous_visitors_to_sign_in(self, client):
        response = client.get("/me/")
        assert response.status_code == 302
        assert response["Location"] == "/signin/?next=/me/"

    def test_it_lists_own_photos_with_status_and_rejection_reason(self, client):
        volunteer = make_volunteer("ana", consent_public_credit=False)
        label = make_label("mug")
        pending = make_photo(volunteer=volunteer, label=label)
        rejected = make_photo(volunteer=volunteer, label=label, status=PhotoStatus.REJECTED)
        someone_elses = make_photo(label=label)
        client.force_login(volunteer.user)
        html = client.get("/me/").content.decode()
        assert f'data-photo-id="{pending.pk}"' in html
        assert f'data-photo-id="{rejected.pk}"' in html
        assert f'data-photo-id="{someone_elses.pk}"' not in html
        assert "Pending review" in html
        assert "Reason: Blurry" in html
        assert f'src="/api/v1/photos/{pending.pk}/thumbnail/"' in html
        assert 'loading="lazy"' in html and 'alt="Your photo of Mug"' in html
        # Without public credit the page says how the volunteer appears publicly.
        assert f"Volunteer #{volunteer.user_id}" in html


class TestThrottling:
    @pytest.fixture
    def one_per_hour(self):
        from unittest import mock

        from rest_framework.throttling import ScopedRateThrottle

        rates = {**ScopedRateThrottle.THROTTLE_RATES, "anon_signup": "2/hour"}
        with mock.patch.object(ScopedRateThrottle, "THROTTLE_RATES", rates):
            yield

    def test_it_limits_sign_ups_per_client_like_the_api(self, client, one_per_hour):
        client.post("/signup/", _signup_data(display_name="first"))
        client.post("/signout/")
        # The API shares the budget: this registration is the second and last allowed.
        from rest_framework.test import APIClient

        assert APIClient().post("/api/v1/volunteers/", {"display_name": "second", "consent_training": True},
                                format="json").status_code == 201
        response = client.post("/signup/", _signup_data(display_name="third"))
        assert response.status_code == 429
        assert "Too many attempts from your connection. Try again in 60 minutes." in response.content.decode()
        assert sorted(Volunteer.objects.values_list("display_name", flat=True)) == ["first", "second"]

    def test_it_limits_sign_in_attempts(self, client, one_per_hour):
        make_volunteer("ana", password="a-long-password-1")
        for _ in range(2):
            assert client.post("/signin/", {"username": "ana", "password": "guess-one"}).status_code == 200
        response = client.post("/signin/", {"username": "ana", "password": "a-long-password-1"})
        assert response.status_code == 429
        assert "Too many attempts" in response.content.decode()
        assert "_auth_user_id" not in client.session


class TestMyPhotosPages:
    def test_it_pages_through_many_photos(self, client, monkeypatch):
        from pages import views

        monkeypatch.setattr(views, "MY_PHOTOS_PAGE_SIZE", 2)
        ana = make_volunteer("ana")
        photos = [make_photo(volunteer=ana, label=make_label("mug")) for _ in range(3)]
        client.force_login(ana.user)
        first = client.get("/me/").content.decode()
        assert f'data-photo-id="{photos[2].pk}"' in first and f'data-photo-id="{photos[0].pk}"' not in first
        assert "Page 1 of 2" in first and 'href="?page=2" rel="next"' in first
        second = client.get("/me/?page=2").content.decode()
        assert f'data-photo-id="{photos[0].pk}"' in second and f'data-photo-id="{photos[2].pk}"' not in second
