"""What every long-running process shares: one way to stop on a signal, one beating thread, one heartbeat row.

- ``stop_on_signals()``: SIGTERM and SIGINT set an Event (and call ``on_stop``);
  the process finishes what it is doing and leaves. runscheduler, trainworker
  and newsletter_send all stop this way; the previous handlers come back after.
- ``RecoveringCalls``: a database call a thread makes again and again, framed
  as Django frames a request (a broken or expired connection is dropped, the
  next call reconnects); an outage is logged once when it starts and once when
  it ends. The trainworker's poll for queued runs uses it.
- ``Beat``: a daemon thread that makes such a call every ``interval`` seconds:
  the process recovers by itself when the database returns.
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
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
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


class RecoveringCalls:
    """Calls a long-running thread makes to the database again and again, recovering when it comes back.

    Django gives a request a fresh connection (or checks its persistent one) before and after it; a
    thread that beats for days gets neither, and once the database restarts its connection is dead for
    good (every later call fails). So each call is framed as a request is (``connection_refresh``:
    a broken or expired connection is dropped, the next query opens a new one), and an outage is logged
    once with its traceback, then once when it is over, not at every call in between.
    """

    def __init__(self, what: str, errors: tuple[type[BaseException], ...] = (Exception,)):
        self.what, self.errors = what, errors
        self.failing_since: float | None = None
        self.failures = 0

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def call(self, function: Callable[[], None]) -> bool:
        """True when the call went through; False when it failed with one of ``errors`` (the next one retries)."""
        try:
            connection_refresh()
            function()
        except self.errors as exc:
            self.failures += 1
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                logger.exception("%s failed; retrying until the database answers", self.what)
            else:
                logger.debug("%s failed again: %r", self.what, exc)
            connection_drop()
            return False
        else:
            if self.failing_since is not None:
                logger.warning("%s works again after %.0f s (%d calls failed)", self.what,
                               time.monotonic() - self.failing_since, self.failures)
                self.failing_since, self.failures = None, 0
            return True
        finally:
            try:
                connection_refresh()
            except Exception:
                connection_drop()


def connection_refresh() -> None:
    """What Django does around a request: drop this thread's connection if it broke or outlived
    DATABASE_CONN_MAX_AGE. Never under a caller's transaction (a test's, or a service's atomic block)."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def connection_drop() -> None:
    """Forget this thread's connection whatever state it is in; the next query connects anew."""
    try:
        connection.close()
    except Exception:  # closing a connection the server already dropped may fail too: it is gone either way
        connection.connection = None


class Beat(threading.Thread):
    """Calls ``fn()`` every ``interval`` seconds until ``stop()``; survives and recovers from database outages."""

    def __init__(self, fn: Callable[[], None], *, interval: float, name: str, what: str | None = None):
        super().__init__(name=name, daemon=True)
        self.fn, self.interval = fn, interval
        self.stopping = threading.Event()
        self.calls = RecoveringCalls(what or name)  # what the log calls it: "The heartbeat of scheduler on host-1"

    @property
    def failing(self) -> bool:
        return self.calls.failing

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                self.beat_once()
        finally:
            connection_drop()

    def beat_once(self) -> bool:
        """One beat; False when it failed (logged with its traceback at the first failure of an outage only)."""
        return self.calls.call(self.fn)

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
        self._beat = Beat(self.beat, interval=interval or settings.PROCESS_HEARTBEAT_SECONDS, name=f"{kind}-heartbeat",
                          what=f"The heartbeat of {self.row}")

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
        try:
            self._rows.filter(pk=self.row.pk).update(beat_at=now, stopped_at=now, state="stopped")
        except DatabaseError:  # stopping while the database is away: the row goes stale, as a killed one does
            logger.warning("Could not mark %s stopped: the database did not answer", self.row)
            connection_drop()
