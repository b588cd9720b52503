"""Training's scheduled jobs (config.scheduler runs them): the nightly run, and starting runs staff asked for."""

from __future__ import annotations

from django.conf import settings

from config.scheduler import run_command


def scheduled_jobs() -> list[dict]:
    hour, minute = settings.TRAINING_NIGHTLY_AT
    remote = settings.TRAINING_WORKER == "remote"  # the job and the admin's button only queue; a trainworker trains
    jobs = [{"id": "training-nightly", "command": ["train", "--trigger", "scheduler", *(["--enqueue"] if remote else [])],
             "hour": hour, "minute": minute}]
    audit_hour, audit_minute = settings.LABEL_AUDIT_AT
    jobs += [
        # The server's own predictions: new photos for the stumped bonus (never the phone's claim), pending
        # photos for the review queue's guesses (docs/challenges.md, docs/review.md).
        {"id": "photos_predict", "command": ["photos_predict"], "hour": "*",
         "minute": f"*/{settings.PHOTOS_PREDICT_EVERY_MINUTES}"},
        # After the night's training: likely mislabelled approved photos go back to review.
        {"id": "label-audit", "command": ["label_audit", "--no-progress"], "hour": audit_hour, "minute": audit_minute},
    ]
    if not remote:  # remote: trainworkers take the requested runs
        jobs.append({"id": "training-requests", "every_seconds": settings.TRAINING_REQUEST_POLL_SECONDS,
                     "call": "training.jobs.training_requests_poll"})
    return jobs


def training_requests_poll() -> int | None:
    """Start the run an admin asked for, if one waits and none is running (TRAINING_WORKER=local only:
    with remote, a trainworker takes queued runs)."""
    from training import selectors

    if settings.TRAINING_WORKER != "local":
        return None
    if not selectors.training_run_queued_exists() or selectors.training_run_active() is not None:
        return None
    code, _ = run_command(["train", "--queued-only", "--trigger", "admin", "--no-progress"], label="training-request")
    return code
