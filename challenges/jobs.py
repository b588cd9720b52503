"""The challenges' scheduled jobs (config.scheduler runs them)."""

from __future__ import annotations

from django.conf import settings


def scheduled_jobs() -> list[dict]:
    hour, minute = settings.CHALLENGE_ROTATE_AT
    return [
        # run_at_start: a new installation (or one whose scheduler was down at
        # rotation time) opens today's challenge when the scheduler starts.
        {"id": "challenges_rotate", "command": ["challenges_rotate"], "run_at_start": True,
         "hour": hour, "minute": minute},
        # Also opens today's challenge when none is open (labels imported after the
        # rotation ran): run_at_start so a restarted scheduler asks at once.
        {"id": "challenges_compact", "command": ["challenges_compact"], "run_at_start": True,
         "hour": "*", "minute": f"*/{settings.CHALLENGE_COMPACT_EVERY_MINUTES}"},
    ]
