"""Signed tokens in the links we mail (django.core.signing: HMAC with SECRET_KEY, nothing stored).

Confirmation tokens expire (NEWSLETTER_CONFIRM_MAX_AGE_DAYS); unsubscribe
tokens never do, because an old email must still let its reader leave.

A confirmation token is good for the subscription it was sent for only
(issue 20): it signs the subscriber's id with a fingerprint of that
subscription's round, which ends when the address unsubscribes. A link
replayed after an unsubscribe and a third party's re-subscribe confirms
nothing; every confirmation email of one round (a resend) works.
"""

from __future__ import annotations

import functools
import hashlib

from django.conf import settings
from django.core import signing

_CONFIRM_SALT = "newsletter.confirm"
_UNSUBSCRIBE_SALT = "newsletter.unsubscribe"


def _round_fingerprint(subscriber) -> str:
    """Changes when a round of subscribing ends: at each unsubscribe."""
    ended = subscriber.unsubscribed_at.isoformat() if subscriber.unsubscribed_at else ""
    return hashlib.sha256(f"{subscriber.email}|{ended}".encode()).hexdigest()[:16]


def confirm_token(subscriber_id: int) -> str:
    """The token of the subscription's current round (the row as saved now)."""
    from newsletter.models import Subscriber

    subscriber = Subscriber.objects.get(pk=subscriber_id)
    return signing.TimestampSigner(salt=_CONFIRM_SALT).sign(f"{subscriber.pk}.{_round_fingerprint(subscriber)}")


def confirm_token_read(token: str) -> int | None:
    """The subscriber id, or None when the token is forged, altered, too old, or from an earlier round
    of this address's subscription (tokens of the form before issue 20, the id alone, are refused too)."""
    from newsletter.models import Subscriber

    try:
        value = signing.TimestampSigner(salt=_CONFIRM_SALT).unsign(
            token, max_age=settings.NEWSLETTER_CONFIRM_MAX_AGE_DAYS * 86400)
        subscriber_id, fingerprint = value.split(".")
        subscriber = Subscriber.objects.filter(pk=int(subscriber_id)).first()
    except (signing.BadSignature, ValueError):
        return None
    if subscriber is None or _round_fingerprint(subscriber) != fingerprint:
        return None
    return subscriber.pk


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
