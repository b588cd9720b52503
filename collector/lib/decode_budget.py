"""How much memory the image decodes of one host may hold at once, shared by all its processes and threads.

A decode's memory follows its pixels, not its bytes: a 150 KB PNG or HEIC of 50 megapixels decodes to
hundreds of megabytes. Each decode first takes its estimated cost (MB) from the host's budget and gives it
back when the large image is gone; a decode that does not fit waits (up to ``wait_seconds``, then
``BudgetTimeout``) until others finish. A cost above the whole budget is cut to the budget, so such a decode
runs alone rather than never.

The budget is one lock file with one byte per megabyte, taken with Linux's open-file-description locks
(``F_OFD_SETLK``): held per open file, so threads of one process count apart as well as processes; and the
kernel drops them when the file is closed or its process dies (a worker killed mid-decode leaves nothing
held). One more byte past the budget is a turnstile: the one waiter holding it gathers its megabytes as
they come free, so a large decode is not starved by a stream of small ones. Where OFD locks do not exist
(not Linux), the budget is the process's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_OFD = hasattr(fcntl, "F_OFD_SETLK")
_POLL_SECONDS = 0.02


class BudgetTimeout(Exception):
    """The decode waited ``wait_seconds`` for room and got none: the host is busy with other large images."""


def _flock(lock_type: int, start: int, length: int) -> bytes:
    # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid (0 for OFD locks).
    return struct.pack("hhqqi4x", lock_type, os.SEEK_SET, start, length, 0)


def _try_lock(fd: int, start: int, length: int = 1) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK, start, length))
        return True
    except OSError:  # EAGAIN/EACCES: another open file holds (part of) it
        return False


def _unlock(fd: int, start: int, length: int = 1) -> None:
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_UNLCK, start, length))


class DecodeBudget:
    def __init__(self, path: str | Path, capacity_mb: int, *, wait_seconds: float = 30.0):
        self.path, self.capacity, self.wait_seconds = Path(path), max(1, int(capacity_mb)), wait_seconds
        self._local = threading.Condition()  # the fallback without OFD locks
        self._local_used = 0

    @contextlib.contextmanager
    def hold(self, cost_mb: int) -> Iterator[None]:
        """Hold ``cost_mb`` (at most the whole budget) of this host's decode memory while the block runs."""
        cost = min(max(1, int(cost_mb)), self.capacity)
        deadline = time.monotonic() + self.wait_seconds
        if not _OFD:
            with self._local_hold(cost, deadline):
                yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._take(fd, cost, deadline)
            yield
        finally:
            os.close(fd)  # every lock this open file holds goes with it

    def in_use_mb(self) -> int:
        """Megabytes held by decodes on this host now (for tests and the bench)."""
        if not _OFD:
            return self._local_used
        if not self.path.exists():
            return 0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            return sum(1 for unit in range(self.capacity) if not _try_lock(fd, unit))
        finally:
            os.close(fd)

    def _take(self, fd: int, cost: int, deadline: float) -> None:
        turnstile = self.capacity
        while not _try_lock(fd, turnstile):
            self._wait(deadline)
        try:
            held: set[int] = set()
            while True:
                for unit in range(self.capacity):
                    if unit not in held and _try_lock(fd, unit):
                        held.add(unit)
                        if len(held) == cost:
                            return
                self._wait(deadline)
        finally:
            _unlock(fd, turnstile)

    @staticmethod
    def _wait(deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise BudgetTimeout()
        time.sleep(_POLL_SECONDS)

    @contextlib.contextmanager
    def _local_hold(self, cost: int, deadline: float) -> Iterator[None]:
        with self._local:
            while self._local_used + cost > self.capacity:
                if not self._local.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise BudgetTimeout()
            self._local_used += cost
        try:
            yield
        finally:
            with self._local:
                self._local_used -= cost
                self._local.notify_all()


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()


def give_memory_back() -> None:
    """Return freed heap memory to the system after a large decode.

    glibc keeps freed memory for reuse: a large decode's buffers, freed in pieces below its mmap threshold
    (which grows after each large free), stay in the worker's heap, and eight workers that each once
    decoded a large image hold gigabytes for good. ``malloc_trim(0)`` hands back every free page of every
    arena; it takes a few milliseconds, so it runs after large decodes only.
    """
    if _TRIM is not None:
        _TRIM(0)
