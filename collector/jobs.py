"""The collector's scheduled jobs (config.scheduler runs them)."""

from __future__ import annotations

from django.conf import settings


def scheduled_jobs() -> list[dict]:
    hour, minute = settings.STORAGE_SWEEP_AT
    # Report only unless told to delete, and then only files older than STORAGE_SWEEP_MIN_AGE_HOURS
    # (the command's own default: uploads in flight are younger).
    return [{"id": "storage-sweep", "command": ["storage_sweep", "--verbosity", "0",
                                                *(["--delete"] if settings.STORAGE_SWEEP_DELETE else [])],
             "hour": hour, "minute": minute}]
