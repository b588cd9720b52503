"""Staff's second factor (django-otp): a TOTP authenticator app, and single-use recovery codes.

A user with a confirmed device signs in with a code from it (or one recovery
code) on top of the password: ``SecondFactorBackend`` checks both in one
``authenticate()``, so a wrong or missing code is a failed sign-in that
django-axes counts like a wrong password, and the answer never says which of
the two was wrong. With ``STAFF_REQUIRE_2FA=true`` a staff account without a
device cannot sign in at all, and the admin refuses staff sessions that were
not signed in with a code (sessions from before the switch). Devices are
enrolled with ``manage.py staff_2fa_setup USERNAME`` (docs/running-in-public.md).

Recovery codes are django-otp's static tokens: each works once and is deleted
when used. The TOTP device throttles itself after failures (django-otp's
growing delay), on top of the lock-out.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

RECOVERY_CODE_COUNT = 10


def is_staff(user) -> bool:
    return bool(user.is_staff or user.is_superuser)


def second_factor_required(user) -> bool:
    """Whether this account signs in with a code: it has a device, or it is staff and the site requires one."""
    from django_otp import user_has_device

    return user_has_device(user) or (settings.STAFF_REQUIRE_2FA and is_staff(user))


def _matching_device(user, token: str):
    """The user's confirmed device that accepts this code (used up if it is a recovery code), or None."""
    from django.db import transaction
    from django_otp import devices_for_user

    token = "".join(token.split())  # "123 456" as some apps show it
    if not token:
        return None
    with transaction.atomic():
        for device in devices_for_user(user, for_verify=True):
            if device.verify_token(token):
                return device
    return None


class SecondFactorBackend(ModelBackend):
    """Django's password check, then the code for accounts that need one (``otp_token``)."""

    def authenticate(self, request, username=None, password=None, otp_token=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or not second_factor_required(user):
            return user
        device = _matching_device(user, otp_token or "")
        if device is None:
            return None  # authenticate() then sends user_login_failed: axes counts it
        user.otp_device = device  # django-otp marks the session verified when login() follows
        return user


def session_is_verified(request, user=None) -> bool:
    """Whether a session may act as its (staff) user: signed in with a code where one is required.

    ``request`` is Django's; ``user`` defaults to its (django-otp's middleware adds ``is_verified``).
    API tokens need no such check: ``POST auth/token/`` hands one out only with the code.
    """
    from django_otp import DEVICE_ID_SESSION_KEY

    user = user if user is not None else request.user
    if not user.is_authenticated or not second_factor_required(user):
        return True
    if hasattr(user, "is_verified"):
        return bool(user.is_verified())
    return bool(request.session.get(DEVICE_ID_SESSION_KEY))


class StaffSignInForm(AuthenticationForm):
    """The admin's sign-in form with the code field; staff only, as Django's AdminAuthenticationForm."""

    otp_token = forms.CharField(
        label="Code", required=False, max_length=32, strip=True,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct username, password and code (from your authenticator app, "
                         "or a recovery code) of a staff account. Note that the password is case-sensitive.",
    }

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = authenticate(self.request, username=username, password=password,
                                           otp_token=self.cleaned_data.get("otp_token") or "")
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                  params={"username": self.username_field.verbose_name})


def _new_recovery_codes(user) -> list[str]:
    """A fresh set of RECOVERY_CODE_COUNT single-use codes; the previous set stops working."""
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device, _ = StaticDevice.objects.get_or_create(user=user, name="Recovery codes", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def second_factor_enrol(*, user, reset: bool = False) -> dict:
    """Give a staff account a TOTP device and recovery codes; returns what to hand its owner, once.

    ``{"config_url": "otpauth://...", "secret": BASE32, "recovery_codes": [...]}``. Refuses an
    account that already has a device unless ``reset`` (then the old app and codes stop working).
    """
    from base64 import b32encode

    from django.db import transaction
    from django_otp import user_has_device
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from config.domain_errors import Conflict, Invalid

    if not is_staff(user):
        raise Invalid(f"{user.get_username()} is not a staff account.", fields={"username": ["Not staff."]})
    with transaction.atomic():
        if user_has_device(user, confirmed=None) and not reset:
            raise Conflict(f"{user.get_username()} already has a second factor; --reset replaces it.",
                           code="second_factor_exists")
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
        codes = _new_recovery_codes(user)
    return {"config_url": device.config_url, "secret": b32encode(device.bin_key).decode(), "recovery_codes": codes}


def recovery_codes_renew(*, user) -> list[str]:
    """A new set of recovery codes for an account that has a TOTP device (the old set stops working)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from config.domain_errors import Conflict

    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise Conflict(f"{user.get_username()} has no authenticator app yet: enrol it first.",
                       code="no_second_factor")
    return _new_recovery_codes(user)
