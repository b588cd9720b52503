"""manage.py storage_sweep [--delete] [--min-age-hours N]: find (and delete) photo files no row points to.

Orphans can appear when a deletion after a commit failed (storage down while a
volunteer deleted their account: the keys are logged and left) or when a
process died between writing files and committing the row. Uploads write
their files *before* the row commits, so files younger than --min-age-hours
(default 1) are never touched: they may belong to an upload in flight.

Without --delete it only reports. Safe to run at any time and to rerun.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from collector import storage
from collector.models import Photo

PREFIX = "photos"


def _walk(prefix: str):
    """Every file key under prefix, on any Django storage (local folders or S3 prefixes)."""
    dirs, files = default_storage.listdir(prefix)
    for name in files:
        yield f"{prefix}/{name}"
    for name in dirs:
        yield from _walk(f"{prefix}/{name}")


def _referenced(keys: list[str]) -> set[str]:
    found = set()
    for field in ("original_key", "training_key", "thumbnail_key"):
        found.update(Photo.objects.filter(**{f"{field}__in": keys}).values_list(field, flat=True))
    return found


class Command(BaseCommand):
    help = "Report (or with --delete remove) photo files in storage that no photo row refers to."

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="Delete the orphans (default: only list them)")
        parser.add_argument("--min-age-hours", type=float, default=1.0,
                            help="Leave files younger than this alone (uploads in flight); default 1")

    def handle(self, *args, delete: bool, min_age_hours: float, verbosity: int = 1, **options):
        if min_age_hours < 0:
            raise CommandError("--min-age-hours must not be negative")
        cutoff = timezone.now() - timedelta(hours=min_age_hours)
        try:
            keys = list(_walk(PREFIX)) if default_storage.exists(PREFIX) or storage.is_remote() else []
        except FileNotFoundError:
            keys = []
        except storage.STORAGE_ERRORS as exc:
            raise CommandError(f"Cannot list storage: {exc}") from None

        orphans, young, size = [], 0, 0
        batch = 500
        bar = tqdm(total=len(keys), unit="file", desc="Checking", file=getattr(self.stderr, "_out", sys.stderr),
                   disable=verbosity == 0 or not keys)
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            known = _referenced(chunk)
            for key in chunk:
                if key in known:
                    continue
                try:
                    modified = default_storage.get_modified_time(key)
                except FileNotFoundError:
                    continue  # gone meanwhile
                if modified > cutoff:
                    young += 1
                    continue
                orphans.append(key)
                size += default_storage.size(key)
            bar.update(len(chunk))
        bar.close()

        for key in orphans[:50] if verbosity < 2 else orphans:
            self.stdout.write(f"  orphan {key}")
        if len(orphans) > 50 and verbosity < 2:
            self.stdout.write(f"  ... and {len(orphans) - 50} more (-v 2 lists all)")
        summary = (f"{len(keys)} files checked: {len(orphans)} orphan(s), {size / 1e6:.1f} MB"
                   f"{f'; {young} unreferenced but younger than {min_age_hours:g} h (left alone)' if young else ''}.")
        if not delete:
            self.stdout.write(summary + (" Run with --delete to remove them." if orphans else ""))
            return
        # A row may have appeared since the check (a restore, a very slow upload): look once more.
        still = []
        for start in range(0, len(orphans), batch):
            chunk = orphans[start:start + batch]
            known = _referenced(chunk)
            still += [k for k in chunk if k not in known]
        failed = storage.delete_quietly(still)
        self.stdout.write(summary + f" Deleted {len(still) - len(failed)}.")
        if failed:
            raise CommandError(f"Could not delete {len(failed)} file(s) (storage errors, see the log); rerun later.")
