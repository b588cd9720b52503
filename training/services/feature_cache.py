"""Writes to the feature cache outside a run: forgetting photos that left."""

from __future__ import annotations

from collector import selectors as collector_selectors
from training.models import FeatureCache


def feature_cache_forget(*, sha256s: list[str]) -> int:
    """Drop cached features of photos that left (withdrawn), unless other live photos share the bytes."""
    still_used = set(collector_selectors.photos_approved().filter(sha256__in=sha256s).values_list("sha256", flat=True))
    gone = [s for s in sha256s if s not in still_used]
    if not gone:
        return 0
    deleted, _ = FeatureCache.objects.filter(sha256__in=gone).delete()
    return deleted


def feature_cache_forget_older_model_features(*, keep: str) -> int:
    """Drop the cached features of every trained network but ``keep`` (the latest run's, which the label audit
    reads). The frozen backbone's features (embeddings, training features) are kept."""
    from training.ml.features import MODEL_FEATURES

    deleted, _ = (FeatureCache.objects.filter(cache_id__contains=f":{MODEL_FEATURES}=").exclude(cache_id=keep)
                  .delete())
    return deleted
