"""The nightly label audit: likely label errors back to the review queue, outliers and near-duplicates for staff.

After the night's training has stored the pooled features of its trained network for every photo of its
dataset (TrainingRun.model_features), ``label_audit_run`` computes out-of-sample class probabilities by
k-fold over those features and over the frozen backbone's embeddings (one classifier each, averaged), ranks
likely label errors with
cleanlab (training.ml.label_audit) and flags the most likely, at most LABEL_AUDIT_MAX_PER_NIGHT, through
collector's ``photos_flag_likely_mislabeled`` (out of the next dataset and the novelty bonus until a
reviewer decides). Outliers ("unusual for its label") and near-duplicate clusters across volunteers are
recorded on the LabelAudit row for staff. Nothing is ever relabelled automatically. See docs/review.md.
"""

from __future__ import annotations

import resource
import time
from typing import Callable

import numpy as np
from django.conf import settings
from django.utils import timezone

from collector import selectors as collector_selectors
from collector import services as collector_services
from training.feature_store import DbFeatureStore
from training.models import LabelAudit

SHOWN = 200  # issues and outliers kept on the audit's row for staff
READ_CHUNK = 2000  # cached features read per query


def _features(cache_ids: list[str], log) -> tuple[list[int], list[str], list[int | None], list[np.ndarray]]:
    """(photo ids, label slugs, owners, one n x 128 array per feature set) of the approved photos every set holds.

    Each set is read READ_CHUNK photos at a time and reduced before the next is read (read_reduced)."""
    from training.ml.label_audit import read_reduced

    rows = list(collector_selectors.photos_approved().order_by("id")
                .values_list("id", "sha256", "label__slug", "volunteer_id"))
    store = DbFeatureStore()
    held = set(row[1] for row in rows)
    for cache_id in cache_ids:
        held &= store.present(list(held), cache_id)
    kept = [row for row in rows if row[1] in held]
    missing = len(rows) - len(kept)
    if missing:
        log(f"{missing} approved photo(s) have no cached features of the night's networks yet (approved since its "
            "run); not audited.")
    keys = [sha for _, sha, _, _ in kept]
    features = [read_reduced(store, keys, cache_id, chunk=READ_CHUNK) for cache_id in cache_ids] if kept else []
    return [r[0] for r in kept], [r[2] for r in kept], [r[3] for r in kept], features


def label_audit_run(*, log: Callable[[str], None] = lambda message: None, limit: int | None = None) -> LabelAudit:
    """Audit every approved photo with cached features; flag up to ``limit`` (LABEL_AUDIT_MAX_PER_NIGHT)."""
    from training.ml.label_audit import audit
    from training.selectors import label_audit_features

    limit = settings.LABEL_AUDIT_MAX_PER_NIGHT if limit is None else limit
    cache_ids, what = label_audit_features()
    record = LabelAudit.objects.create(features=what)
    log(f"Features: {what}.")
    started = time.perf_counter()
    ids, slugs, owners, features = _features(cache_ids, log)
    record.photos = len(ids)
    if not features or len(set(slugs)) < 2:
        record.error = "Fewer than two labels with cached features: nothing to audit."
        log(record.error)
    else:
        names = sorted(set(slugs))
        index = {slug: i for i, slug in enumerate(names)}
        labels = np.array([index[slug] for slug in slugs])
        findings = audit(features, labels, np.array([o if o is not None else -1 for o in owners]),
                         folds=settings.LABEL_AUDIT_FOLDS, duplicate_similarity=settings.LABEL_AUDIT_DUPLICATE_SIMILARITY)
        del features
        record.labels = len(names)
        record.issues_found = len(findings.label_issues)
        issues = [(ids[row], score, names[best], confidence) for row, score, best, confidence in findings.label_issues]
        record.flagged = collector_services.photos_flag_likely_mislabeled(flags=issues, limit=limit)
        record.issues = [{"photo": pid, "label": slugs[row], "suggested": suggested, "score": round(score, 4),
                          "confidence": round(confidence, 4)}
                         for (pid, score, suggested, confidence), (row, *_rest) in
                         zip(issues[:SHOWN], findings.label_issues[:SHOWN])]
        record.outliers = [{"photo": ids[row], "label": slugs[row], "z": round(z, 2)}
                           for row, z in findings.outliers[:SHOWN]]
        record.duplicate_clusters = [[ids[row] for row in cluster] for cluster in findings.duplicate_clusters[:SHOWN]]
        log(f"Audited {len(ids)} photos of {len(names)} labels: {record.issues_found} likely label errors, "
            f"{len(record.flagged)} sent back to review (cap {limit}), {len(findings.outliers)} outliers, "
            f"{len(findings.duplicate_clusters)} near-duplicate clusters.")
    record.seconds = round(time.perf_counter() - started, 3)
    record.peak_memory_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    record.finished_at = timezone.now()
    record.save()
    return record
