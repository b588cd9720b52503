"""The newsletter's scheduled job (config.scheduler runs it)."""

from __future__ import annotations


def scheduled_jobs() -> list[dict]:
    # Every hour at :05: composes when a slot has passed, sends released editions, picks up due retries.
    return [{"id": "newsletter-send", "command": ["newsletter_send", "--no-progress"], "hour": "*", "minute": 5}]
