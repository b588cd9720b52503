"""What challenges does when collector (or auth) tells it something. Connected in ChallengesConfig.ready().

collector's signals are sent inside collector's transaction, and pre_delete
inside the delete's, so every write here commits or rolls back with the change.
"""

from __future__ import annotations

from challenges import selectors, services


def validate_challenge_entry(sender, *, user, label, challenge_id, now, **kwargs):
    """An upload naming a challenge must name an open one for its label (else the domain Unprocessable)."""
    if challenge_id is None:
        return
    services.challenge_entry_check(challenge_id=challenge_id, label=label, now=now)


def settle_points(sender, *, photo, old_status, new_status, old_label_id=None, reviewer=None, **kwargs):
    """Write the ledger rows a review, relabel or withdrawal implies (photo row is locked by collector)."""
    services.on_photo_status_changed(photo=photo, old_status=old_status, new_status=new_status,
                                     old_label_id=old_label_id, reviewer=reviewer)


def take_back_bootstrap_points(sender, *, user, **kwargs):
    """An account became photos_import's bootstrap account: what its photos earned leaves the boards."""
    services.bootstrap_points_take_back(user_id=user.pk)


def revoke_photo_points(sender, instance, **kwargs):
    """A photo row deleted (admin): its points leave the boards before the ledger loses the link."""
    services.photo_points_revoke(photo_id=instance.pk)


def forget_user_scores(sender, instance, **kwargs):
    """A user deleted any way (admin included): their Score rows cascade away, so leave the ranked totals too."""
    services.scores_forget_user(user_id=instance.pk)


def settle_stumped_points(sender, *, photo_id, **kwargs):
    """The server's own prediction at upload was stored for a photo: the stump-the-model bonus may now be due."""
    services.photo_points_settle(photo_id=photo_id, note="server prediction")


def rank_labels(sender, *, labels, **kwargs):
    """collector asks which labels are needed most (GET /api/v1/labels/, the camera page)."""
    return selectors.labels_need_ranking(labels=labels)
