"""Runs as rows: request, claim, heartbeat, cancel, and failing runs whose process died.

Two processes never hold a run at once: the claim is one conditional write (the
partial unique index on ``TrainingRun.active``); every later write of a run is
conditional on it still holding that claim.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.domain_errors import Conflict
from training.models import RunStatus, TrainingRun
from training.services.publishing import model_versions_abandon_orphans

logger = logging.getLogger("training.services")


def training_runs_fail_stale(*, now=None) -> list[int]:
    """Mark active runs whose heartbeat is older than TRAINING_STALE_AFTER failed (their process died)."""
    now = now or timezone.now()
    threshold = now - timedelta(seconds=settings.TRAINING_STALE_AFTER)
    failed = []
    for run in TrainingRun.objects.filter(active=True, heartbeat_at__lt=threshold):
        message = (f"Stale: no heartbeat since {run.heartbeat_at:%Y-%m-%d %H:%M:%S %Z} "
                   f"(TRAINING_STALE_AFTER={settings.TRAINING_STALE_AFTER}s); the process running it died or hangs.")
        changed = TrainingRun.objects.filter(pk=run.pk, active=True, heartbeat_at__lt=threshold).update(
            status=RunStatus.FAILED, active=None, finished_at=now, error=message,
            decisions=run.decisions + [decision_entry("stale", message, now)],
        )
        if changed:
            failed.append(run.pk)
            logger.warning("Training run #%s marked failed: %s", run.pk, message)
    model_versions_abandon_orphans()
    return failed


def training_run_request(*, user=None, trigger: str = "admin", force: bool = True) -> tuple[TrainingRun, bool]:
    """Queue a run (an admin's button; the nightly job when TRAINING_WORKER=remote): a queued row that the
    scheduler's `train --queued-only` or a `trainworker` picks up. One waits at a time: asking again returns it."""
    with transaction.atomic():
        existing = TrainingRun.objects.filter(status=RunStatus.QUEUED).order_by("id").first()
        if existing is not None:
            return existing, False
        run = TrainingRun.objects.create(status=RunStatus.QUEUED, trigger=trigger, force=force, requested_by=user)
    return run, True


def training_run_claim(*, trigger: str = "manual", force: bool = False, queued_only: bool = False) -> TrainingRun | None:
    """Take the one active-run claim, or return None when another run holds it.

    A queued request (from the admin) is claimed first. Stale runs are failed
    before trying, so a run killed mid-way never blocks the next night.
    """
    training_runs_fail_stale()
    now = timezone.now()
    claim = {"status": RunStatus.RUNNING, "active": True, "started_at": now, "heartbeat_at": now,
             "host": socket.gethostname()[:200], "pid": os.getpid()}
    try:
        with transaction.atomic():
            queued = TrainingRun.objects.filter(status=RunStatus.QUEUED).order_by("id").first()
            if queued is not None and TrainingRun.objects.filter(pk=queued.pk, status=RunStatus.QUEUED).update(**claim):
                return TrainingRun.objects.get(pk=queued.pk)
            if queued_only:
                return None
            return TrainingRun.objects.create(trigger=trigger, force=force, **claim)
    except IntegrityError:
        return None


def training_run_heartbeat(*, run_id: int) -> bool:
    """Refresh the heartbeat; False when the run lost its claim (marked stale or failed by someone else)."""
    return bool(TrainingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, active=True)
                .update(heartbeat_at=timezone.now()))


def decision_entry(decision: str, detail: str, at=None) -> dict:
    return {"at": (at or timezone.now()).isoformat(), "decision": decision, "detail": detail}


@dataclass(frozen=True)
class CancelRequest:
    at: datetime
    by: str


def cancel_request_of(run_id: int) -> CancelRequest | None:
    by = f"cancel_requested_by__{get_user_model().USERNAME_FIELD}"
    row = (TrainingRun.objects.filter(pk=run_id, cancel_requested_at__isnull=False)
           .values_list("cancel_requested_at", by).first())
    return None if row is None else CancelRequest(at=row[0], by=row[1] or "a deleted user")


def training_run_cancel(*, run: TrainingRun, by) -> tuple[TrainingRun, bool]:
    """Cancel a queued run at once, or ask a running one to stop; (the run as it now is, whether this call changed it).

    A running run notices the request at its next progress write or heartbeat, stops at its next
    ``should_stop()`` check and ends ``cancelled``. Conditional updates settle every race: with the
    scheduler claiming the queued run (``training_run_claim`` updates only a row still queued), with
    the run reaching its publishing step (``reporter.RunReporter.publish_begins``: after it a cancel is refused,
    as publishing completes or fails as a whole) and with the run finishing. Asking twice changes
    nothing. Conflict (run_finished, run_publishing) when the run already ended or is publishing.
    """
    now = timezone.now()
    who = by.get_username() if by is not None else "an unknown user"
    detail = f"Cancelled by {who} before it started."
    if TrainingRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, active=None, finished_at=now, cancel_requested_at=now, cancel_requested_by=by,
            error=f"Cancelled by {who}.", log=f"{timezone.localtime(now):%H:%M:%S} [cancelled] {detail}",
            decisions=[decision_entry("cancelled", detail, now)]):
        logger.info("Training run #%s cancelled by %s before it started", run.pk, who)
        run.refresh_from_db()
        return run, True
    asked = (TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, active=True, cancel_requested_at=None)
             .exclude(phase="publish").update(cancel_requested_at=now, cancel_requested_by=by))
    run.refresh_from_db()
    if asked:
        logger.info("Cancel of training run #%s requested by %s", run.pk, who)
        return run, True
    if run.status == RunStatus.RUNNING and run.cancel_requested_at is not None:
        return run, False
    if run.status == RunStatus.RUNNING:
        raise Conflict(f"Run #{run.pk} is publishing its model: publishing completes or fails as a whole, so it can "
                       "no longer be cancelled.", code="run_publishing")
    raise Conflict(f"Run #{run.pk} has already ended ({run.get_status_display().lower()}); there is nothing to cancel.",
                   code="run_finished")

