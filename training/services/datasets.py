"""Dataset versions: which approved photos a run trains on, in which split, frozen so a run can be repeated."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from collector import selectors as collector_selectors
from config.domain_errors import Conflict
from training.models import DatasetVersion

SPLITS = ("train", "val", "test")


def split_for(sha256: str) -> str:
    """train / val / test from a hash of the photo's bytes: the same photo always lands in the same split,
    whatever else arrives (duplicates of the same bytes share a split, so they never leak into the test set)."""
    bucket = int(hashlib.sha256(f"crowdlens-split:{sha256}".encode()).hexdigest()[:15], 16) / 16**15
    if bucket < settings.TRAINING_TEST_FRACTION:
        return "test"
    if bucket < settings.TRAINING_TEST_FRACTION + settings.TRAINING_VAL_FRACTION:
        return "val"
    return "train"


@dataclass
class FrozenDataset:
    version: DatasetVersion
    training_keys: dict[int, str]  # photo id -> storage key of the training derivative (not kept: may be deleted later)
    created: bool


def dataset_version_freeze(*, cutoff=None) -> FrozenDataset:
    """Freeze the approved photos up to ``cutoff`` (now) into a dataset version (shared when identical)."""
    cutoff = cutoff or timezone.now()
    minimum = settings.TRAINING_MIN_PHOTOS_PER_LABEL
    by_label: dict[str, list[dict]] = {}
    targets: dict[str, int] = {}
    training_keys: dict[int, str] = {}
    for photo in collector_selectors.photos_approved(up_to=cutoff).order_by("id"):
        slug = photo.label.slug
        targets[slug] = photo.label.effective_prototype_target
        by_label.setdefault(slug, []).append({"id": photo.pk, "sha256": photo.sha256, "label": slug,
                                              "split": split_for(photo.sha256)})
        training_keys[photo.pk] = photo.training_key

    labels, excluded, flagged, rows = [], {}, {}, []
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for slug in sorted(by_label):
        photos = by_label[slug]
        n = len(photos)
        if n < minimum:
            excluded[slug] = (f"only {n} approved photo{'s' if n != 1 else ''}; at least {minimum} are needed "
                              "(TRAINING_MIN_PHOTOS_PER_LABEL)")
            continue
        if not any(p["split"] == "train" for p in photos):
            excluded[slug] = f"none of its {n} approved photos fell in the training split"
            continue
        labels.append(slug)
        rows.extend(photos)
        for split in SPLITS:
            counts[split][slug] = sum(1 for p in photos if p["split"] == split)
        if n < targets[slug]:
            flagged[slug] = f"{n} approved photos, under the prototype target of {targets[slug]}"
    rows.sort(key=lambda r: r["id"])
    fingerprint = hashlib.sha256(json.dumps({"labels": labels, "photos": rows, "excluded": excluded, "flagged": flagged},
                                            sort_keys=True).encode()).hexdigest()
    version, created = DatasetVersion.objects.get_or_create(
        fingerprint=fingerprint,
        defaults={"cutoff": cutoff, "manifest": rows, "labels": labels, "excluded_labels": excluded,
                  "flagged_labels": flagged, "counts": counts, "photo_count": len(rows)},
    )
    kept = {r["id"] for r in rows}
    return FrozenDataset(version, {pid: key for pid, key in training_keys.items() if pid in kept}, created)


class DatasetUnavailable(Conflict):
    """An earlier dataset version cannot be trained on again (gone, or its photos left)."""

    default_code = "dataset_unavailable"


def dataset_version_reload(*, pk: int) -> FrozenDataset:
    """An earlier dataset version, to repeat a run on exactly its photos and splits.

    Refused when any of its photos is no longer approved (withdrawn, rejected since): those
    photos must not be trained on again, so the exact repeat is no longer possible."""
    version = DatasetVersion.objects.filter(pk=pk).first()
    if version is None:
        raise DatasetUnavailable(f"There is no dataset version {pk}.")
    ids = [row["id"] for row in version.manifest]
    live = {p.pk: p for p in collector_selectors.photos_approved().filter(pk__in=ids)}
    gone = [row["id"] for row in version.manifest
            if row["id"] not in live or live[row["id"]].label.slug != row["label"]]
    if gone:
        raise DatasetUnavailable(f"Dataset v{pk} cannot be repeated exactly: {len(gone)} of its {len(ids)} photos are "
                                 "no longer approved under the same label (withdrawn, rejected or relabelled).")
    return FrozenDataset(version, {pid: live[pid].training_key for pid in ids}, created=False)

