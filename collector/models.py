from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from collector.lib.names import display_name_key
from config.domain_errors import NotFound


class Label(models.Model):
    """A class being collected. Targets follow the seed talk (slide 14)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    prototype_target = models.PositiveIntegerField(
        null=True, blank=True, help_text="Approved photos for a prototype; empty means LABEL_PROTOTYPE_TARGET (30)."
    )
    production_target = models.PositiveIntegerField(
        null=True, blank=True, help_text="Approved photos for production; empty means LABEL_PRODUCTION_TARGET (200)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def effective_prototype_target(self) -> int:
        return self.prototype_target or settings.LABEL_PROTOTYPE_TARGET

    @property
    def effective_production_target(self) -> int:
        return self.production_target or settings.LABEL_PRODUCTION_TARGET


def public_name_for(user_id: int, *, display_name: str | None = None, consent_public_credit: bool | None = False) -> str:
    """The one rule for the name public pages show: the display name only with consent to public
    credit, else "Volunteer #<user id>" (also for an account without a volunteer profile).

    The user id, as in leaderboard rows' `volunteer_id`: one number per person everywhere. Takes plain
    values so that code reading joined columns (leaderboards, raw SQL) applies the same rule.
    """
    if consent_public_credit and display_name is not None:
        return display_name
    return f"Volunteer #{user_id}"


# A 40-character name whose every character expands the most under NFKC and the skeleton (U+FDFA: 18).
DISPLAY_NAME_KEY_MAX_LENGTH = 40 * 18


class Volunteer(models.Model):
    """The volunteer side of a Django user: consents and public identity."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="volunteer")
    display_name = models.CharField(max_length=40, unique=True)
    # The name as compared, never shown (collector.lib.names): "Bob", "bob" and "Воb" (Cyrillic В, о) are
    # one name, even when two sign-ups race; the unique index is what decides the race. Set by save().
    display_name_key = models.CharField(max_length=DISPLAY_NAME_KEY_MAX_LENGTH, unique=True, editable=False)
    consent_training = models.BooleanField(default=False)
    consent_public_credit = models.BooleanField(default=False)
    is_bootstrap = models.BooleanField(
        default=False,
        help_text="An account that only holds photos brought in by photos_import: they train models, "
                  "but earn no points and the account never appears on a leaderboard.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs):
        self.display_name_key = display_name_key(self.display_name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "display_name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "display_name_key"}
        super().save(*args, **kwargs)

    def takes_part(self) -> bool:
        """Whether a person signs in with this account to take part as a volunteer (a usable password,
        not staff): such an account is never made a bootstrap account, which would take away their points."""
        return self.user.has_usable_password() and not self.user.is_staff

    @property
    def public_name(self) -> str:
        """What public pages show (see public_name_for)."""
        return public_name_for(self.user_id, display_name=self.display_name,
                               consent_public_credit=self.consent_public_credit)


class PhotoStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn by the volunteer"


class RejectionReason(models.TextChoices):
    BLURRY = "blurry", "Blurry"
    WRONG_LABEL = "wrong_label", "Wrong label"
    DUPLICATE = "duplicate", "Duplicate"
    INAPPROPRIATE = "inappropriate", "Inappropriate"
    OTHER = "other", "Other"


class PhotoQuerySet(models.QuerySet):
    def lock_or_404(self, pk) -> Photo:
        """The photo, locked for the rest of the transaction (select_for_update), or the domain NotFound.

        Call inside ``transaction.atomic()``: every change to a photo (review, relabel, votes, features)
        takes this lock first, so two changes to one photo never interleave."""
        photo = self.select_for_update().filter(pk=pk).first()
        if photo is None:
            raise NotFound("Not found.")
        return photo


def volunteer_is(volunteer_id: int | None, user) -> bool:
    """Whether the photo of ``volunteer_id`` was taken by ``user``: the rule behind Photo.is_owned_by, for
    rows read without their Photo (galleries). A withdrawn photo (no volunteer) belongs to nobody."""
    return volunteer_id is not None and volunteer_id == getattr(user, "pk", None)


def photo_thumbnail_url(photo_id: int) -> str:
    """The thumbnail's path (the API view checks who may see it: owner, reviewers, anyone once public)."""
    return reverse("photo-thumbnail", kwargs={"photo_id": photo_id})


class Photo(models.Model):
    volunteer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="photos"
    )
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="photos")
    status = models.CharField(max_length=16, choices=PhotoStatus.choices, default=PhotoStatus.PENDING, db_index=True)

    # Content: sha256 of the bytes received; dHash of the upright image.
    sha256 = models.CharField(max_length=64, db_index=True)
    phash = models.CharField(max_length=16, help_text="64-bit difference hash, hex")
    # The hash in four 16-bit bands, each indexed: two hashes within 3 bits of
    # each other share at least one band exactly, so near-duplicate search is
    # four indexed lookups instead of a scan (see collector.lib.images).
    phash_band0 = models.IntegerField(db_index=True)
    phash_band1 = models.IntegerField(db_index=True)
    phash_band2 = models.IntegerField(db_index=True)
    phash_band3 = models.IntegerField(db_index=True)
    near_duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    source_format = models.CharField(max_length=8)
    byte_size = models.PositiveIntegerField()
    width = models.PositiveIntegerField(help_text="As displayed, after EXIF orientation")
    height = models.PositiveIntegerField()
    original_key = models.CharField(max_length=255)
    training_key = models.CharField(max_length=255)
    thumbnail_key = models.CharField(max_length=255)

    # What the phone told us.
    challenge_id = models.PositiveBigIntegerField(
        null=True, blank=True, db_index=True, help_text="The daily challenge entered (owned by the challenges app)"
    )
    captured_at = models.DateTimeField(null=True, blank=True)
    device_model = models.CharField(max_length=100, blank=True)
    app_version = models.CharField(max_length=40, blank=True)
    predicted_label = models.CharField(max_length=64, blank=True)
    predicted_confidence = models.FloatField(null=True, blank=True)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)

    # Review.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.CharField(max_length=20, choices=RejectionReason.choices, blank=True)
    review_note = models.CharField(max_length=500, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True, db_index=True)

    # Curation (docs/review.md): the crowd's dispute, the nightly label audit's flag.
    disputed = models.BooleanField(
        default=False, help_text="Community verifiers disagreed: staff decide it first, a staff decision clears it.")
    crowd_label = models.ForeignKey(
        Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The label community verifiers suggest (the commonest label among counted verdicts).")
    audit_flag = models.CharField(
        max_length=24, blank=True, db_index=True,
        help_text="likely_mislabeled: the nightly audit sent it back; out of datasets and the novelty bonus until "
                  "a reviewer decides.")
    audit_score = models.FloatField(null=True, blank=True, help_text="How likely the label is wrong (0..1).")
    audit_suggested_label = models.ForeignKey(
        Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The label the audit's model gives it.")
    audit_suggested_confidence = models.FloatField(null=True, blank=True)
    audit_outcome = models.CharField(
        max_length=12, blank=True,
        help_text="What a reviewer made of the audit's flag: kept, relabelled (the photo then earns its volunteer "
                  "nothing) or rejected. The audit never flags a photo twice.")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    objects = PhotoQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("review_photo", "Can approve, reject and relabel photos")]
        constraints = [
            models.UniqueConstraint(
                fields=["volunteer", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="photo_unique_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["volunteer", "sha256"], condition=Q(volunteer__isnull=False), name="photo_unique_bytes"
            ),
        ]
        indexes = [
            models.Index(fields=["label", "status"]),
            # The review queue: one status, oldest first.
            models.Index(fields=["status", "created_at"], name="photo_status_created"),
            # The review queue as ordered: disputed first, then oldest first.
            models.Index(fields=["status", "-disputed", "created_at"], name="photo_status_disputed_created"),
        ]

    def __str__(self) -> str:
        # What the admin's titles and breadcrumbs show: "Photo #8 · Daisy · pending" (the label's name,
        # not its database id, which meant nothing to a reviewer).
        return f"Photo #{self.pk} · {self.label.name} · {self.status}"

    def is_owned_by(self, user) -> bool:
        """Whether ``user`` took this photo (never true for a withdrawn photo, whose owner is gone)."""
        return volunteer_is(self.volunteer_id, user)

    @property
    def thumbnail_url(self) -> str:
        return photo_thumbnail_url(self.pk)

    @property
    def label_as_uploaded(self) -> Label:
        """The label the volunteer sent: every relabel is recorded (PhotoReview), so the first record's
        label_before is the original; a photo never relabelled still has it."""
        first = self.reviews.exclude(label_before_id=models.F("label_after_id")).select_related("label_before").first()
        return first.label_before if first is not None else self.label

    @property
    def storage_keys(self) -> list[str]:
        return [k for k in (self.original_key, self.training_key, self.thumbnail_key) if k]


class PhotoReview(models.Model):
    """Every review decision, in order: who decided what, when (an audit trail)."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decision = models.CharField(max_length=16, choices=PhotoStatus.choices)
    reason = models.CharField(max_length=20, choices=RejectionReason.choices, blank=True)
    note = models.CharField(max_length=500, blank=True)
    label_before = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    label_after = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    by_community = models.BooleanField(
        default=False, help_text="Decided by community verifiers' agreement (their verdicts are the photo's "
                                 "Verification rows), not by a staff reviewer.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class Verdict(models.TextChoices):
    AGREE = "agree", "The label is right"
    DISAGREE = "disagree", "The label is wrong"
    UNSURE = "unsure", "Not sure"


class Verification(models.Model):
    """One community verifier's blind verdict on one photo (docs/review.md, "The crowd verifies").

    ``gold``: the photo had already been decided by staff when it was shown (a gold-standard item): the
    verdict measures the verifier and never decides anything."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="verifications")
    verifier = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="verifications")
    verdict = models.CharField(max_length=12, choices=Verdict.choices)
    shown_label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+",
                                    help_text="The label the verifier was asked about (the photo's label then).")
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              help_text="The label the verifier says it is (with disagree: the right one, if known).")
    gold = models.BooleanField(default=False)
    counted = models.BooleanField(default=True, help_text="False when the verifier's gold agreement was too low "
                                                          "at the time: the verdict did not count toward consensus.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["photo", "verifier"], name="verification_once_per_photo")]
        indexes = [models.Index(fields=["verifier", "gold"])]

    def __str__(self) -> str:
        return f"{self.verdict} on photo {self.photo_id} by {self.verifier_id}"


class StorageSweep(models.Model):
    """One run of `storage_sweep`: what it found in storage that no photo row points to (shown in the admin)."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deleting = models.BooleanField(default=False, help_text="Run with --delete (else it only reported).")
    min_age_hours = models.FloatField()
    files_checked = models.PositiveIntegerField(default=0)
    orphans = models.PositiveIntegerField(default=0)
    orphan_bytes = models.BigIntegerField(default=0)
    young_left_alone = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    orphan_keys = models.JSONField(default=list, blank=True, help_text="The first orphans found (at most 200).")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Storage sweep of {self.started_at:%Y-%m-%d %H:%M}"


class PhotoPrediction(models.Model):
    """What one model version in service said about one stored photo: LiteRT on the photo's training
    derivative, prepared as phones prepare a photo (training's `photos_predict` job; the web process never
    loads an ML library). One row per photo and version, kept only while one of its two readers goes by it:

    - ``at_upload``: made by the version in service when the photo was uploaded. The "stump the model" bonus
      and /me/'s "the model thought" go by it, because the phone's ``predicted_label`` is a claim anyone can
      forge. Set once per photo, never replaced.
    - ``for_review``: the latest made while the photo was pending: the review queue's guess ("model
      disagrees", "approve where the model agrees at >= p"). Kept after the decision: p's error rate is
      measured on these against what reviewers decided. A newer model in service replaces it.
    """

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.PositiveIntegerField(help_text="The published model version that predicted.")
    variant = models.CharField(max_length=16, blank=True,
                               help_text="The variant of the version's file that ran (empty: a review guess "
                                         "stored before the two tables were one, which did not record it).")
    label = models.CharField(max_length=64, help_text="Its top label (a label slug).")
    confidence = models.FloatField(help_text="The top label's probability, 0..1.")
    top = models.JSONField(default=list, help_text="[[label slug, probability], ...], best first.")
    photo_label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+",
                                    help_text="The photo's label when the model predicted.")
    at_upload = models.BooleanField(default=False, help_text="By the version in service at upload: the stumped "
                                                             "bonus goes by it.")
    for_review = models.BooleanField(default=False, help_text="The latest made while the photo was pending: the "
                                                              "review queue's guess.")
    predicted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["photo", "model_version"], name="prediction_once_per_version"),
            models.UniqueConstraint(fields=["photo"], condition=Q(at_upload=True), name="one_upload_prediction"),
            models.UniqueConstraint(fields=["photo"], condition=Q(for_review=True), name="one_review_prediction"),
        ]
        indexes = [models.Index(fields=["label", "confidence"], name="prediction_label_confidence")]

    def __str__(self) -> str:
        return f"photo {self.photo_id}: {self.label} ({self.confidence:.2f}) by v{self.model_version}"

    @property
    def agrees(self) -> bool:
        return self.label == self.photo.label.slug


class Verifier(Volunteer):
    """Volunteers who have judged photos, as staff see them in the admin: verdicts and gold agreement."""

    class Meta:
        proxy = True
        verbose_name = "community verifier"
        verbose_name_plural = "community verifiers"
