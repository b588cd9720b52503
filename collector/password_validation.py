"""Passwords of volunteer accounts: Django's validators (AUTH_PASSWORD_VALIDATORS) seeing the display name.

A volunteer signs in with their display name, so a password like it is as weak
as one like the username: Django's UserAttributeSimilarityValidator compares
against the attributes it is told (``username``, ``display_name``, ``email`` in
settings), read from the object passed as ``user``. Before the account exists
that object is a stand-in holding the values from the sign-up.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError


class _SignUpMeta:
    """What UserAttributeSimilarityValidator reads from ``user._meta``: each attribute's name in its message."""

    _NAMES = {"username": "display name", "display_name": "display name", "email": "email address"}

    def get_field(self, name: str):
        return SimpleNamespace(verbose_name=self._NAMES.get(name, name.replace("_", " ")))


def password_problems(password: str, *, display_name: str, email: str = "") -> list[str]:
    """Why this password may not protect a new account with this name and address; [] when it may."""
    candidate = SimpleNamespace(username=display_name, display_name=display_name, email=email or "",
                                _meta=_SignUpMeta())
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        return list(exc.messages)
    return []


class NotOnlyWhitespaceValidator:
    """Refuse a password of spaces (or other blanks): eight spaces pass every length rule but a form
    or client that trims input would make it an empty password, or an account without one."""

    def validate(self, password: str, user=None) -> None:
        if not password.strip():
            raise ValidationError("A password cannot be only spaces.", code="password_only_whitespace")

    def get_help_text(self) -> str:
        return "Your password cannot be only spaces."
