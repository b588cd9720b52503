"""`manage.py photos_predict`: the model in service predicts the photos that need it (training.services.predictions).

The scheduler runs it every PHOTOS_PREDICT_EVERY_MINUTES (training/jobs.py, "photos_predict"): new photos
get the prediction the stumped bonus goes by, pending photos the guess the review queue shows. Safe to run
twice at once. See docs/review.md and docs/challenges.md.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from training.services.predictions import photos_predict


class Command(BaseCommand):
    help = ("Predict photos with the model in service (LiteRT): new photos for the stump-the-model bonus, "
            "pending photos for the review queue's guesses.")

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=2000, help="Most photos per run (default 2000).")

    def handle(self, *args, limit: int, **options):
        photos_predict(limit=limit, log=lambda message: self.stdout.write(message))
