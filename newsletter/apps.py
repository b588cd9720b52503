from django.apps import AppConfig


class NewsletterConfig(AppConfig):
    name = "newsletter"

    def ready(self):
        # Receivers are connected here, explicitly, never by @receiver at import (docs/decisions.md).
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from newsletter import receivers

        pre_delete.connect(receivers.forget_deleted_user, sender=get_user_model(),
                           dispatch_uid="newsletter-forget-deleted-user")
