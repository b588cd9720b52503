"""What every long-running process shares: one way to stop on a signal, one beating thread, one heartbeat row.

- ``stop_on_signals()``: SIGTERM and SIGINT set an Event (and call ``on_stop``);
  the process finishes what it is doing and leaves. runscheduler, trainworker
  and newsletter_send all stop this way; the previous handlers come back after.
- ``Beat``: a daemon thread that calls a function every ``interval`` seconds.
  A beat that fails (the database restarting) is logged once per outage and
  its connection closed, so the next beat opens a fresh one: the process
  recovers by itself when the database returns.
- ``ProcessBeat``: this process's row in ProcessHeartbeat (admin: "Process
  heartbeats"), kept fresh by a Beat.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

logger = logging.getLogger("crowdlens.processes")

HEARTBEAT_KEEP_DAYS = 7  # rows of processes gone longer than this are dropped when a new process starts


@contextlib.contextmanager
def stop_on_signals(on_stop: Callable[[int], None] | None = None) -> Iterator[threading.Event]:
    """An Event that SIGTERM or SIGINT sets; ``on_stop(signum)`` runs first. Handlers restored on exit."""
    stop = threading.Event()

    def handler(signum, frame):
        if on_stop is not None:
            on_stop(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Beat(threading.Thread):
    """Calls ``fn()`` every ``interval`` seconds until ``stop()``; survives and recovers from database outages."""

    def __init__(self, fn: Callable[[], None], *, interval: float, name: str):
        super().__init__(name=name, daemon=True)
        self.fn, self.interval = fn, interval
        self.stopping = threading.Event()
        self.failing = False

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                self.beat_once()
        finally:
            connection.close()

    def beat_once(self) -> bool:
        """One beat; False when it failed (logged with its traceback at the first failure of an outage only)."""
        try:
            self.fn()
        except Exception:
            if not self.failing:
                logger.exception("%s failed; retrying every %g s", self.name, self.interval)
            self.failing = True
            connection.close()  # a dead connection is not reused: the next beat reconnects
            return False
        if self.failing:
            logger.info("%s recovered", self.name)
            self.failing = False
        return True

    def stop(self, timeout: float = 5) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=timeout)


class ProcessBeat:
    """This process's heartbeat row, refreshed every PROCESS_HEARTBEAT_SECONDS by a Beat."""

    def __init__(self, kind: str, *, devices: list[dict] | None = None, interval: float | None = None):
        from config.models import ProcessHeartbeat

        self._rows = ProcessHeartbeat.objects
        now = timezone.now()
        self._rows.filter(kind=kind, beat_at__lt=now - timedelta(days=HEARTBEAT_KEEP_DAYS)).delete()
        self.row = self._rows.create(kind=kind, host=socket.gethostname()[:200], pid=os.getpid(),
                                     started_at=now, beat_at=now, state="idle", devices=devices or [])
        self.state = "idle"
        self._beat = Beat(self.beat, interval=interval or settings.PROCESS_HEARTBEAT_SECONDS, name=f"{kind}-heartbeat")

    def start(self) -> ProcessBeat:
        self._beat.start()
        return self

    def set_state(self, state: str) -> None:
        self.state = state[:200]
        self._beat.beat_once()

    def beat(self) -> None:
        self._rows.filter(pk=self.row.pk).update(beat_at=timezone.now(), state=self.state)

    def stop(self) -> None:
        self._beat.stop()
        now = timezone.now()
        self._rows.filter(pk=self.row.pk).update(beat_at=now, stopped_at=now, state="stopped")
