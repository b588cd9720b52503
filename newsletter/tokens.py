"""Signed tokens in the links we mail (django.core.signing: HMAC with SECRET_KEY, nothing stored).

Confirmation tokens expire (NEWSLETTER_CONFIRM_MAX_AGE_DAYS); unsubscribe
tokens never do, because an old email must still let its reader leave.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core import signing

_CONFIRM_SALT = "newsletter.confirm"
_UNSUBSCRIBE_SALT = "newsletter.unsubscribe"


def confirm_token(subscriber_id: int) -> str:
    return signing.TimestampSigner(salt=_CONFIRM_SALT).sign(str(subscriber_id))


def confirm_token_read(token: str) -> int | None:
    """The subscriber id, or None when the token is forged, altered or too old."""
    try:
        value = signing.TimestampSigner(salt=_CONFIRM_SALT).unsign(
            token, max_age=settings.NEWSLETTER_CONFIRM_MAX_AGE_DAYS * 86400)
        return int(value)
    except (signing.BadSignature, ValueError):
        return None


def unsubscribe_token(subscriber_id: int) -> str:
    return _unsubscribe_signer(settings.SECRET_KEY).sign(str(subscriber_id))


@functools.lru_cache(maxsize=4)
def _unsubscribe_signer(secret_key: str) -> signing.Signer:
    # One Signer per key: building one reads settings, and the sender signs a token per message.
    return signing.Signer(key=secret_key, salt=_UNSUBSCRIBE_SALT)


def unsubscribe_token_read(token: str) -> int | None:
    try:
        # A fresh Signer: it also accepts tokens signed with SECRET_KEY_FALLBACKS during a key rotation.
        return int(signing.Signer(salt=_UNSUBSCRIBE_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None
