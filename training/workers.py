"""Training on its own host: the `trainworker` loop, and the heartbeat rows of long-running processes.

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
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from training.services import execute, runs
from training.services.reporter import RecoveringCalls, connection_drop
from training.models import ProcessHeartbeat, TrainingRun

logger = logging.getLogger("crowdlens.trainworker")

HEARTBEAT_KEEP_DAYS = 7  # rows of processes gone longer than this are dropped when a new process starts


class ProcessBeat:
    """This process's heartbeat row, refreshed by a daemon thread every PROCESS_HEARTBEAT_SECONDS."""

    def __init__(self, kind: str, *, devices: list[dict] | None = None, interval: float | None = None):
        now = timezone.now()
        ProcessHeartbeat.objects.filter(kind=kind, beat_at__lt=now - timedelta(days=HEARTBEAT_KEEP_DAYS)).delete()
        self.row = ProcessHeartbeat.objects.create(kind=kind, host=socket.gethostname()[:200], pid=os.getpid(),
                                                   started_at=now, beat_at=now, state="idle", devices=devices or [])
        self.state = "idle"
        self.interval = interval or settings.PROCESS_HEARTBEAT_SECONDS
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{kind}-heartbeat", daemon=True)

    def start(self) -> ProcessBeat:
        self._thread.start()
        return self

    def set_state(self, state: str) -> None:
        """Say what the process does now; with the database away, the heartbeat thread writes it once it is back."""
        self.state = state[:200]
        try:
            self.beat()
        except DatabaseError:
            logger.warning("Could not record the state %r now; the next heartbeat will", self.state)
            connection_drop()

    def beat(self) -> None:
        ProcessHeartbeat.objects.filter(pk=self.row.pk).update(beat_at=timezone.now(), state=self.state)

    def _loop(self) -> None:
        beats = RecoveringCalls(f"The heartbeat of {self.row}")  # a database hiccup must not end the process
        try:
            while not self._stopping.wait(self.interval):
                beats.call(self.beat)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        now = timezone.now()
        try:
            ProcessHeartbeat.objects.filter(pk=self.row.pk).update(beat_at=now, stopped_at=now, state="stopped")
        except DatabaseError:  # stopping while the database is away: the row goes stale, as a killed one does
            logger.warning("Could not mark %s stopped: the database did not answer", self.row)


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
