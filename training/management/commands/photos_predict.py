"""The server's own prediction for new photos (training.services.predictions); the scheduler runs it often."""

from django.core.management.base import BaseCommand

from training.services.predictions import photos_predict


class Command(BaseCommand):
    help = "Predict new photos with the model in service (LiteRT), for the stump-the-model bonus."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=500, help="Most photos per run (default 500).")

    def handle(self, *args, limit, **options):
        count = photos_predict(limit=limit)
        self.stdout.write(f"Predicted {count} photo{'s' if count != 1 else ''}.")
