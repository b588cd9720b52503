"""Reactions to Django's own signals, connected in CollectorConfig.ready (see docs/decisions.md)."""

from __future__ import annotations


def withdraw_photos_before_user_delete(sender, instance, **kwargs):
    """Deleting a user any way (account deletion, Django's user admin, a shell) withdraws their photos
    first: they leave every future dataset and their files leave storage."""
    from collector.services import photos_withdraw_for_user  # services import models: not at app loading

    photos_withdraw_for_user(user=instance, notify=False)
