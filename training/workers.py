"""Training on its own host: the `trainworker` loop (its heartbeat row is config.processes.ProcessBeat).

With TRAINING_WORKER=remote the scheduler and the admin only queue runs
(``training.services.runs.training_run_request``); a `manage.py trainworker` on a GPU host
takes them. It claims through ``runs.training_run_claim(queued_only=True)``:
a conditional update of the queued row, and the partial unique constraint on
``TrainingRun.active``, so two workers (or a worker and a `train` by hand)
never take the same run. It needs no disk shared with any other host: photos
come from storage, features from the database, models go to storage.

A worker killed mid-run stops beating the run's heartbeat; the stale rule
(``runs.training_runs_fail_stale``, TRAINING_STALE_AFTER) ends that run as
failed on any later claim, and the next night's run trains again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError

from config.processes import ProcessBeat, RecoveringCalls
from training.models import TrainingRun
from training.services import execute, runs

logger = logging.getLogger("crowdlens.trainworker")

def tensorflow_devices() -> list[dict]:
    """The devices TensorFlow sees, GPUs set to grow their memory (a GPU host may serve other jobs too).

    TensorFlow places the training on the first GPU by itself when there is one; this only reports it."""
    from training.ml.model import tf_setup

    tf = tf_setup(settings.TRAINING_TF_THREADS or None)
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    return [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]


def trainworker_loop(*, stop: threading.Event, beat: ProcessBeat, once: bool = False,
                     poll_seconds: float | None = None, on_log: Callable[[str], None] | None = None) -> list[TrainingRun]:
    """Claim queued runs and do them until ``stop`` is set (SIGTERM), or after one claim attempt with ``once``.

    A stop asked for during a run ends that run at its next check (failed, "asked to stop") and then the loop."""
    poll = settings.TRAINING_WORKER_POLL_SECONDS if poll_seconds is None else poll_seconds
    done: list[TrainingRun] = []
    # The database restarting must not end the worker: it looks again after the poll.
    claims = RecoveringCalls("Looking for a queued run", errors=(DatabaseError,))
    while not stop.is_set():
        run = None

        def claim():
            nonlocal run
            run = runs.training_run_claim(queued_only=True)

        claims.call(claim)
        if run is not None:
            logger.info("Claimed run #%s (%s)", run.pk, run.trigger)
            beat.set_state(f"training run #{run.pk}")
            try:
                run = execute.training_run_execute(run=run, on_log=on_log, stop_event=stop)
            finally:
                beat.set_state("idle")
            logger.info("Run #%s ended %s%s", run.pk, run.status, f": {run.error}" if run.error else "")
            done.append(run)
        if once:
            break
        if run is None:
            stop.wait(poll)
    return done
