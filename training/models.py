"""Dataset versions, training runs, the feature cache, model versions and scheduler bookkeeping."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q


class DatasetVersion(models.Model):
    """The exact approved photos a run trained on, frozen as a manifest.

    ``manifest`` is a list of ``{"id", "sha256", "label", "split"}`` rows sorted
    by photo id; ``fingerprint`` is the sha256 of that list, so two runs on the
    same data share one version.
    """

    fingerprint = models.CharField(max_length=64, unique=True)
    cutoff = models.DateTimeField(help_text="Photos approved up to this moment")
    manifest = models.JSONField(default=list)
    labels = models.JSONField(default=list, help_text="Labels trained on, in output-index order")
    excluded_labels = models.JSONField(default=dict, help_text="label -> why it was left out")
    flagged_labels = models.JSONField(default=dict, help_text="label -> note (under the prototype target)")
    counts = models.JSONField(default=dict, help_text="split -> label -> photos")
    photo_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Dataset v{self.pk} ({self.photo_count} photos, {len(self.labels)} labels)"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued (waiting for the scheduler)"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RunOutcome(models.TextChoices):
    NONE = "", "-"
    PUBLISHED = "published", "Published and put in service"
    HELD_BACK = "held_back", "Held back by the release gate"
    IDENTICAL = "identical", "Identical to the model in service (nothing published)"


class TrainingRun(models.Model):
    """One night's (or one admin's) training: progress while running, the record afterwards.

    At most one run is *active* (``active=True``): the partial unique constraint
    is the claim, so two `train` commands or two schedulers make one run.
    ``cancel_requested_at`` / ``_by``: an admin asked to cancel it (see
    ``services.training_run_cancel``); a running run ends ``cancelled`` at its next stop check.
    """

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING, db_index=True)
    active = models.BooleanField(null=True, default=None, help_text="True while this run holds the claim")
    outcome = models.CharField(max_length=16, choices=RunOutcome.choices, default="", blank=True)
    trigger = models.CharField(max_length=16, default="manual", help_text="scheduler | manual | admin")
    force = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    phase = models.CharField(max_length=32, blank=True)
    percent = models.FloatField(default=0.0)
    log = models.TextField(blank=True)
    phase_seconds = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    dataset_version = models.ForeignKey(DatasetVersion, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="runs")
    strategy = models.CharField(max_length=16, blank=True)
    hparams = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="variant -> evaluation of the exported file")
    history = models.JSONField(default=dict, blank=True, help_text="Keras history per epoch")
    feature_stats = models.JSONField(default=dict, blank=True)
    model_features = models.CharField(
        max_length=255, blank=True,
        help_text="Feature cache id of the pooled features of this run's trained network for every photo of its "
                  "dataset: what the nightly label audit reads (the latest run's; older runs' rows are deleted)")
    gate = models.JSONField(default=dict, blank=True, help_text="What the release gate compared")
    estimate = models.JSONField(default=dict, blank=True,
                                help_text="The accuracy reported, its 95 % interval and what it rests on; per variant; "
                                          "how the strategy and the default variant were chosen")
    decisions = models.JSONField(default=list, blank=True, help_text="[{at, decision, detail}] in order")
    model_version = models.ForeignKey("ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    host = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                            on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="training_one_active_run"),
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.FAILED, RunStatus.CANCELLED)

    # Decisions that say why a finished run published nothing, most telling first.
    NOTHING_PUBLISHED_DECISIONS = ("gate_not_better_than_chance", "gate_accuracy_worse", "gate_int8_drop", "skip",
                                   "identical")

    def why_nothing_published(self) -> str:
        """One line for the runs list: why this finished run failed or published nothing ("" when it published,
        or is still going)."""
        if self.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            return (self.error or "").strip().splitlines()[0] if self.error else str(self.get_status_display())
        if not self.is_finished or self.outcome == RunOutcome.PUBLISHED:
            return ""
        details = {d.get("decision"): d.get("detail", "") for d in self.decisions or []}
        for decision in self.NOTHING_PUBLISHED_DECISIONS:
            if decision in details:
                return details[decision]
        return ""


class FeatureCache(models.Model):
    """Backbone features per (photo sha256, backbone configuration): training.ml's FeatureStore."""

    sha256 = models.CharField(max_length=64)
    cache_id = models.CharField(max_length=255)
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cache_id", "sha256"], name="training_feature_unique")]
        indexes = [models.Index(fields=["sha256"])]


class VersionStatus(models.TextChoices):
    PENDING = "pending", "Pending (files being written)"
    PUBLISHED = "published", "Published"
    ABANDONED = "abandoned", "Abandoned (publishing did not finish)"


class ModelVersion(models.Model):
    """A published model: an increasing integer and its files per variant.

    The row is created ``pending`` (reserving the number, hence the storage
    keys), files are written, and only then is it marked ``published`` in
    one transaction. Numbers of abandoned versions are never reused, so a
    key is never written twice.
    """

    version = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.PENDING,
                              db_index=True)
    in_service = models.BooleanField(null=True, default=None)
    run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="model_versions")
    strategy = models.CharField(max_length=16)
    labels = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, help_text="variant -> evaluation of the exported file")
    min_app_version = models.CharField(max_length=40, blank=True)
    default_variant = models.CharField(max_length=16, blank=True,
                                       help_text="What a phone gets without ?variant=, chosen by evidence at publishing")
    default_variant_why = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["in_service"], condition=Q(in_service=True),
                                    name="training_one_model_in_service"),
        ]

    def __str__(self) -> str:
        return f"v{self.version}"

    def accuracy(self, variant: str) -> float | None:
        return (self.metrics.get(variant) or {}).get("accuracy")

    def phone_variant(self) -> str:
        """The variant of a manifest asked for without ?variant=: TRAINING_DEFAULT_VARIANT when the operator
        named one, else this version's own choice (versions from before the choice existed: int8, as then)."""
        configured = settings.TRAINING_DEFAULT_VARIANT
        if configured != "auto":
            return configured
        return self.default_variant or ("int8" if "int8" in self.metrics else settings.TRAINING_GATE_VARIANT)


class ModelFile(models.Model):
    """One variant of a model version: the .tflite, labels.txt and metadata.json under immutable keys."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="files")
    variant = models.CharField(max_length=16)
    model_key = models.CharField(max_length=255)
    labels_key = models.CharField(max_length=255)
    metadata_key = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveIntegerField()
    input_spec = models.JSONField(default=dict)

    class Meta:
        ordering = ["model_version", "variant"]
        constraints = [models.UniqueConstraint(fields=["model_version", "variant"], name="training_one_file_per_variant")]

    def __str__(self) -> str:
        return f"{self.model_version} {self.variant}"


class ServiceChange(models.Model):
    """Every change of the model in service: publish, rollback, forward."""

    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField()
    reason = models.CharField(max_length=32)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class RolloutState(models.TextChoices):
    ACTIVE = "active", "Active (a percentage of devices gets it)"
    HALTED = "halted", "Halted (every device gets the version in service)"
    COMPLETE = "complete", "Complete (put in service for every device)"
    ROLLED_BACK = "rolled_back", "Rolled back"
    SUPERSEDED = "superseded", "Ended by another change of the model in service"


class Rollout(models.Model):
    """A published version in service for ``percent`` of devices, beside the version in service for all.

    At most one rollout is *open* (active or halted; ``open=True`` under a partial unique constraint).
    A device's bucket (0-99) comes from its install id alone (``training.rollout.device_bucket``), so a
    widened rollout keeps the devices it already had.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="rollouts")
    percent = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=16, choices=RolloutState.choices, default=RolloutState.ACTIVE)
    open = models.BooleanField(null=True, default=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["open"], condition=Q(open=True), name="training_one_open_rollout"),
            models.CheckConstraint(condition=Q(percent__gte=0, percent__lte=100), name="training_rollout_percent"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} to {self.percent} % ({self.state})"

    def serves(self, install_id: str | None) -> bool:
        """Whether the device with this install id gets the rollout's version (none without an id)."""
        return (self.state == RolloutState.ACTIVE and bool(install_id)
                and device_bucket(install_id) < self.percent)


def device_bucket(install_id: str) -> int:
    """A device's rollout bucket, 0-99, from its install id alone.

    The salt is the same for every rollout and version on purpose: a device in the first 10 % stays in
    when the rollout widens to 50 %, and the next version's rollout reaches the same early devices.
    """
    digest = hashlib.sha256(f"{settings.TRAINING_ROLLOUT_SALT}:{install_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


class RolloutChange(models.Model):
    """The history of a rollout: who changed what, when."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=16, help_text="start | widen | narrow | halt | resume | complete | rollback | end")
    percent_from = models.PositiveSmallIntegerField(null=True, blank=True)
    percent_to = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=16, choices=RolloutState.choices)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class LabelAudit(models.Model):
    """One night's label audit (training.services.label_audit): what it found, what it sent back to review."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    photos = models.PositiveIntegerField(default=0, help_text="Approved photos audited (those with cached features).")
    labels = models.PositiveIntegerField(default=0)
    issues_found = models.PositiveIntegerField(default=0, help_text="Photos cleanlab ranks as likely mislabelled.")
    flagged = models.JSONField(default=list, help_text="Photo ids sent back to the review queue (at most "
                                                       "LABEL_AUDIT_MAX_PER_NIGHT).")
    issues = models.JSONField(default=list, help_text="The first likely label errors: {photo, label, suggested, "
                                                      "score, confidence}, most likely first.")
    outliers = models.JSONField(default=list, help_text="Photos unusual for their label: {photo, label, z}.")
    duplicate_clusters = models.JSONField(default=list, help_text="Near-identical photos of different volunteers.")
    features = models.CharField(max_length=300, blank=True,
                                help_text="Whose features the out-of-sample probabilities were computed on: the "
                                          "latest run's trained network, or the frozen backbone before any.")
    seconds = models.FloatField(default=0)
    peak_memory_mb = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Label audit of {self.started_at:%Y-%m-%d %H:%M}"
