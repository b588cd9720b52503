"""Staff's second factor (django-otp, config.two_factor): the admin's sign-in asks for a code from the
authenticator app or a recovery code; STAFF_REQUIRE_2FA makes it compulsory for staff (issue 20)."""

from __future__ import annotations

import io

import pytest
from axes.models import AccessFailureLog
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from config.two_factor import second_factor_enrol
from tests.factories import make_volunteer

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-admin-password"


@pytest.fixture(autouse=True)
def _limits(settings, monkeypatch):
    settings.LOGIN_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_CLIENT_FAILURE_LIMIT = 15
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "anon_signup", "10000/hour")


@pytest.fixture
def operator():
    return get_user_model().objects.create_superuser("operator", "ops@example.org", PASSWORD)


@pytest.fixture
def enrolled(operator):
    """The operator with an authenticator app and recovery codes, as `staff_2fa_setup operator` leaves them."""
    return second_factor_enrol(user=operator)


def current_code(user, *, steps_ahead: int = 0) -> str:
    """What the authenticator app shows now (or `steps_ahead` 30-second steps later)."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=user)
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=steps_ahead):06d}"


def wait_out_device_throttle():
    """As if the owner tried again a while later: django-otp refuses any code for 2**(failures-1) seconds
    after a wrong one (per device), which a person typing never notices but back-to-back tests would."""
    import datetime as dt

    from django.db.models import F
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    for model in (TOTPDevice, StaticDevice):
        model.objects.exclude(throttling_failure_timestamp=None).update(
            throttling_failure_timestamp=F("throttling_failure_timestamp") - dt.timedelta(hours=1))


def admin_sign_in(client, *, password=PASSWORD, code=None, username="operator"):
    data = {"username": username, "password": password, "next": "/admin/"}
    if code is not None:
        data["otp_token"] = code
    return client.post("/admin/login/?next=/admin/", data)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


class TestAdminSignInWithAnAuthenticatorApp:
    def test_the_sign_in_page_asks_for_the_code(self):
        page = Client().get("/admin/login/")
        text = page.content.decode()
        assert page.status_code == 200 and 'name="otp_token"' in text and 'autocomplete="one-time-code"' in text
        assert "recovery code" in text

    def test_the_password_alone_does_not_sign_in_and_counts_as_a_failure(self, enrolled):
        client = Client()
        page = admin_sign_in(client)
        assert page.status_code == 200 and not signed_in(client)
        assert "correct username, password and code" in page.content.decode()
        assert AccessFailureLog.objects.filter(username="operator").count() == 1
        assert client.get("/admin/").status_code == 302

    def test_password_and_code_sign_in_to_the_admin(self, enrolled, operator):
        client = Client()
        assert admin_sign_in(client, code=current_code(operator)).status_code == 302
        assert signed_in(client) and client.get("/admin/").status_code == 200

    def test_a_code_works_once(self, enrolled, operator):
        code = current_code(operator)
        assert admin_sign_in(Client(), code=code).status_code == 302
        replay = Client()
        assert admin_sign_in(replay, code=code).status_code == 200 and not signed_in(replay)

    def test_a_wrong_password_with_a_right_code_does_not_sign_in(self, enrolled, operator):
        client = Client()
        assert admin_sign_in(client, password="guess", code=current_code(operator)).status_code == 200
        assert not signed_in(client)

    def test_guessing_codes_locks_out_like_guessing_passwords(self, enrolled, operator):
        client = Client()
        answers = [admin_sign_in(client, code=f"{i:06d}").status_code for i in range(6)]
        assert answers[:4] == [200] * 4 and answers[5] == 429
        assert admin_sign_in(client, code=current_code(operator, steps_ahead=1)).status_code == 429


class TestRecoveryCodes:
    def test_a_recovery_code_signs_in_once(self, enrolled):
        recovery = enrolled["recovery_codes"][0]
        client = Client()
        assert admin_sign_in(client, code=recovery).status_code == 302 and signed_in(client)
        assert client.get("/admin/").status_code == 200
        again = Client()
        assert admin_sign_in(again, code=recovery).status_code == 200 and not signed_in(again)
        wait_out_device_throttle()
        other = Client()
        assert admin_sign_in(other, code=enrolled["recovery_codes"][1]).status_code == 302

    def test_renewed_codes_replace_the_old_ones(self, enrolled, operator):
        out = io.StringIO()
        call_command("staff_2fa_setup", "operator", "--recovery-codes", stdout=out)
        fresh = [line.strip() for line in out.getvalue().splitlines() if line.startswith("  ")]
        assert len(fresh) == 10 and not set(fresh) & set(enrolled["recovery_codes"])
        assert admin_sign_in(Client(), code=enrolled["recovery_codes"][2]).status_code == 200
        wait_out_device_throttle()
        assert admin_sign_in(Client(), code=fresh[0]).status_code == 302


class TestStaffRequire2fa:
    @pytest.fixture(autouse=True)
    def _required(self, settings):
        settings.STAFF_REQUIRE_2FA = True

    def test_staff_without_a_device_cannot_sign_in_with_the_password(self, operator):
        client = Client()
        assert admin_sign_in(client).status_code == 200 and not signed_in(client)
        assert admin_sign_in(client, code="123456").status_code == 200 and not signed_in(client)

    def test_a_session_signed_in_without_a_code_does_not_open_the_admin(self, enrolled, operator):
        client = Client()
        client.force_login(operator)  # a session from before STAFF_REQUIRE_2FA, or from the volunteers' sign-in
        assert client.get("/admin/").status_code == 302
        assert client.get("/admin/collector/photo/").status_code == 302

    def test_such_a_session_cannot_review_through_the_api_either(self, enrolled, operator):
        from collector.models import PhotoStatus
        from tests.factories import make_label, make_photo

        photo = make_photo(label=make_label("mug"))
        session = APIClient()
        session.force_login(operator)
        refused = session.post(f"/api/v1/photos/{photo.pk}/review/", {"decision": "approve"}, format="json")
        assert refused.status_code == 403
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.PENDING
        verified = Client()
        assert admin_sign_in(verified, code=current_code(operator)).status_code == 302
        response = verified.post(f"/api/v1/photos/{photo.pk}/review/", {"decision": "approve"},
                                 content_type="application/json")
        assert response.status_code == 200 and response.json()["status"] == "approved"  # the test client skips CSRF

    def test_volunteers_sign_in_as_before(self):
        make_volunteer("alice", password="alice-password-1")
        client = Client()
        client.post("/signin/", {"username": "alice", "password": "alice-password-1"})
        assert signed_in(client)

    def test_staff_cannot_get_an_api_token_with_the_password_alone(self, enrolled, operator):
        api = APIClient()
        refused = api.post("/api/v1/auth/token/", {"username": "operator", "password": PASSWORD}, format="json")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_credentials"
        answer = api.post("/api/v1/auth/token/", {"username": "operator", "password": PASSWORD,
                                                  "otp_token": current_code(operator)}, format="json")
        assert answer.status_code == 200 and answer.json()["token"]

    def test_the_volunteers_sign_in_page_does_not_let_staff_past_the_code(self, enrolled):
        client = Client()
        client.post("/signin/", {"username": "operator", "password": PASSWORD})
        assert not signed_in(client)


class TestEnrolment:
    def test_the_command_prints_a_qr_code_the_secret_and_ten_recovery_codes(self, operator):
        out = io.StringIO()
        call_command("staff_2fa_setup", "operator", stdout=out)
        text = out.getvalue()
        assert "otpauth://totp/" in text and "issuer=Crowdlens" in text and "\u2588" in text
        codes = [line.strip() for line in text.splitlines() if line.startswith("  ")]
        assert len(codes) == 10 and len(set(codes)) == 10
        assert admin_sign_in(Client(), code=codes[0]).status_code == 302

    def test_it_refuses_to_replace_a_device_without_reset(self, enrolled, operator):
        with pytest.raises(CommandError, match="already has a second factor"):
            call_command("staff_2fa_setup", "operator", stdout=io.StringIO())
        call_command("staff_2fa_setup", "operator", "--reset", stdout=io.StringIO())
        assert admin_sign_in(Client(), code=enrolled["recovery_codes"][0]).status_code == 200

    def test_a_signed_in_superuser_sees_a_devices_qr_code_in_the_admin(self, enrolled, operator):
        from django_otp.plugins.otp_totp.models import TOTPDevice

        client = Client()
        assert admin_sign_in(client, code=current_code(operator)).status_code == 302
        device = TOTPDevice.objects.get(user=operator)
        qr = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/")
        assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content
        assert Client().get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/").status_code == 302

    def test_it_refuses_volunteers(self):
        make_volunteer("alice", password="alice-password-1")
        with pytest.raises(CommandError, match="not a staff account"):
            call_command("staff_2fa_setup", "alice", stdout=io.StringIO())
