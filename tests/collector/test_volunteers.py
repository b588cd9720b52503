import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from collector import selectors
from collector.models import Photo, PhotoStatus, Volunteer
from tests.collector.asserts import assert_error
from tests.factories import client_for, make_label, make_photo, make_reviewer, make_volunteer

User = get_user_model()


@pytest.mark.django_db
class TestRegisterVolunteer:
    url = "/api/v1/volunteers/"

    def test_it_registers_with_all_fields(self):
        response = APIClient().post(self.url, {
            "display_name": "Ada.L", "password": "correct-horse-9", "email": "ada@example.org",
            "consent_training": True, "consent_public_credit": True,
        }, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert set(body) == {"id", "display_name", "token"}
        volunteer = Volunteer.objects.get(user_id=body["id"])
        assert volunteer.display_name == "Ada.L" and volunteer.user.username == "Ada.L"
        assert volunteer.user.email == "ada@example.org"
        assert volunteer.consent_training and volunteer.consent_public_credit
        assert volunteer.user.check_password("correct-horse-9")
        assert Token.objects.get(user=volunteer.user).key == body["token"]

    def test_it_registers_without_password_or_email(self):
        response = APIClient().post(self.url, {"display_name": "bob", "consent_training": True}, format="json")
        assert response.status_code == 201, response.content
        user = User.objects.get(username="bob")
        assert not user.has_usable_password()
        assert user.volunteer.consent_public_credit is False
        assert user.volunteer.public_name != "bob"  # no consent: no name on public pages

    def test_its_token_works_at_once(self):
        token = APIClient().post(self.url, {"display_name": "carol", "consent_training": True}, format="json").json()["token"]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert client.get("/api/v1/me/").json()["display_name"] == "carol"

    @pytest.mark.parametrize("consent", [False, None, "no"])
    def test_it_requires_consent_to_training(self, consent):
        payload = {"display_name": "dave"}
        if consent is not None:
            payload["consent_training"] = consent
        response = APIClient().post(self.url, payload, format="json")
        assert_error(response, 400, "invalid", ["consent_training"])
        assert not User.objects.filter(username="dave").exists()

    @pytest.mark.parametrize("name", ["erin", "ERIN", "Erin"])
    def test_it_refuses_a_taken_name_in_any_case(self, name):
        make_volunteer("erin")
        response = APIClient().post(self.url, {"display_name": name, "consent_training": True}, format="json")
        assert_error(response, 400, "invalid", ["display_name"])
        assert User.objects.filter(username__iexact="erin").count() == 1

    @pytest.mark.parametrize("name", ["", "a", "x" * 41, "has space", "<script>", "semi;colon"])
    def test_it_refuses_bad_names(self, name):
        response = APIClient().post(self.url, {"display_name": name, "consent_training": True}, format="json")
        assert_error(response, 400, "invalid", ["display_name"])
        assert not Volunteer.objects.exists()

    def test_it_refuses_a_weak_password_and_a_bad_email(self):
        response = APIClient().post(self.url, {"display_name": "frank", "password": "123", "email": "nope",
                                               "consent_training": True}, format="json")
        error = assert_error(response, 400, "invalid", ["password", "email"])
        assert error["fields"]["password"]
        assert not User.objects.filter(username="frank").exists()

    @pytest.mark.parametrize("password", ["Grace.Hopper", "hopper.grace1", "gracehopper!"])
    def test_it_refuses_a_password_like_the_display_name(self, password):
        response = APIClient().post(self.url, {"display_name": "grace.hopper", "password": password,
                                               "consent_training": True}, format="json")
        error = assert_error(response, 400, "invalid", ["password"])
        assert "too similar" in " ".join(error["fields"]["password"])
        assert not User.objects.filter(username="grace.hopper").exists()

    def test_it_refuses_a_password_like_the_email(self):
        response = APIClient().post(self.url, {"display_name": "gh", "password": "amazing.grace",
                                               "email": "amazing.grace@example.org", "consent_training": True},
                                    format="json")
        assert_error(response, 400, "invalid", ["password"])
        assert not User.objects.exists()

    def test_it_refuses_an_all_digit_password(self):
        response = APIClient().post(self.url, {"display_name": "ivy", "password": "8675309123",
                                               "consent_training": True}, format="json")
        error = assert_error(response, 400, "invalid", ["password"])
        assert "entirely numeric" in " ".join(error["fields"]["password"])
        assert not User.objects.filter(username="ivy").exists()

    @pytest.mark.parametrize("password", [" " * 8, " " * 20, "\t \t \t \t "])
    def test_it_refuses_a_password_of_spaces(self, password):
        response = APIClient().post(self.url, {"display_name": "jude", "password": password,
                                               "consent_training": True}, format="json")
        error = assert_error(response, 400, "invalid", ["password"])
        assert error["fields"]["password"] == ["A password cannot be only spaces."]
        assert not User.objects.filter(username="jude").exists(), "no account without a usable password"

    def test_a_password_is_kept_as_typed_spaces_included(self):
        response = APIClient().post(self.url, {"display_name": "kit", "password": " quiet-harbour-7 ",
                                               "consent_training": True}, format="json")
        assert response.status_code == 201, response.content
        as_typed = APIClient().post("/api/v1/auth/token/", {"username": "kit", "password": " quiet-harbour-7 "},
                                    format="json")
        trimmed = APIClient().post("/api/v1/auth/token/", {"username": "kit", "password": "quiet-harbour-7"},
                                   format="json")
        assert as_typed.status_code == 200 and trimmed.status_code == 400

    @pytest.mark.parametrize("name", [
        "\u0430lice",        # Cyrillic small a
        "\u0391LICE",        # Greek capital alpha
        "al\u0131ce",        # dotless i
        "\uff41\uff4c\uff49\uff43\uff45",  # full width
        "AL\u0406CE",        # Cyrillic capital byelorussian-ukrainian i
    ])
    def test_it_refuses_a_name_that_looks_like_a_taken_one(self, name):
        make_volunteer("alice")
        response = APIClient().post(self.url, {"display_name": name, "consent_training": True}, format="json")
        error = assert_error(response, 400, "invalid", ["display_name"])
        assert error["message"] == "That display name is taken."
        assert list(Volunteer.objects.values_list("display_name", flat=True)) == ["alice"]

    def test_names_that_only_share_letters_are_different(self):
        make_volunteer("alice")
        for name in ("alicia", "alice2", "malice"):
            response = APIClient().post(self.url, {"display_name": name, "consent_training": True}, format="json")
            assert response.status_code == 201, response.content

    def test_it_accepts_a_form_post(self):
        response = APIClient().post(self.url, {"display_name": "gina", "consent_training": "true"})
        assert response.status_code == 201, response.content


@pytest.mark.django_db
class TestStaffNamesAreReserved:
    """Issue 20: look-alikes of staff usernames registered freely, and sign-up said which staff names exist."""

    url = "/api/v1/volunteers/"

    def register(self, name):
        return APIClient().post(self.url, {"display_name": name, "consent_training": True}, format="json")

    @pytest.mark.parametrize("staff, look_alike", [
        ("admin", "\u0430dmin"),  # Cyrillic а
        ("rita", "r\u0456ta"),    # Ukrainian і
        ("rita", "RITA"),
        ("rita", "\uff52\uff49\uff54\uff41"),  # full width
    ])
    def test_a_staff_username_reserves_its_look_alikes(self, staff, look_alike):
        make_reviewer(staff)  # staff without a volunteer profile: they never uploaded
        error = assert_error(self.register(look_alike), 400, "invalid", ["display_name"])
        assert error["message"] == "That display name is taken."
        assert not Volunteer.objects.exists()

    def test_the_refusal_does_not_tell_a_staff_account_from_anyone_else(self):
        make_reviewer("rita")
        make_volunteer("maria")
        answers = [self.register(name).json() for name in ("r\u0456ta", "m\u0430ria", "admin", "root")]
        assert all(answer == answers[0] for answer in answers), answers

    def test_common_staff_names_are_refused_whether_or_not_such_an_account_exists(self):
        assert not User.objects.exists()
        for name in ("admin", "\u0430dmin", "Administrator", "support"):
            assert_error(self.register(name), 400, "invalid", ["display_name"])
        assert self.register("adminton").status_code == 201

    def test_the_real_admin_keeps_its_name_when_it_uploads(self):
        admin = User.objects.create_superuser("admin", "a@example.org", "admin-password-1")
        assert self.register("\u0430dmin").status_code == 400
        response = client_for(admin).get("/api/v1/me/")
        assert response.json()["display_name"] == "admin"

    def test_the_web_sign_up_refuses_them_too(self, client):
        make_reviewer("rita")
        response = client.post("/signup/", {"display_name": "r\u0456ta", "password": "a-long-password-1",
                                             "email": "", "consent_training": "on"})
        assert response.status_code == 400 and "Already taken." in response.content.decode()
        assert not Volunteer.objects.exists()


@pytest.mark.django_db(transaction=True)
class TestRacingSignUps:
    """Two sign-ups for look-alike names at once: the unique index decides, the loser gets the usual 400."""

    @pytest.fixture(autouse=True)
    def _real_database_only(self):
        from django.db import connection

        if connection.vendor != "postgresql":
            pytest.skip("row-level concurrency needs PostgreSQL (SQLite serialises writers)")

    def test_one_wins_and_the_other_is_told_the_name_is_taken(self):
        import threading
        from unittest import mock

        from django.db import connection

        barrier = threading.Barrier(2, timeout=20)
        manager_class = type(User.objects)
        real = manager_class.create_user

        def held(self, *args, **kwargs):
            barrier.wait()  # both have passed the "is the name free?" check
            return real(self, *args, **kwargs)

        results = [None, None]

        def sign_up(i, name):
            try:
                results[i] = APIClient().post("/api/v1/volunteers/", {"display_name": name, "consent_training": True},
                                              format="json")
            finally:
                connection.close()

        with mock.patch.object(manager_class, "create_user", held):
            threads = [threading.Thread(target=sign_up, args=(i, name)) for i, name in enumerate(["zoe", "z\u043ee"])]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)

        assert sorted(r.status_code for r in results) == [201, 400], [(r.status_code, r.content) for r in results]
        loser = next(r for r in results if r.status_code == 400)
        assert assert_error(loser, 400, "invalid", ["display_name"])["message"] == "That display name is taken."
        assert Volunteer.objects.count() == 1 and User.objects.count() == 1


@pytest.mark.django_db
class TestToken:
    url = "/api/v1/auth/token/"

    def test_it_returns_the_token_for_a_password(self):
        volunteer = make_volunteer("hank", password="hank-password-1")
        response = APIClient().post(self.url, {"username": "hank", "password": "hank-password-1"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json() == {"token": Token.objects.get(user=volunteer.user).key}

    def test_it_works_for_staff_without_a_token_yet(self):
        reviewer = make_reviewer("rita")
        Token.objects.filter(user=reviewer).delete()
        response = APIClient().post(self.url, {"username": "rita", "password": "review-pass-1"}, format="json")
        assert response.status_code == 200
        assert Token.objects.get(user=reviewer).key == response.json()["token"]

    @pytest.mark.parametrize("password", ["wrong-password", ""])
    def test_it_refuses_bad_credentials(self, password):
        make_volunteer("ivan", password="ivan-password-1")
        response = APIClient().post(self.url, {"username": "ivan", "password": password}, format="json")
        assert_error(response, 400)
        assert "token" not in response.json()

    def test_it_refuses_a_volunteer_without_password(self):
        make_volunteer("jane")
        response = APIClient().post(self.url, {"username": "jane", "password": ""}, format="json")
        assert_error(response, 400)


@pytest.mark.django_db
class TestMe:
    url = "/api/v1/me/"

    def test_it_shows_profile_and_counts(self):
        volunteer = make_volunteer("kim", email="kim@example.org")
        label = make_label("cup")
        make_photo(volunteer=volunteer, label=label)
        make_photo(volunteer=volunteer, label=label)
        make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED)
        make_photo(volunteer=volunteer, label=label, status=PhotoStatus.REJECTED)
        make_photo(label=label, status=PhotoStatus.APPROVED)  # someone else's
        body = client_for(volunteer.user).get(self.url).json()
        assert body["display_name"] == "kim" and body["email"] == "kim@example.org"
        assert body["photos"] == {"pending": 2, "approved": 1, "rejected": 1}
        assert body["is_reviewer"] is False and body["consent_training"] is True

    def test_it_says_who_reviews(self):
        assert client_for(make_reviewer()).get(self.url).json()["is_reviewer"] is True

    def test_staff_whose_username_looks_like_a_volunteers_name_get_a_distinct_one(self):
        make_volunteer("\u0430lice")  # Cyrillic а, registered first
        staff = make_reviewer("alice")
        response = client_for(staff).get(self.url)
        assert response.status_code == 200, response.content
        assert response.json()["display_name"] == f"alice-{staff.pk}"

    def test_it_updates_public_credit_consent(self):
        volunteer = make_volunteer("lee", consent_public_credit=True)
        response = client_for(volunteer.user).patch(self.url, {"consent_public_credit": False}, format="json")
        assert response.status_code == 200 and response.json()["consent_public_credit"] is False
        volunteer.refresh_from_db()
        assert volunteer.consent_public_credit is False

    def test_it_needs_a_token(self):
        assert_error(APIClient().get(self.url), 401, "not_authenticated")

    def test_it_refuses_a_bad_token(self):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
        assert_error(client.get(self.url), 401)


@pytest.mark.django_db
class TestDeleteAccount:
    url = "/api/v1/me/"

    def test_it_withdraws_photos_and_deletes_files(self, settings):
        from tests.conftest import stored_files

        volunteer = make_volunteer("mona")
        other = make_photo(status=PhotoStatus.APPROVED)
        label = make_label("cup")
        approved = make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED)
        pending = make_photo(volunteer=volunteer, label=label)
        mine = set(approved.storage_keys + pending.storage_keys)
        assert mine <= set(stored_files(settings.MEDIA_ROOT))
        assert approved in selectors.photos_approved()
        client = client_for(volunteer.user)

        with self.captureOnCommit():
            response = client.delete(self.url)
        assert response.status_code == 204

        assert not User.objects.filter(username="mona").exists()
        assert not Token.objects.filter(key=client._credentials["HTTP_AUTHORIZATION"].split()[1]).exists()
        for photo in (approved, pending):
            photo.refresh_from_db()
            assert photo.status == PhotoStatus.WITHDRAWN and photo.volunteer_id is None and photo.withdrawn_at
            assert photo.storage_keys == []
        assert list(selectors.photos_approved()) == [other]
        files = set(stored_files(settings.MEDIA_ROOT))
        assert not (files & mine), "the volunteer's files must leave storage"
        assert set(other.storage_keys) <= files, "nobody else's files are touched"
        assert_error(client.get(self.url), 401)

    def test_it_keeps_the_name_free_for_someone_new(self):
        volunteer = make_volunteer("nina")
        with self.captureOnCommit():
            client_for(volunteer.user).delete(self.url)
        response = APIClient().post("/api/v1/volunteers/", {"display_name": "nina", "consent_training": True}, format="json")
        assert response.status_code == 201

    @staticmethod
    def captureOnCommit():
        """Run on_commit callbacks (file deletion) inside the test transaction."""
        from django.test import TestCase

        return TestCase.captureOnCommitCallbacks(execute=True)

    def test_a_staff_account_is_refused_and_nothing_is_deleted(self):
        reviewer = make_reviewer("rita")
        from collector.services import volunteer_get_or_create_for_user

        photo = make_photo(volunteer=make_volunteer("tom"))  # someone else's, reviewed by rita below
        own = make_photo(volunteer=volunteer_get_or_create_for_user(user=reviewer))
        client = client_for(reviewer)
        with self.captureOnCommit():
            response = client.delete(self.url)
        error = assert_error(response, 403, "staff_account")
        assert "another admin" in error["message"]
        assert User.objects.filter(pk=reviewer.pk, is_staff=True).exists()
        assert Photo.objects.get(pk=own.pk).status == PhotoStatus.PENDING
        assert client.get(self.url).status_code == 200, "the token still works"
        review = client.post(f"/api/v1/photos/{photo.pk}/review/", {"decision": "approve"}, format="json")
        assert review.status_code == 200, review.content

    def test_the_last_superuser_survives_its_own_token(self):
        admin = User.objects.create_superuser("root", "root@example.org", "root-pass-1")
        with self.captureOnCommit():
            response = client_for(admin).delete(self.url)
        assert_error(response, 403, "staff_account")
        assert list(User.objects.filter(is_superuser=True).values_list("username", flat=True)) == ["root"]

    def test_a_superuser_without_staff_flag_is_refused_too(self):
        admin = User.objects.create_user("boss", password="boss-pass-1", is_superuser=True)
        assert_error(client_for(admin).delete(self.url), 403, "staff_account")
        assert User.objects.filter(username="boss").exists()

    def test_another_admin_still_removes_a_staff_account(self):
        from collector.services import volunteer_delete

        reviewer = make_reviewer("sam")
        with self.captureOnCommit():
            volunteer_delete(user=reviewer)
        assert not User.objects.filter(username="sam").exists()

    def test_withdrawn_photos_are_no_reviewers_business(self):
        volunteer = make_volunteer("olga")
        photo = make_photo(volunteer=volunteer)
        with self.captureOnCommit():
            client_for(volunteer.user).delete(self.url)
        response = client_for(make_reviewer()).post(f"/api/v1/photos/{photo.pk}/review/", {"decision": "approve"},
                                                    format="json")
        assert_error(response, 409)
        assert Photo.objects.get(pk=photo.pk).status == PhotoStatus.WITHDRAWN
