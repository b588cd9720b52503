from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training and model delivery"

    def ready(self):
        from training import receivers  # noqa: F401  (connects signal receivers)
