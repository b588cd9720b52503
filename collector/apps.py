from django.apps import AppConfig


def _reviewers_group(sender, using, **kwargs):
    """After every `migrate` (and a test database's flush, which sends the same signal) the Reviewers group
    exists with its permissions: a data migration made it once, and a flush or a deleted row would leave none."""
    from collector.services import reviewers_group_sync

    if using == "default":
        reviewers_group_sync()


class CollectorConfig(AppConfig):
    name = "collector"
    verbose_name = "Photo collection"

    def ready(self):
        # Receivers are connected here, explicitly, never by @receiver at import (docs/decisions.md).
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_migrate, pre_delete

        from collector import receivers

        pre_delete.connect(receivers.withdraw_photos_before_user_delete, sender=get_user_model(),
                           dispatch_uid="collector-withdraw-photos")
        post_migrate.connect(_reviewers_group, sender=self, dispatch_uid="collector-reviewers-group")
