"""The platform's own scheduled jobs: pruning django-axes' sign-in records (config.lockout)."""

from __future__ import annotations

from django.conf import settings


def scheduled_jobs() -> list[dict]:
    # axes keeps a row per failed and per successful sign-in; failures must outlive the lock-out's
    # memory (the growing cool-off counts them), which LOGIN_LOG_KEEP_DAYS is checked to cover.
    age = str(settings.LOGIN_LOG_KEEP_DAYS)
    return [
        {"id": "login-failures-prune", "command": ["axes_reset_failure_logs", "--age", age], "hour": 4, "minute": 10},
        {"id": "login-successes-prune", "command": ["axes_reset_logs", "--age", age], "hour": 4, "minute": 15},
    ]
