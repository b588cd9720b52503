"""The nightly label audit: likely label errors back to the review queue, outliers and near-duplicates for staff.

After the night's training has cached every approved photo's backbone features, ``label_audit_run``
computes out-of-sample class probabilities by k-fold over those features, ranks likely label errors with
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


def _features(log) -> tuple[list[int], list[str], list[int | None], np.ndarray | None]:
    """(photo ids, label slugs, owners, features n x d) of approved photos whose features the cache holds."""
    from training.ml.features import decode
    from training.selectors import embedding_cache_id

    cache_id = embedding_cache_id()
    rows = list(collector_selectors.photos_approved().order_by("id")
                .values_list("id", "sha256", "label__slug", "volunteer_id"))
    store = DbFeatureStore()
    ids, labels, owners = [], [], []
    features = None  # one n x d float32 array, filled in place (never a list of blocks and their concatenation)
    for start in range(0, len(rows), READ_CHUNK):
        chunk = rows[start:start + READ_CHUNK]
        blobs = store.get_many(list({sha for _, sha, _, _ in chunk}), cache_id)
        for pid, sha, slug, owner in chunk:
            if sha not in blobs:
                continue
            array = decode(blobs[sha])
            vector = array.reshape(-1) if array.ndim == 1 else array[0].reshape(-1)
            if features is None:
                features = np.empty((len(rows), len(vector)), dtype=np.float32)
            features[len(ids)] = vector
            ids.append(pid), labels.append(slug), owners.append(owner)
    missing = len(rows) - len(ids)
    if missing:
        log(f"{missing} approved photo(s) have no cached features yet (the next run embeds them); not audited.")
    return ids, labels, owners, (features[:len(ids)] if features is not None else None)


def label_audit_run(*, log: Callable[[str], None] = lambda message: None, limit: int | None = None) -> LabelAudit:
    """Audit every approved photo with cached features; flag up to ``limit`` (LABEL_AUDIT_MAX_PER_NIGHT)."""
    from training.ml.label_audit import audit

    limit = settings.LABEL_AUDIT_MAX_PER_NIGHT if limit is None else limit
    record = LabelAudit.objects.create()
    started = time.perf_counter()
    ids, slugs, owners, features = _features(log)
    record.photos = len(ids)
    if features is None or len(set(slugs)) < 2:
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
