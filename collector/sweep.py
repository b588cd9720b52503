"""The storage sweep: photo files in storage that no photo row refers to.

Orphans appear when a deletion after a commit failed (storage down while a
volunteer deleted their account: the keys are logged and left) or when a
process died between writing files and committing the row. Uploads write
their files *before* the row commits, so files younger than ``min_age_hours``
are never touched: they may belong to an upload in flight. Deleting looks
once more at the rows first (a restore or a very slow upload may have claimed
a file since the check).

Each sweep is recorded as a ``StorageSweep`` row, shown in the admin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

from django.core.files.storage import default_storage
from django.utils import timezone

from collector import storage
from collector.models import Photo, StorageSweep
from config.domain_errors import StorageUnavailable

PREFIX = "photos"
BATCH = 500
KEYS_KEPT = 200


def _walk(prefix: str) -> Iterator[str]:
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


def _unreferenced(keys: list[str]) -> list[str]:
    out = []
    for start in range(0, len(keys), BATCH):
        chunk = keys[start:start + BATCH]
        known = _referenced(chunk)
        out += [k for k in chunk if k not in known]
    return out


def storage_keys() -> list[str]:
    try:
        return list(_walk(PREFIX)) if default_storage.exists(PREFIX) or storage.is_remote() else []
    except FileNotFoundError:
        return []
    except storage.STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"Cannot list storage: {exc}") from exc


def storage_sweep(*, delete: bool, min_age_hours: float, listed: Callable[[int], None] = lambda n: None,
                  progress: Callable[[int], None] = lambda n: None) -> tuple[StorageSweep, list[str], list[str]]:
    """Find (and with ``delete`` remove) orphan files older than ``min_age_hours``.

    Returns the recorded sweep, every orphan key and the keys that could not be
    deleted (storage errors; a rerun picks them up). ``listed`` hears how many
    files there are, ``progress`` how many more were checked. A storage that
    cannot be listed raises StorageUnavailable, recorded on the sweep too.
    """
    sweep = StorageSweep.objects.create(deleting=delete, min_age_hours=min_age_hours)
    try:
        keys = storage_keys()
        listed(len(keys))
        cutoff = timezone.now() - timedelta(hours=min_age_hours)
        orphans, young, size = [], 0, 0
        for start in range(0, len(keys), BATCH):
            chunk = keys[start:start + BATCH]
            for key in _unreferenced(chunk):
                try:
                    modified = default_storage.get_modified_time(key)
                except FileNotFoundError:
                    continue  # gone meanwhile
                if modified > cutoff:
                    young += 1
                    continue
                orphans.append(key)
                size += default_storage.size(key)
            progress(len(chunk))
        failed: list[str] = []
        deleted = 0
        if delete:
            still = _unreferenced(orphans)
            failed = storage.delete_quietly(still)
            deleted = len(still) - len(failed)
    except Exception as exc:
        sweep.error = str(exc) or exc.__class__.__name__
        sweep.finished_at = timezone.now()
        sweep.save(update_fields=["error", "finished_at"])
        raise
    sweep.files_checked, sweep.orphans, sweep.orphan_bytes = len(keys), len(orphans), size
    sweep.young_left_alone, sweep.deleted, sweep.orphan_keys = young, deleted, orphans[:KEYS_KEPT]
    if failed:
        sweep.error = f"Could not delete {len(failed)} file(s) (storage errors, see the log); rerun later."
    sweep.finished_at = timezone.now()
    sweep.save()
    return sweep, orphans, failed
