"""Novelty: approved photos far from their label's centre in feature space earn a bonus (numpy).

Needs the features training caches (training.selectors.photo_embeddings);
nothing happens until they exist.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from challenges.models import PhotoNovelty
from challenges.services.points import photo_lock, photo_settle_locked
from collector import selectors as collector_selectors
from collector.models import PhotoStatus
from training import selectors as training_selectors

logger = logging.getLogger(__name__)


def _photo_embeddings(photo_ids: list[int]) -> dict:
    """A failure in training's feature cache must not stop the daily job: novelty waits for the next day (logged)."""
    try:
        return training_selectors.photo_embeddings(photo_ids) or {}
    except Exception:
        logger.exception("training.selectors.photo_embeddings failed; no novelty this time")
        return {}


@dataclass
class NoveltyResult:
    labels_scored: int = 0
    photos_scored: int = 0
    photos_awarded: int = 0


def novelty_points(percentile: float) -> int:
    """0 below NOVELTY_PERCENTILE; above it, rising linearly to POINTS_NOVELTY_MAX for the farthest photo."""
    threshold = settings.NOVELTY_PERCENTILE
    if percentile < threshold or settings.POINTS_NOVELTY_MAX == 0:
        return 0
    share = (percentile - threshold) / (1.0 - threshold) if threshold < 1 else 1.0
    return max(1, round(settings.POINTS_NOVELTY_MAX * min(1.0, share)))


def novelty_award(*, now: dt.datetime | None = None, progress: bool = False) -> NoveltyResult:
    """Score approved photos not yet scored by their distance from their label's centre, and award the bonus.

    Needs features from training (training.selectors.photo_embeddings); does
    nothing until they exist. Each photo is scored once (PhotoNovelty is
    unique per photo, which also stops two runs from awarding twice).
    """
    import numpy as np

    now = now or timezone.now()
    result = NoveltyResult()
    approved = collector_selectors.photos_approved()
    scored = set(PhotoNovelty.objects.values_list("photo_id", flat=True))
    by_label: dict[int, list[int]] = defaultdict(list)
    for photo_id, label_id in approved.values_list("id", "label_id"):
        by_label[label_id].append(photo_id)
    label_ids = [lid for lid, ids in by_label.items() if any(pid not in scored for pid in ids)]
    iterator = label_ids
    if progress:
        from config.progress import progress_bar  # a bar at a terminal, a line every few seconds in a log

        iterator = progress_bar(label_ids, desc="novelty", unit="label")
    for label_id in iterator:
        ids = by_label[label_id]
        if len(ids) < settings.NOVELTY_MIN_PHOTOS:
            continue
        vectors = _photo_embeddings(ids)
        have = [pid for pid in ids if pid in vectors]
        if len(have) < settings.NOVELTY_MIN_PHOTOS:
            continue
        matrix = np.asarray([np.asarray(vectors[pid], dtype=np.float64).ravel() for pid in have])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms == 0, 1.0, norms)
        centre = matrix.mean(axis=0)
        centre = centre / (np.linalg.norm(centre) or 1.0)
        distances = 1.0 - matrix @ centre
        order = np.sort(distances)
        result.labels_scored += 1
        for pid, distance in zip(have, distances):
            if pid in scored:
                continue
            percentile = float(np.searchsorted(order, distance, side="left")) / max(1, len(have) - 1)
            percentile = min(1.0, percentile)
            points = novelty_points(percentile)
            with transaction.atomic():
                photo = photo_lock(pid)
                if photo is None or photo.status != PhotoStatus.APPROVED or photo.label_id != label_id:
                    continue
                _, created = PhotoNovelty.objects.get_or_create(
                    photo=photo, defaults={"label_id": label_id, "distance": float(distance), "percentile": percentile,
                                           "compared_with": len(have), "points": points},
                )
                if created:
                    result.photos_scored += 1
                    if points:
                        result.photos_awarded += 1
                        photo_settle_locked(photo=photo, now=now, note="novelty")
    return result

