from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training and model delivery"

    def ready(self):
        # Receivers are connected here, explicitly, never by @receiver at import (docs/decisions.md).
        from collector.signals import photo_status_changed
        from training import receivers

        photo_status_changed.connect(receivers.forget_withdrawn_features,
                                     dispatch_uid="training.forget_withdrawn_features")
