"""Open today's challenge (choosing its label unless staff planned it) and award novelty bonuses.

It also takes back any point still held by photos of bootstrap accounts (photos_import's: data, not
fame), so an installation upgraded with such points loses them from the boards on the next run.

Run daily by the scheduler at CHALLENGE_ROTATE_AT; safe to run by hand, twice,
or in two processes at once: the challenge's unique date decides who creates
it, and each photo's novelty row is created once.
"""

from __future__ import annotations



from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from challenges import services


class Command(BaseCommand):
    help = "Open the current day's challenge and award novelty bonuses for newly approved photos."

    def add_arguments(self, parser):
        parser.add_argument("--now", help="Pretend it is this ISO time (for catching up or testing).")
        parser.add_argument("--skip-novelty", action="store_true", help="Only open the challenge.")
        parser.add_argument("--recompute", action="store_true",
                            help="Also rebuild every leaderboard score from the ledger.")

    def handle(self, *args, now=None, skip_novelty=False, recompute=False, **options):
        when = timezone.now()
        if now:
            parsed = parse_datetime(now)
            if parsed is None:
                raise CommandError(f"--now must be an ISO date-time, got {now!r}")
            when = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
        challenge = services.challenge_open_for_today(now=when)
        if challenge is None:
            self.stdout.write("No active label: no challenge opened.")
        else:
            self.stdout.write(
                f"Challenge {challenge.pk} for {challenge.date}: {challenge.title} "
                f"(label {challenge.label.slug}; {challenge.selection_note or 'planned by staff'})"
            )
        if not skip_novelty:
            result = services.novelty_award(now=when, progress=True)
            self.stdout.write(
                f"Novelty: {result.labels_scored} labels, {result.photos_scored} photos scored, "
                f"{result.photos_awarded} earned a bonus."
            )
        taken_back = services.bootstrap_points_take_back(now=when)
        if taken_back:
            self.stdout.write(f"Bootstrap accounts (photos_import): {taken_back} ledger rows took back their points.")
        if recompute:
            rows = services.scores_recompute(progress=True)
            self.stdout.write(f"Scores rebuilt from the ledger: {rows} rows.")
        else:
            self.stdout.write(f"Rank histogram: folded {services.rank_buckets_compact()} changes.")



