"""Fold the rank histogram's appended changes into its buckets, and open today's challenge if none is.

Run every CHALLENGE_COMPACT_EVERY_MINUTES by the scheduler (and when it starts).
Ranks are exact whether or not it runs; it only bounds how many change rows a
read sums. The challenge check makes labels imported after the day's rotation
(README's first steps) get a challenge within minutes, not after the next
midnight. Safe to run concurrently and to kill at any point.
"""

from django.core.management.base import BaseCommand

from challenges import services


class Command(BaseCommand):
    help = "Fold rank histogram changes into RankBucket rows; open today's challenge if none is open."

    def handle(self, *args, **options):
        opened = services.challenge_open_if_none()
        if opened is not None:
            self.stdout.write(f"No challenge was open: opened {opened.pk} for {opened.date}: {opened.title} "
                              f"(label {opened.label.slug}).")
        folded = services.rank_buckets_compact()
        self.stdout.write(f"Folded {folded} rank histogram changes.")
