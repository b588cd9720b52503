"""training listens to collector's signals (collector never imports training); apps.py connects these."""

from __future__ import annotations

from django.db import transaction

from collector.models import PhotoStatus


def forget_withdrawn_features(sender, photo, old_status, new_status, **kwargs):
    """A withdrawn photo's cached backbone features leave with it (after the withdrawal commits)."""
    if new_status != PhotoStatus.WITHDRAWN:
        return
    from training.services.feature_cache import feature_cache_forget

    sha256 = photo.sha256
    transaction.on_commit(lambda: feature_cache_forget(sha256s=[sha256]))
