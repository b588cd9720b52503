"""Receivers of collector's signals: both run inside collector's transaction."""

from __future__ import annotations

from django.dispatch import receiver

from collector.signals import photo_status_changed, photo_upload_validating


@receiver(photo_upload_validating, dispatch_uid="challenges.validate_challenge_entry")
def validate_challenge_entry(sender, *, user, label, challenge_id, now, **kwargs):
    """An upload naming a challenge must name an open one for its label (else ApiError 422)."""
    if challenge_id is None:
        return
    from challenges.services import challenge_entry_check

    challenge_entry_check(challenge_id=challenge_id, label=label, now=now)


@receiver(photo_status_changed, dispatch_uid="challenges.settle_points")
def settle_points(sender, *, photo, old_status, new_status, old_label_id=None, reviewer=None, **kwargs):
    """Write the ledger rows a review, relabel or withdrawal implies (photo row is locked by collector)."""
    from challenges.services import on_photo_status_changed

    on_photo_status_changed(photo=photo, old_status=old_status, new_status=new_status, old_label_id=old_label_id,
                            reviewer=reviewer)


def _connect_user_delete():
    from django.contrib.auth import get_user_model
    from django.db.models.signals import pre_delete

    from collector.models import Photo

    pre_delete.connect(_forget_user_scores, sender=get_user_model(), dispatch_uid="challenges.forget_user_scores")
    pre_delete.connect(_revoke_photo_points, sender=Photo, dispatch_uid="challenges.revoke_photo_points")


def _revoke_photo_points(sender, instance, **kwargs):
    """A photo row deleted (admin): its points leave the boards before the ledger loses the link."""
    from challenges.services import photo_points_revoke

    photo_points_revoke(photo_id=instance.pk)


def _forget_user_scores(sender, instance, **kwargs):
    """A user deleted any way (admin included): their Score rows cascade away, so leave the ranked totals too."""
    from challenges.services import scores_forget_user

    scores_forget_user(user_id=instance.pk)


_connect_user_delete()
