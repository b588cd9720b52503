"""Reads of the training app. challenges and newsletter read training only through here."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db.models import Count, F, Q, QuerySet

from collector import selectors as collector_selectors
from training.feature_store import DbFeatureStore
from training.hparams import backbone_from_settings
from training.models import (
    ModelFile,
    ModelVersion,
    Rollout,
    RolloutState,
    RunOutcome,
    RunStatus,
    TrainingRun,
    VersionStatus,
)


def model_in_service() -> ModelVersion | None:
    """The published version phones get from /api/v1/models/latest/ (after any rollback)."""
    return ModelVersion.objects.filter(in_service=True, status=VersionStatus.PUBLISHED).first()


def rollout_open() -> Rollout | None:
    """The staged rollout under way (active or halted), if any."""
    return Rollout.objects.filter(open=True).select_related("model_version").first()


def model_for_device(*, install_id: str | None) -> ModelVersion | None:
    """The version /api/v1/models/latest/ gives this device: the rollout's when its bucket is inside the
    rollout's percentage, else the version in service for all (so always that one without an install id)."""
    current = model_in_service()
    if current is None or not install_id:
        return current
    rollout = (Rollout.objects.filter(open=True, state=RolloutState.ACTIVE,
                                      model_version__status=VersionStatus.PUBLISHED)
               .select_related("model_version").first())
    return rollout.model_version if rollout is not None and rollout.serves(install_id) else current


def model_version_get_published(*, version: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(version=version, status=VersionStatus.PUBLISHED).first()


def model_version_withheld(*, version: ModelVersion) -> bool:
    """Whether a version is handed out by number to staff only: its staged rollout was halted or rolled back
    (its last rollout) and it is not in service. Phones' `latest` never gets it anyway; this keeps a device
    (or anyone) from fetching a version staff stopped by typing its number."""
    if version.in_service:
        return False
    last = Rollout.objects.filter(model_version=version).order_by("-id").values_list("state", flat=True).first()
    return last in (RolloutState.HALTED, RolloutState.ROLLED_BACK)


def model_versions_published_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(status=VersionStatus.PUBLISHED).prefetch_related("files").order_by("-version")


def model_file_get(*, version: ModelVersion, variant: str) -> ModelFile | None:
    return version.files.filter(variant=variant).first()


def model_version_latest_with(*, variant: str, up_to: ModelVersion) -> ModelVersion | None:
    """The newest published version, not newer than `up_to` (the one in service: a rollback is
    honoured), that has a `variant` file: what a phone asking for a variant that failed to export in
    the latest runs (coreml) gets."""
    return (ModelVersion.objects.filter(status=VersionStatus.PUBLISHED, version__lte=up_to.version,
                                        files__variant=variant)
            .order_by("-version").first())


def model_versions_published(since=None, until=None) -> list[dict]:
    """Versions published in [since, until), oldest first, for the newsletter.

    Each: {"version", "published_at", "in_service", "strategy", "labels", "photo_count",
    "dataset_version", "accuracy": {variant: top-1 as the run reported it}, "interval": {variant: [low, high]},
    "photos": {variant: photos it rests on}, "default_variant", "new_labels": labels the previous published
    version did not have}.
    """
    qs = ModelVersion.objects.filter(status=VersionStatus.PUBLISHED).select_related("dataset_version")
    if since is not None:
        qs = qs.filter(published_at__gte=since)
    if until is not None:
        qs = qs.filter(published_at__lt=until)
    out = []
    for mv in qs.order_by("version"):
        previous = (ModelVersion.objects.filter(status=VersionStatus.PUBLISHED, version__lt=mv.version)
                    .order_by("-version").values_list("labels", flat=True).first())
        out.append({
            "version": mv.version,
            "published_at": mv.published_at,
            "in_service": bool(mv.in_service),
            "strategy": mv.strategy,
            "labels": list(mv.labels),
            "photo_count": mv.dataset_version.photo_count,
            "dataset_version": mv.dataset_version_id,
            "accuracy": {variant: m.get("accuracy") for variant, m in mv.metrics.items()},
            # The accuracy's 95 % interval and the photos it rests on, per variant (issue 17; absent before).
            "interval": {variant: m.get("interval") for variant, m in mv.metrics.items() if m.get("interval")},
            "photos": {variant: m.get("photos") for variant, m in mv.metrics.items() if m.get("photos")},
            "default_variant": mv.phone_variant(),
            "new_labels": [slug for slug in mv.labels if slug not in (previous or [])],
        })
    return out


def model_version_field_accuracy(*, version: int) -> dict:
    """How often phones running ``version`` predicted the label the reviewer approved, overall and per label.

    Counts approved photos that carry the phone's own prediction made with this version (uploads send
    ``predicted_label`` and ``model_version``). One grouped query. ``accuracy`` is None without samples.
    Returns {"version", "samples", "matched", "accuracy", "per_label": [{"label", "samples", "matched",
    "accuracy"}] sorted by label}.
    """
    rows = (collector_selectors.photos_approved().filter(model_version=version).exclude(predicted_label="")
            .values("label__slug").order_by("label__slug")
            .annotate(samples=Count("id"), matched=Count("id", filter=Q(predicted_label=F("label__slug")))))
    per_label = [{"label": r["label__slug"], "samples": r["samples"], "matched": r["matched"],
                  "accuracy": r["matched"] / r["samples"]} for r in rows]
    samples, matched = sum(r["samples"] for r in per_label), sum(r["matched"] for r in per_label)
    return {"version": version, "samples": samples, "matched": matched,
            "accuracy": matched / samples if samples else None, "per_label": per_label}


def no_model_reason() -> str:
    """Why no model is published yet, from the latest finished run: what held it back (and how many more photos
    would help), why it was skipped or why it failed; "" when no run has finished."""
    run = (TrainingRun.objects.filter(finished_at__isnull=False).order_by("-finished_at", "-id")
           .only("pk", "status", "outcome", "error", "decisions", "finished_at").first())
    if run is None:
        return ""
    why = run.why_nothing_published()
    return f"The last training run (#{run.pk}) published nothing: {why}" if why else ""


def latest_recall_by_label() -> dict[str, float] | None:
    """Label slug -> recall (0..1) of the model in service, as last measured; None when no model exists.

    Source, freshest first: the latest successful run's measurement of the model in
    service on that run's test split (the published candidate's own evaluation, or the
    in-service model re-evaluated by the gate of a held-back run, where labels it never
    learnt count 0); otherwise the in-service version's own recorded evaluation. The
    variant is the one phones get by default (``ModelVersion.phone_variant``) when the run evaluated it, else
    the gate variant.
    """
    current = model_in_service()
    run = (TrainingRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-finished_at", "-id")
           .only("outcome", "metrics", "gate", "model_version_id").first())
    per_class = None
    if run is not None and current is not None:
        if run.outcome == RunOutcome.PUBLISHED and run.model_version_id == current.pk:
            per_class = _variant_per_class(run.metrics, current.phone_variant())
        elif run.outcome == RunOutcome.HELD_BACK and (run.gate.get("service") or {}).get("version") == current.version:
            per_class = run.gate["service"].get("per_class")
    if per_class is None and current is not None:
        per_class = _variant_per_class(current.metrics, current.phone_variant())
    if per_class is None:
        return None
    return {slug: float(values.get("recall", 0.0)) for slug, values in per_class.items()}


def _variant_per_class(metrics: dict, phone_variant: str) -> dict | None:
    for variant in (phone_variant, settings.TRAINING_GATE_VARIANT, *metrics.keys()):
        if variant in metrics and "per_class" in metrics[variant]:
            return metrics[variant]["per_class"]
    return None


def embedding_cache_id() -> str:
    """The feature cache's name for pooled embeddings of the current backbone configuration."""
    from training.ml.features import features_cache_id
    from training.ml.model import POOLED

    return features_cache_id(backbone_from_settings(), POOLED, augmented=0, hparams=None)


def photo_embeddings(photo_ids: list[int]) -> dict[int, np.ndarray]:
    """Pooled backbone embedding (float32 vector) per approved photo, for what the feature cache holds.

    Never computes: photos no run has embedded yet (new since the last run) are absent.
    Embeddings are of the current backbone configuration (TRAINING_ALPHA, _INPUT_SIZE, _BASE_WEIGHTS).
    """
    from training.ml.features import decode
    from training.ml.types import WeightsUnavailable

    if not photo_ids:
        return {}
    try:
        cache_id = embedding_cache_id()
    except WeightsUnavailable:
        return {}
    sha_by_id = dict(collector_selectors.photos_approved().filter(pk__in=list(photo_ids)).values_list("id", "sha256"))
    blobs = DbFeatureStore().get_many(list(set(sha_by_id.values())), cache_id)
    out = {}
    for pid, sha in sha_by_id.items():
        if sha in blobs:
            array = decode(blobs[sha])
            out[pid] = array.reshape(-1) if array.ndim == 1 else array[0].reshape(-1)
    return out


def training_run_active() -> TrainingRun | None:
    return TrainingRun.objects.filter(active=True).first()


def training_run_queued_exists() -> bool:
    return TrainingRun.objects.filter(status=RunStatus.QUEUED).exists()


def label_audit_features() -> tuple[list[str], str]:
    """(feature cache ids, what they are) of the feature sets the label audit computes its probabilities on: the
    frozen backbone's embeddings and the pooled features of the latest run's trained network (the night's own
    model), one classifier per set, averaged (bench/README.md "Label audit"); the embeddings alone before any run
    stored its network's features, or when the run trained a head only (then they are the same features)."""
    embeddings = embedding_cache_id()
    run = TrainingRun.objects.exclude(model_features="").order_by("-id").first()
    if run is None:
        return [embeddings], "the frozen backbone's embeddings (no run has stored its network's features yet)"
    if run.model_features == embeddings:
        return [embeddings], f"the frozen backbone's embeddings (run #{run.pk} trained a head only)"
    return [embeddings, run.model_features], f"the frozen backbone's embeddings and run #{run.pk}'s fine-tuned network"


def label_audit_outliers() -> dict[int, float]:
    """photo id -> z-score of the photos the latest label audit found unusual for their label (staff see it
    beside the novelty bonus). Empty before the first audit."""
    from training.models import LabelAudit

    latest = LabelAudit.objects.filter(finished_at__isnull=False).order_by("-started_at", "-id").first()
    return {item["photo"]: item["z"] for item in latest.outliers} if latest is not None else {}


def latest_confusions() -> dict[str, tuple[str, float]]:
    """Label slug -> (the label the model in service most often took it for, the share of its test photos
    taken for that one), from the version's own evaluation (TRAINING_DEFAULT_VARIANT, else the gate variant)
    on its test split. Labels it never confused are absent."""
    current = model_in_service()
    if current is None:
        return {}
    for variant in (settings.TRAINING_DEFAULT_VARIANT, settings.TRAINING_GATE_VARIANT, *current.metrics.keys()):
        confusion = (current.metrics.get(variant) or {}).get("confusion")
        if confusion:
            break
    else:
        return {}
    labels = list(current.labels)
    out = {}
    for i, row in enumerate(confusion[: len(labels)]):
        total = sum(row)
        wrong = [(count, j) for j, count in enumerate(row[: len(labels)]) if j != i and count > 0]
        if total and wrong:
            count, j = max(wrong)
            out[labels[i]] = (labels[j], count / total)
    return out
