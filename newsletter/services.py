"""Writes of the newsletter app: subscriptions (double opt-in, confirm, leave) and editions
(compose, hold, release, test send). Sending an edition to its subscribers is newsletter.delivery.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import BadHeaderError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.domain_errors import Conflict, Invalid, Unavailable
from newsletter import emails, selectors, tokens
from newsletter.models import Edition, EditionStatus, Subscriber, SubscriberStatus

logger = logging.getLogger(__name__)


# --- subscribers ----------------------------------------------------------------


_BAD_EMAIL = "Enter a valid email address."


def email_normalize(email: str) -> str:
    """Lower-cased, trimmed, validated: CR, LF and anything else an address cannot hold is refused."""
    value = (email or "").strip().lower()
    if not value or any(c in value for c in "\r\n\0") or len(value) > 254:
        raise Invalid(_BAD_EMAIL, fields={"email": [_BAD_EMAIL]})
    try:
        validate_email(value)
    except ValidationError:
        raise Invalid(_BAD_EMAIL, fields={"email": [_BAD_EMAIL]}) from None
    return value


def subscriber_subscribe(*, email: str, user=None, now: datetime | None = None) -> None:
    """Start (or restart) a double opt-in. Returns nothing on purpose: whether the
    address was new, pending or already confirmed must not show in the answer.

    A confirmed address gets no email at all; any other gets one confirmation
    email, at most once per NEWSLETTER_CONFIRM_RESEND_SECONDS.
    """
    address = email_normalize(email)
    now = now or timezone.now()
    user = user if getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        try:
            with transaction.atomic():
                # Only the request that creates the subscription links it to the signed-in volunteer.
                # An existing one keeps its link (or none): whoever asks again for an address cannot
                # take over someone else's subscription (and, by deleting their account, delete it).
                Subscriber.objects.get_or_create(email=address, defaults={"user": user})
        except IntegrityError:  # created by a concurrent request
            pass
        subscriber = Subscriber.objects.select_for_update().get(email=address)
        if subscriber.status == SubscriberStatus.CONFIRMED:
            return
        recently = subscriber.confirmation_sent_at and (
            now - subscriber.confirmation_sent_at < timedelta(seconds=settings.NEWSLETTER_CONFIRM_RESEND_SECONDS))
        subscriber.status = SubscriberStatus.PENDING
        if not recently:
            subscriber.confirmation_sent_at = now
        subscriber.save()
        if not recently:
            transaction.on_commit(lambda: _send_quietly(emails.confirmation(subscriber)))


def _send_quietly(message) -> None:
    """Send one transactional email; a failing mail server is logged, never shown to the requester."""
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError, BadHeaderError, ValueError):
        logger.exception("Could not send the %r email to a subscriber", message.subject)


def subscriber_confirm(*, token: str, now: datetime | None = None) -> Subscriber | None:
    """Confirm the subscription named by a signed link; None for a bad or expired link."""
    subscriber_id = tokens.confirm_token_read(token)
    if subscriber_id is None:
        return None
    now = now or timezone.now()
    Subscriber.objects.filter(pk=subscriber_id, status__in=[SubscriberStatus.PENDING]).update(
        status=SubscriberStatus.CONFIRMED, confirmed_at=now, failure_count=0, last_failure="", disabled_at=None)
    return Subscriber.objects.filter(pk=subscriber_id).first()


def subscriber_unsubscribe(*, token: str, now: datetime | None = None) -> Subscriber | None:
    """Leave at once (RFC 8058 one-click). Idempotent; None for a bad link."""
    subscriber_id = tokens.unsubscribe_token_read(token)
    if subscriber_id is None:
        return None
    Subscriber.objects.filter(pk=subscriber_id).exclude(status=SubscriberStatus.UNSUBSCRIBED).update(
        status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now or timezone.now())
    return Subscriber.objects.filter(pk=subscriber_id).first()


# --- editions -------------------------------------------------------------------


def edition_compose(*, now: datetime | None = None, early: bool = False) -> Edition | None:
    """Compose the edition of the latest slot if it does not exist yet; None when it does.

    ``early`` (staff, from the admin): compose the *next* slot's edition now, from what the period
    holds so far; it goes out at its slot like any other (after release when approval is required),
    and the slot's own run then finds it composed. Raises Conflict when there is nothing to report or
    the next edition exists, so the admin can say why."""
    now = now or timezone.now()
    slot = selectors.slot_latest(now=now)
    until = slot
    if early:
        until, slot = now, slot + selectors.period_length()
    if Edition.objects.filter(period_end=slot).exists():
        if early:
            raise Conflict(f"The edition for the period ending {timezone.localtime(slot):%Y-%m-%d %H:%M} is "
                           "already composed.")
        return None
    since = slot - selectors.period_length()
    previous = selectors.edition_previous(before=slot)
    content = selectors.edition_content(since=since, until=until, previous=previous)
    if settings.NEWSLETTER_SKIP_EMPTY and not selectors.edition_has_news(content):
        # Nothing happened in the period (a fresh installation, a quiet week):
        # subscribers get no empty email and the archive no empty page.
        why = (f"No edition for the period ending {timezone.localtime(slot):%Y-%m-%d %H:%M}: nothing to report "
               "yet (no approved public photo, challenge winner or new model since "
               f"{timezone.localtime(since):%Y-%m-%d %H:%M}).")
        if early:
            raise Conflict(why)
        logger.info(why)
        return None
    local = timezone.localtime(slot)
    kind = "daily" if settings.NEWSLETTER_FREQUENCY == "daily" else "weekly"
    try:
        with transaction.atomic():
            return Edition.objects.create(
                period_start=since,
                period_end=slot,
                subject=f"Crowdlens {kind}: the best photos up to {local:%d %B %Y}",
                content=content,
                status=EditionStatus.AWAITING_APPROVAL if settings.NEWSLETTER_REQUIRE_APPROVAL else EditionStatus.SCHEDULED,
                scheduled_for=slot,
            )
    except IntegrityError:  # a concurrent run composed it
        return None


def edition_hold(*, edition_id: int) -> bool:
    """Stop an edition from going out (a sender in progress stops after its current batch)."""
    return bool(Edition.objects.filter(
        pk=edition_id, status__in=[EditionStatus.AWAITING_APPROVAL, EditionStatus.SCHEDULED, EditionStatus.SENDING]
    ).update(status=EditionStatus.HELD))


def edition_release(*, edition_id: int, user=None, now: datetime | None = None) -> bool:
    """Approve a waiting or held edition: it goes out at its scheduled time (or at the next run if that passed)."""
    now = now or timezone.now()
    with transaction.atomic():
        edition = Edition.objects.select_for_update().filter(
            pk=edition_id, status__in=[EditionStatus.AWAITING_APPROVAL, EditionStatus.HELD]).first()
        if edition is None:
            return False
        edition.status = EditionStatus.SENDING if edition.deliveries.exists() else EditionStatus.SCHEDULED
        edition.released_by = user if getattr(user, "is_authenticated", False) else None
        edition.released_at = now
        edition.save(update_fields=["status", "released_by", "released_at"])
    return True


def edition_send_test(*, edition_id: int, to_email: str) -> None:
    """Send the edition to one staff address, marked [Test]; no delivery row, no effect on subscribers."""
    edition = Edition.objects.get(pk=edition_id)
    try:
        address = email_normalize(to_email)
    except Invalid:
        raise Invalid("Your account has no valid email address; set one first.", fields={"email": ["Not valid."]}) from None
    message = emails.edition(edition, test=True).message(to=address, unsubscribe=emails.unsubscribe_url(0))
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError, BadHeaderError, ValueError) as exc:
        raise Unavailable(f"The mail server refused the test: {exc}", code="mail_unavailable") from exc
