from django.apps import AppConfig


class CollectorConfig(AppConfig):
    name = "collector"
    verbose_name = "Photo collection"

    def ready(self):
        # Receivers are connected here, explicitly, never by @receiver at import (docs/decisions.md).
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from collector import receivers

        pre_delete.connect(receivers.withdraw_photos_before_user_delete, sender=get_user_model(),
                           dispatch_uid="collector-withdraw-photos")
