"""Fold the rank histogram's appended changes into its buckets (keeps own-rank reads short).

Run every CHALLENGE_COMPACT_EVERY_MINUTES by the scheduler. Ranks are exact
whether or not it runs; it only bounds how many change rows a read sums.
Safe to run concurrently and to kill at any point (one transaction).
"""

from django.core.management.base import BaseCommand

from challenges import services


class Command(BaseCommand):
    help = "Fold rank histogram changes into RankBucket rows."

    def handle(self, *args, **options):
        folded = services.rank_buckets_compact()
        self.stdout.write(f"Folded {folded} rank histogram changes.")
