"""manage.py storage_sweep [--delete] [--min-age-hours N]: find (and delete) photo files no row points to.

Orphans can appear when a deletion after a commit failed (storage down while a
volunteer deleted their account: the keys are logged and left) or when a
process died between writing files and committing the row. Uploads write
their files *before* the row commits, so files younger than --min-age-hours
(default 1) are never touched: they may belong to an upload in flight.

Without --delete it only reports. Safe to run at any time and to rerun; the
scheduler runs it nightly (report only unless STORAGE_SWEEP_DELETE=true) and
every sweep is recorded for the admin (collector.sweep).
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from collector.sweep import storage_sweep
from config.domain_errors import StorageUnavailable
from config.progress import progress_bar


class Command(BaseCommand):
    help = "Report (or with --delete remove) photo files in storage that no photo row refers to."

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="Delete the orphans (default: only list them)")
        parser.add_argument("--min-age-hours", type=float, default=settings.STORAGE_SWEEP_MIN_AGE_HOURS,
                            help="Leave files younger than this alone (uploads in flight); "
                                 f"default STORAGE_SWEEP_MIN_AGE_HOURS ({settings.STORAGE_SWEEP_MIN_AGE_HOURS:g})")

    def handle(self, *args, delete: bool, min_age_hours: float, verbosity: int = 1, **options):
        if min_age_hours < 0:
            raise CommandError("--min-age-hours must not be negative")
        bar = progress_bar(total=0, unit="file", desc="Checking", file=getattr(self.stderr, "_out", sys.stderr),
                   disable=verbosity == 0)

        def listed(count: int) -> None:
            bar.total = count
            bar.refresh()

        try:
            sweep, orphans, failed = storage_sweep(delete=delete, min_age_hours=min_age_hours, listed=listed,
                                                   progress=bar.update)
        except StorageUnavailable as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        for key in orphans[:50] if verbosity < 2 else orphans:
            self.stdout.write(f"  orphan {key}")
        if len(orphans) > 50 and verbosity < 2:
            self.stdout.write(f"  ... and {len(orphans) - 50} more (-v 2 lists all)")
        young = sweep.young_left_alone
        summary = (f"{sweep.files_checked} files checked: {sweep.orphans} orphan(s), {sweep.orphan_bytes / 1e6:.1f} MB"
                   f"{f'; {young} unreferenced but younger than {min_age_hours:g} h (left alone)' if young else ''}.")
        if not delete:
            self.stdout.write(summary + (" Run with --delete to remove them." if orphans else ""))
            return
        self.stdout.write(summary + f" Deleted {sweep.deleted}.")
        if failed:
            raise CommandError(sweep.error)
