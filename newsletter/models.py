"""Subscribers, editions and one delivery row per (edition, subscriber)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def _single_line(value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValidationError("Must be a single line.")


class SubscriberStatus(models.TextChoices):
    PENDING = "pending", "Waiting for confirmation"
    CONFIRMED = "confirmed", "Confirmed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    DISABLED = "disabled", "Disabled: the address keeps failing"


class Subscriber(models.Model):
    email = models.EmailField(max_length=254, unique=True, help_text="Stored lower-cased")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="newsletter_subscriptions", help_text="The volunteer who subscribed while signed in",
    )
    status = models.CharField(max_length=16, choices=SubscriberStatus.choices, default=SubscriberStatus.PENDING,
                              db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # Editions in a row that could not be delivered (permanent failure or retries
    # exhausted); at NEWSLETTER_MAX_FAILURES the address is disabled.
    failure_count = models.PositiveIntegerField(default=0)
    last_failure = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class EditionStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
    HELD = "held", "Held by staff"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"


class Edition(models.Model):
    """One issue of the newsletter: its period, the sections composed for it, and its state."""

    period_start = models.DateTimeField()
    period_end = models.DateTimeField(unique=True, help_text="The slot this edition belongs to; one edition per slot")
    subject = models.CharField(max_length=150, validators=[_single_line])
    introduction = models.TextField(blank=True, help_text="Shown above the sections; staff may edit it before sending")
    content = models.JSONField(default=dict, help_text="The sections, composed once for the period")
    status = models.CharField(max_length=20, choices=EditionStatus.choices, db_index=True)
    scheduled_for = models.DateTimeField(help_text="Goes out at or after this moment once scheduled")
    composed_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    released_at = models.DateTimeField(null=True, blank=True)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_end"]

    def __str__(self) -> str:
        return f"{self.subject} ({self.get_status_display()})"

    @property
    def is_public(self) -> bool:
        """The archive shows editions once they have gone out."""
        return self.status in (EditionStatus.SENDING, EditionStatus.SENT)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Being sent"
    RETRY = "retry", "Waiting to retry"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped (unsubscribed before sending)"


class Delivery(models.Model):
    """The one row that makes a message to one subscriber go out at most once.

    A sender claims rows with a conditional update (status and claim token);
    a claim older than NEWSLETTER_CLAIM_LEASE_SECONDS belongs to a sender that
    died and may be taken over.
    """

    edition = models.ForeignKey(Edition, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=36, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["edition", "subscriber"], name="delivery_once_per_subscriber")]
        # Not (edition, status): a status change would then rewrite an index page at every "sent" mark,
        # and that write happens once per message. Claims walk this index forward from the last id taken.
        indexes = [models.Index(fields=["edition", "id"], name="delivery_edition_order")]

    def __str__(self) -> str:
        return f"Edition {self.edition_id} → subscriber {self.subscriber_id}: {self.status}"
