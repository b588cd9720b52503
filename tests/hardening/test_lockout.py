"""Sign-in brute force: django-axes locks out an account per client and a client for every account, growing,
logged, unlockable; never an account for everyone."""

import datetime as dt
import logging

import pytest
from axes.models import AccessAttempt, AccessAttemptExpiration, AccessFailureLog
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import make_volunteer

pytestmark = pytest.mark.django_db

ADMIN_PASSWORD = "the-right-admin-password"


@pytest.fixture(autouse=True)
def _limits(settings, monkeypatch):
    settings.LOGIN_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_CLIENT_FAILURE_LIMIT = 5  # TestTwoLimits sets its own
    settings.LOGIN_LOCKOUT_MINUTES = 15
    settings.LOGIN_LOCKOUT_MAX_MINUTES = 24 * 60
    # The per-client request throttles are not what is tested here.
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "anon_signup", "10000/hour")


@pytest.fixture
def admin_user():
    return get_user_model().objects.create_superuser("operator", "ops@example.org", ADMIN_PASSWORD)


def admin_sign_in(client, password, username="operator", **extra):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"},
                       **extra)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def age_records(minutes: float):
    """Move every recorded failure `minutes` into the past, as if that much time went by."""
    delta = dt.timedelta(minutes=minutes)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - delta)
    AccessAttemptExpiration.objects.update(expires_at=F("expires_at") - delta)
    AccessFailureLog.objects.update(attempt_time=F("attempt_time") - delta)


class TestAdminSignIn:
    def test_sixty_wrong_passwords_then_the_right_one_does_not_sign_in(self, admin_user):
        client = Client()
        answers = [admin_sign_in(client, f"guess-{i}").status_code for i in range(60)]
        right = admin_sign_in(client, ADMIN_PASSWORD)

        assert answers[:4] == [200] * 4  # the form again, with its error
        assert set(answers[5:]) == {429}
        assert right.status_code == 429 and "Too many failed sign-ins" in right.content.decode()
        assert not signed_in(client)
        assert client.get("/admin/").status_code == 302  # still sent to the sign-in page

    def test_the_right_password_works_before_the_limit(self, admin_user):
        client = Client()
        for i in range(4):
            admin_sign_in(client, f"guess-{i}")
        assert admin_sign_in(client, ADMIN_PASSWORD).status_code == 302 and signed_in(client)


class TestPerAccountAndPerClient:
    def test_an_outsider_cannot_keep_the_superuser_out(self, admin_user):
        # Issue 20: ten wrong passwords from anywhere locked the superuser out for everyone.
        attacker = Client()
        answers = [admin_sign_in(attacker, f"guess-{i}", REMOTE_ADDR="198.51.100.66").status_code for i in range(60)]
        assert set(answers[5:]) == {429}
        assert admin_sign_in(attacker, ADMIN_PASSWORD, REMOTE_ADDR="198.51.100.66").status_code == 429
        owner = Client()
        assert admin_sign_in(owner, ADMIN_PASSWORD, REMOTE_ADDR="192.0.2.10").status_code == 302 and signed_in(owner)

    def test_failures_from_many_addresses_do_not_lock_the_account(self, admin_user):
        for i in range(20):
            admin_sign_in(Client(), f"guess-{i}", REMOTE_ADDR=f"198.51.100.{i + 1}")
        fresh_address = Client()
        assert admin_sign_in(fresh_address, ADMIN_PASSWORD, REMOTE_ADDR="198.51.100.200").status_code == 302
        assert signed_in(fresh_address)

    def test_failures_against_many_accounts_lock_the_client(self):
        make_volunteer("victim", password="victim-password-1")
        client = Client()
        for i in range(5):
            client.post("/signin/", {"username": f"someone-{i}", "password": "guess"}, REMOTE_ADDR="203.0.113.5")
        page = client.post("/signin/", {"username": "victim", "password": "victim-password-1"}, REMOTE_ADDR="203.0.113.5")
        assert page.status_code == 429 and not signed_in(client)
        # The account itself is not locked: its owner, elsewhere, signs in.
        owner = Client()
        owner.post("/signin/", {"username": "victim", "password": "victim-password-1"}, REMOTE_ADDR="203.0.113.6")
        assert signed_in(owner)

    def test_a_forged_forwarded_for_does_not_escape_the_client_lock(self, settings):
        settings.TRUSTED_PROXY_COUNT = 1
        client = Client()
        for i in range(5):
            client.post("/signin/", {"username": f"someone-{i}", "password": "guess"},
                        REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"1.1.1.{i}, 203.0.113.5")
        assert AccessAttempt.objects.filter(ip_address="203.0.113.5").count() == 5
        page = client.post("/signin/", {"username": "someone-new", "password": "guess"},
                           REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.5")
        assert page.status_code == 429


class TestTwoLimits:
    """LOGIN_FAILURE_LIMIT for one account from one client, LOGIN_CLIENT_FAILURE_LIMIT for one client in all."""

    @pytest.fixture(autouse=True)
    def _client_limit(self, settings):
        settings.LOGIN_CLIENT_FAILURE_LIMIT = 12

    def test_an_account_locks_for_its_client_at_the_account_limit(self):
        make_volunteer("carol", password="carol-password-1")
        make_volunteer("dave", password="dave-password-1")
        client = Client(REMOTE_ADDR="203.0.113.20")
        for i in range(5):
            client.post("/signin/", {"username": "carol", "password": f"guess-{i}"})
        assert client.post("/signin/", {"username": "carol", "password": "carol-password-1"}).status_code == 429
        # The same client may still sign in to another account: the client-wide limit is not reached.
        client.post("/signin/", {"username": "dave", "password": "dave-password-1"})
        assert signed_in(client)

    def test_a_client_locks_for_every_account_at_the_client_limit(self):
        make_volunteer("erin", password="erin-password-1")
        client = Client(REMOTE_ADDR="203.0.113.21")
        answers = [client.post("/signin/", {"username": f"someone-{i}", "password": "guess"}).status_code
                   for i in range(12)]
        assert 429 not in answers[:11]
        assert client.post("/signin/", {"username": "erin", "password": "erin-password-1"}).status_code == 429
        elsewhere = Client(REMOTE_ADDR="203.0.113.22")
        elsewhere.post("/signin/", {"username": "erin", "password": "erin-password-1"})
        assert signed_in(elsewhere)


class TestWebSignIn:
    def test_a_locked_out_volunteer_sees_why_and_for_how_long(self):
        make_volunteer("alice", password="alice-password-1")
        client = Client()
        for i in range(5):
            client.post("/signin/", {"username": "alice", "password": f"guess-{i}"})
        page = client.post("/signin/", {"username": "alice", "password": "alice-password-1"})
        text = page.content.decode()
        assert page.status_code == 429 and not signed_in(client)
        assert "Too many failed sign-ins" in text and "minutes" in text and "<form" not in text
        assert int(page["Retry-After"]) > 0


class TestTokenApi:
    def test_a_locked_out_account_gets_429_in_the_error_shape(self):
        make_volunteer("bob", password="bob-password-1")
        api = APIClient()
        answers = [api.post("/api/v1/auth/token/", {"username": "bob", "password": f"guess-{i}"}, format="json")
                   for i in range(5)]
        assert [a.status_code for a in answers[:4]] == [400] * 4
        right = api.post("/api/v1/auth/token/", {"username": "bob", "password": "bob-password-1"}, format="json")
        assert right.status_code == 429
        error = right.json()["error"]
        assert error["code"] == "locked_out" and "Too many failed sign-ins" in error["message"]
        assert "token" not in right.json()


class TestGrowingLockout:
    @staticmethod
    def fail_until_locked():
        answers = [admin_sign_in(Client(), "guess").status_code for _ in range(5)]
        assert answers[-1] == 429

    @staticmethod
    def can_sign_in() -> bool:
        client = Client()
        return admin_sign_in(client, ADMIN_PASSWORD).status_code == 302 and signed_in(client)

    def test_each_further_round_of_failures_doubles_the_lock(self, admin_user):
        for minutes in (15, 30, 60, 120):
            self.fail_until_locked()
            age_records(minutes - 1)
            assert not self.can_sign_in(), f"the {minutes}-minute lock ended early"
            age_records(2)
            assert self.can_sign_in(), f"the {minutes}-minute lock lasted too long"

    def test_attempts_during_a_lock_neither_count_nor_extend_it(self, admin_user):
        self.fail_until_locked()
        for _ in range(20):
            admin_sign_in(Client(), "guess")
        age_records(16)
        assert self.can_sign_in()
        assert AccessFailureLog.objects.count() == 5

    def test_the_lock_never_exceeds_the_maximum(self, admin_user, settings):
        settings.LOGIN_LOCKOUT_MAX_MINUTES = 60
        for minutes in (15, 30, 60, 60):
            self.fail_until_locked()
            age_records(minutes + 1)
        assert self.can_sign_in()

    def test_the_page_says_how_long_is_left(self, admin_user):
        self.fail_until_locked()
        age_records(10)
        page = admin_sign_in(Client(), ADMIN_PASSWORD)
        assert page.status_code == 429 and "Try again in 5 minutes" in page.content.decode()
        assert page["Retry-After"] == "300"


class TestStaffUnlock:
    def test_staff_can_unlock_an_account_with_the_command(self, admin_user):
        for i in range(5):
            admin_sign_in(Client(), f"guess-{i}")
        call_command("axes_reset_username", "operator")
        client = Client()
        assert admin_sign_in(client, ADMIN_PASSWORD).status_code == 302 and signed_in(client)

    def test_staff_see_and_delete_lockouts_in_the_admin(self, admin_user):
        for i in range(5):
            admin_sign_in(Client(), f"guess-{i}", username="someone", REMOTE_ADDR="203.0.113.77")
        staff = Client()
        staff.force_login(admin_user)
        listing = staff.get("/admin/axes/accessattempt/")
        assert listing.status_code == 200 and "203.0.113.77" in listing.content.decode()
        attempt = AccessAttempt.objects.get(ip_address="203.0.113.77")
        staff.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
        assert not AccessAttempt.objects.filter(ip_address="203.0.113.77").exists()
        client = Client()
        assert admin_sign_in(client, ADMIN_PASSWORD, REMOTE_ADDR="203.0.113.77").status_code == 302


class TestLogging:
    def test_failures_and_lockouts_are_logged(self, admin_user, caplog):
        with caplog.at_level(logging.INFO):
            for i in range(6):
                admin_sign_in(Client(), f"guess-{i}", REMOTE_ADDR="203.0.113.88")
        messages = [r.getMessage() for r in caplog.records]
        assert sum("login failure" in m.lower() for m in messages) >= 5  # axes' own lines (names masked)
        assert any(m.startswith("Sign-in locked out") and "203.0.113.88" in m for m in messages)
        assert AccessFailureLog.objects.filter(ip_address="203.0.113.88").count() == 5  # the 6th was refused, not counted

    def test_a_successful_sign_in_logs_no_masked_line_and_is_still_recorded(self, admin_user, caplog):
        """axes logged "AXES: Successful login by ********************" for every sign-in: a line that says nothing."""
        from axes.models import AccessLog

        with caplog.at_level(logging.INFO):
            assert admin_sign_in(Client(), ADMIN_PASSWORD, REMOTE_ADDR="203.0.113.89").status_code == 302
        assert not [r.getMessage() for r in caplog.records if "successful login" in r.getMessage().lower()]
        assert AccessLog.objects.filter(ip_address="203.0.113.89", username=admin_user.username).exists()


class TestPruning:
    def test_the_scheduler_prunes_old_sign_in_records_and_keeps_recent_ones(self, admin_user, settings):
        from axes.models import AccessLog

        from config.scheduler import jobs_declared

        jobs = {job["id"]: job for job in jobs_declared()}
        admin_sign_in(Client(), "guess")
        admin_sign_in(Client(), ADMIN_PASSWORD)
        age_records(31 * 24 * 60)
        AccessLog.objects.update(attempt_time=F("attempt_time") - dt.timedelta(days=31))
        admin_sign_in(Client(), "guess-again")
        admin_sign_in(Client(), ADMIN_PASSWORD)
        assert AccessFailureLog.objects.count() == 2 and AccessLog.objects.count() == 2

        call_command(*jobs["login-failures-prune"]["command"])
        call_command(*jobs["login-successes-prune"]["command"])
        assert AccessFailureLog.objects.count() == 1 and AccessLog.objects.count() == 1
