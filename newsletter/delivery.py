"""The delivery engine: sending an edition to its subscribers, with leases and SMTP error mapping.

It is built so that each (edition, subscriber) message goes out once:

1. ``edition_start_sending`` moves an edition from scheduled to sending with a
   conditional update and, in the same transaction, writes one pending
   Delivery row per confirmed subscriber. Only one sender wins that step.
2. ``deliveries_claim`` takes a batch of rows with a conditional update (status
   and claim token). Two senders never hold the same row; a claim older than the
   lease belongs to a sender that died and is taken over.
3. Each row is marked sent right after the SMTP server accepted its message,
   so a sender killed mid-way leaves only the rest for the next run. (The one
   message in flight when a process dies may go out twice: SMTP cannot say
   whether a message the client never heard about was accepted.)
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from django.conf import settings
from django.core.mail import BadHeaderError, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpEmailBackend
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from newsletter import emails, tokens
from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus, Subscriber, SubscriberStatus

logger = logging.getLogger(__name__)


def edition_start_sending(*, edition_id: int, now: datetime | None = None) -> bool:
    """Scheduled → sending, with one pending delivery per confirmed subscriber, atomically. Only one caller wins."""
    now = now or timezone.now()
    with transaction.atomic():
        won = Edition.objects.filter(pk=edition_id, status=EditionStatus.SCHEDULED, scheduled_for__lte=now).update(
            status=EditionStatus.SENDING, sending_started_at=now)
        if won:
            # One INSERT … SELECT instead of a Python object per subscriber (10k rows: ~1 s less).
            q = connection.ops.quote_name
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {q(Delivery._meta.db_table)} ({q('edition_id')}, {q('subscriber_id')}, "
                    f"{q('status')}, {q('attempts')}, {q('claimed_by')}, {q('last_error')}) "
                    f"SELECT %s, {q('id')}, %s, 0, '', '' FROM {q(Subscriber._meta.db_table)} WHERE {q('status')} = %s "
                    f"ON CONFLICT DO NOTHING",
                    [edition_id, DeliveryStatus.PENDING.value, SubscriberStatus.CONFIRMED.value],
                )
    return bool(won)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A claimed row with what sending it needs (plain values: a batch is read in one query)."""

    pk: int
    attempts: int
    subscriber_id: int
    email: str
    subscriber_status: str
    failure_count: int


def _claimable(now: datetime) -> Q:
    stale = now - timedelta(seconds=settings.NEWSLETTER_CLAIM_LEASE_SECONDS)
    return (Q(status=DeliveryStatus.PENDING) | Q(status=DeliveryStatus.RETRY, next_attempt_at__lte=now)
            | Q(status=DeliveryStatus.CLAIMED, claimed_at__lt=stale))


def deliveries_claim(*, edition_id: int, claim: str, limit: int, after_id: int = 0) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` rows for this sender. A row another sender took in between is simply not ours.

    Rows after ``after_id`` (the last one this sender took) come first, so a long
    edition is walked once instead of re-reading its sent rows at every batch;
    then from the start again, for retries that came due and abandoned claims.
    """
    for _ in range(20):  # a concurrent sender may win every row we looked at; look again
        now = timezone.now()
        open_rows = Delivery.objects.filter(_claimable(now), edition_id=edition_id).order_by("id")
        ids = list(open_rows.filter(pk__gt=after_id).values_list("id", flat=True)[:limit]) if after_id else []
        if not ids:
            ids = list(open_rows.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        Delivery.objects.filter(_claimable(now), pk__in=ids).update(
            status=DeliveryStatus.CLAIMED, claimed_by=claim, claimed_at=now)
        rows = [ClaimedDelivery(*row) for row in Delivery.objects.filter(
            pk__in=ids, status=DeliveryStatus.CLAIMED, claimed_by=claim).order_by("id").values_list(
            "pk", "attempts", "subscriber_id", "subscriber__email", "subscriber__status", "subscriber__failure_count")]
        if rows:
            return rows
    return []


def _deliveries_release(*, ids: list[int], claim: str) -> None:
    if ids:
        Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.CLAIMED, claimed_by=claim).update(
            status=DeliveryStatus.PENDING, claimed_by="", claimed_at=None)


def _backoff(attempts: int) -> timedelta:
    seconds = settings.NEWSLETTER_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    return timedelta(seconds=min(seconds, settings.NEWSLETTER_RETRY_MAX_SECONDS))


def _record_sent(delivery: ClaimedDelivery, claim: str) -> None:
    """Mark one delivery sent, right after the server accepted it and before the next message starts,
    so that a killed sender leaves at most the one message in flight unrecorded. It runs once per
    message: one statement built once, on the driver's cursor (bench/newsletter.py: the ORM's
    per-call compilation and wrappers cost more than the statement)."""
    cursor, sql = _mark_sent_statement()
    cursor.execute(sql, (DeliveryStatus.SENT.value, connection.ops.adapt_datetimefield_value(timezone.now()),
                         delivery.pk, claim, DeliveryStatus.CLAIMED.value))
    if cursor.rowcount != 1:
        logger.warning("Delivery %s was sent after its claim had been taken over", delivery.pk)
    if delivery.failure_count:
        Subscriber.objects.filter(pk=delivery.subscriber_id).update(failure_count=0)


_statements = threading.local()  # Django's connections are per thread, and so are these cursors


def _mark_sent_statement():
    """(DB-API cursor, SQL in the driver's parameter style) for the current connection; autocommit as Django set it."""
    connection.ensure_connection()
    raw = connection.connection
    cached = getattr(_statements, "mark_sent", None)
    if cached is None or cached[0] is not raw:
        q = connection.ops.quote_name
        mark = "?" if connection.vendor == "sqlite" else "%s"
        sql = (f"UPDATE {q(Delivery._meta.db_table)} SET {q('status')} = {mark}, {q('sent_at')} = {mark}, "
               f"{q('attempts')} = {q('attempts')} + 1, {q('claimed_by')} = '', {q('last_error')} = '' "
               f"WHERE {q('id')} = {mark} AND {q('claimed_by')} = {mark} AND {q('status')} = {mark}")
        cached = _statements.mark_sent = (raw, raw.cursor(), sql)
    return cached[1], cached[2]


def _record_failure(delivery: ClaimedDelivery, claim: str, *, error: str, permanent: bool) -> str:
    """Temporary failures wait with back-off until NEWSLETTER_MAX_ATTEMPTS; then, or at once for a
    permanent one, the delivery fails and counts against the address."""
    error = " ".join(error.split())[:500]
    attempts = delivery.attempts + 1
    now = timezone.now()
    if not permanent and attempts < settings.NEWSLETTER_MAX_ATTEMPTS:
        Delivery.objects.filter(pk=delivery.pk, claimed_by=claim).update(
            status=DeliveryStatus.RETRY, attempts=attempts, next_attempt_at=now + _backoff(attempts),
            claimed_by="", claimed_at=None, last_error=error)
        return DeliveryStatus.RETRY
    Delivery.objects.filter(pk=delivery.pk, claimed_by=claim).update(
        status=DeliveryStatus.FAILED, attempts=attempts, claimed_by="", last_error=error)
    Subscriber.objects.filter(pk=delivery.subscriber_id).update(failure_count=F("failure_count") + 1, last_failure=error)
    Subscriber.objects.filter(
        pk=delivery.subscriber_id, status=SubscriberStatus.CONFIRMED, failure_count__gte=settings.NEWSLETTER_MAX_FAILURES
    ).update(status=SubscriberStatus.DISABLED, disabled_at=now)
    return DeliveryStatus.FAILED


class SmtpUnavailable(Exception):
    """The mail server cannot be reached at all: the run stops, its unsent claims are released."""


@dataclass
class SendResult:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    finished: bool = False
    stopped: str = ""
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


_TEMPORARY_NETWORK = (smtplib.SMTPException, OSError)  # disconnects, timeouts, refused connections


class _Sender:
    """One run over one edition, with one SMTP connection opened once for all its messages."""

    def __init__(self, edition: Edition, claim: str):
        self.edition = edition
        self.claim = claim
        self.rendered = emails.edition(edition)
        self.prepared: emails.PreparedEdition | None = None
        self.prepared_at = 0.0
        self.connection = get_connection(fail_silently=False)
        # Prepared bytes go straight to smtplib; other backends (console in development, locmem in
        # tests) get ordinary EmailMessage objects.
        self.smtp = isinstance(self.connection, SmtpEmailBackend)
        self.is_open = False

    def start_batch(self) -> None:
        # Serialised again each minute, so that the Date header stays fresh; None falls back to
        # building each message the ordinary way.
        if self.prepared is None or time.monotonic() - self.prepared_at > 60:
            self.prepared = self.rendered.prepare()
            self.prepared_at = time.monotonic()

    def _open(self) -> None:
        if not self.is_open:
            try:
                self.connection.open()
            except (smtplib.SMTPException, OSError) as exc:
                raise SmtpUnavailable(f"Cannot reach the mail server: {exc}") from exc
            self.is_open = True

    def close(self) -> None:
        if self.is_open:
            self.connection.close()  # Django's close() swallows errors of a broken connection
            self.is_open = False

    def deliver(self, delivery: ClaimedDelivery) -> str:
        if delivery.subscriber_status != SubscriberStatus.CONFIRMED:
            Delivery.objects.filter(pk=delivery.pk, claimed_by=self.claim).update(
                status=DeliveryStatus.SKIPPED, claimed_by="")
            return "skipped"
        try:
            token = tokens.unsubscribe_token(delivery.subscriber_id)
            data = (self.prepared.bytes_for(address=delivery.email, token=token)
                    if self.prepared is not None and self.smtp else None)
            if data is not None:
                self._open()
                self.connection.connection.sendmail(self.prepared.from_address, [delivery.email], data)
            else:
                message = self.rendered.message(to=delivery.email, unsubscribe=emails.unsubscribe_url(delivery.subscriber_id))
                self._open()
                self.connection.send_messages([message])
        except (BadHeaderError, ValueError) as exc:
            # A malformed address or header (CR/LF included) never reaches the wire.
            return _record_failure(delivery, self.claim, error=f"Refused before sending: {exc}", permanent=True)
        except smtplib.SMTPSenderRefused as exc:
            # Our sender address is refused: no recipient is at fault, so stop rather than count failures.
            self.close()
            raise SmtpUnavailable(f"The mail server refuses the sender: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b""))
            return _record_failure(delivery, self.claim, error=f"{code} {_text(text)}", permanent=code >= 500)
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:  # the server is closing the connection
                self.close()
            return _record_failure(delivery, self.claim, error=f"{exc.smtp_code} {_text(exc.smtp_error)}",
                                   permanent=exc.smtp_code >= 500)
        except _TEMPORARY_NETWORK as exc:  # SMTPException is an OSError too: the other SMTP errors end here
            self.close()
            return _record_failure(delivery, self.claim, error=f"Connection lost: {exc}", permanent=False)
        _record_sent(delivery, self.claim)
        return "sent"


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def edition_send(
    *,
    edition_id: int,
    on_progress: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_wait: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendResult:
    """Send an edition that is due (or already sending) to everyone not yet served.

    Stops when nothing is left (the edition becomes sent), when ``should_stop()``,
    when staff hold the edition, or when the only rows left wait for a retry
    further away than ``max_wait`` seconds (the next run takes them).
    """
    max_wait = settings.NEWSLETTER_SEND_MAX_WAIT_SECONDS if max_wait is None else max_wait
    result = SendResult()
    edition_start_sending(edition_id=edition_id)
    edition = Edition.objects.get(pk=edition_id)
    if edition.status != EditionStatus.SENDING:
        result.stopped = f"edition is {edition.status}"
        return result
    claim = uuid.uuid4().hex
    sender = _Sender(edition, claim)
    _asynchronous_commit(True)
    deadline = time.monotonic() + max_wait
    unattempted: list[int] = []
    last_id = 0
    try:
        while True:
            if should_stop():
                result.stopped = "asked to stop"
                break
            status = Edition.objects.filter(pk=edition_id).values_list("status", flat=True).first()
            if status != EditionStatus.SENDING:
                result.stopped = "edition held" if status == EditionStatus.HELD else f"edition is {status}"
                result.finished = status == EditionStatus.SENT  # another sender finished it
                break
            batch = deliveries_claim(edition_id=edition_id, claim=claim, limit=settings.NEWSLETTER_BATCH_SIZE,
                                     after_id=last_id)
            if not batch:
                if _edition_finish(edition_id=edition_id):
                    result.finished = True
                    break
                wait = _seconds_to_next_retry(edition_id=edition_id)
                if wait is None or time.monotonic() + wait > deadline:
                    result.stopped = "waiting for retries or for another sender"
                    break
                sender.close()  # do not hold an idle connection through the back-off
                sleep(min(max(wait, 0.05), 5.0))
                continue
            unattempted = [d.pk for d in batch]
            last_id = batch[-1].pk
            claimed_at = time.monotonic()
            sender.start_batch()
            for delivery in batch:
                if time.monotonic() - claimed_at > settings.NEWSLETTER_CLAIM_LEASE_SECONDS / 2 or should_stop():
                    break  # the rest is released below, long before the lease could expire
                unattempted.remove(delivery.pk)
                try:
                    outcome = sender.deliver(delivery)
                except SmtpUnavailable:
                    unattempted.append(delivery.pk)  # nothing went out for it
                    raise
                result.add(outcome)
                if on_progress is not None:
                    on_progress(outcome)
            _deliveries_release(ids=unattempted, claim=claim)
            unattempted = []
    except SmtpUnavailable as exc:
        result.stopped = str(exc)
        result.errors.append(str(exc))
        logger.error("Edition %s: %s", edition_id, exc)
    finally:
        # Killed by an exception: rows never attempted go back at once; the one
        # in flight (if any) stays claimed until its lease expires.
        _deliveries_release(ids=unattempted, claim=claim)
        sender.close()
        _asynchronous_commit(False)
    return result


def _asynchronous_commit(on: bool) -> None:
    """PostgreSQL: don't wait for the WAL flush (fsync) at each "sent" mark.

    A commit is then acknowledged once it is in the server's memory: a killed
    *sender* loses nothing, only a crash of the database server itself can
    forget the last fraction of a second of marks (those few messages would go
    out again). Waiting for an fsync per message made sending five times slower
    (bench/newsletter.py). SQLite is already run this way (WAL, synchronous=NORMAL).
    """
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO OFF" if on else "RESET synchronous_commit")
        except DatabaseError:
            if on:
                raise
            logger.warning("Could not reset synchronous_commit (the connection is gone)")


def _seconds_to_next_retry(*, edition_id: int) -> float | None:
    """Seconds until the next row may be claimed (a retry or another sender's lease), None if none."""
    now = timezone.now()
    candidates = []
    retry = (Delivery.objects.filter(edition_id=edition_id, status=DeliveryStatus.RETRY)
             .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first())
    if retry is not None:
        candidates.append((retry - now).total_seconds())
    claimed = (Delivery.objects.filter(edition_id=edition_id, status=DeliveryStatus.CLAIMED)
               .order_by("claimed_at").values_list("claimed_at", flat=True).first())
    if claimed is not None:
        lease_end = claimed + timedelta(seconds=settings.NEWSLETTER_CLAIM_LEASE_SECONDS)
        candidates.append((lease_end - now).total_seconds())
    return min(candidates) if candidates else None


def _edition_finish(*, edition_id: int) -> bool:
    open_rows = Delivery.objects.filter(
        edition_id=edition_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.CLAIMED, DeliveryStatus.RETRY])
    if open_rows.exists():
        return False
    Edition.objects.filter(pk=edition_id, status=EditionStatus.SENDING).update(
        status=EditionStatus.SENT, sent_at=timezone.now())
    return True
