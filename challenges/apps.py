from django.apps import AppConfig


class ChallengesConfig(AppConfig):
    name = "challenges"
    verbose_name = "Challenges, points and leaderboards"

    def ready(self):
        from challenges import receivers  # noqa: F401  (connects to collector's signals)
