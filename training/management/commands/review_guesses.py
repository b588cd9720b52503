"""`manage.py review_guesses`: the model in service guesses the pending photos it has not guessed yet.

The scheduler runs it every few minutes (settings.SCHEDULER_JOBS, "review-guesses"); the review queue shows
the guesses. Idempotent: a photo already guessed by the model in service is skipped, so two runs at once
only repeat a little work. See docs/review.md.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from training.services.guesses import review_guesses_compute


class Command(BaseCommand):
    help = "Store the in-service model's top guesses for pending photos (for the review queue)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=2000, help="At most this many photos per run.")
        parser.add_argument("--no-progress", action="store_true", help="Accepted for the scheduler; prints a summary.")

    def handle(self, *args, limit: int, **options):
        review_guesses_compute(limit=limit, log=lambda message: self.stdout.write(message))
