from django.apps import AppConfig


class CollectorConfig(AppConfig):
    name = "collector"
    verbose_name = "Photo collection"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        pre_delete.connect(_withdraw_photos_before_user_delete, sender=get_user_model(),
                           dispatch_uid="collector-withdraw-photos")


def _withdraw_photos_before_user_delete(sender, instance, **kwargs):
    from collector.services import photos_withdraw_for_user

    photos_withdraw_for_user(user=instance, notify=False)
