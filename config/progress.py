"""Progress for long work: a tqdm bar in a terminal, a plain line every few seconds elsewhere.

tqdm alone either redraws one line with carriage returns (unreadable in a log
file, journald or the scheduler's captured output) or, with ``disable=None``,
shows nothing at all when the output is not a terminal. ``progress_bar``
keeps the bar for people at a terminal and prints a full line at most every
``PROGRESS_LINE_SECONDS`` (and the final state) otherwise. A loop over nothing
(a total of 0) writes one plain line, "novelty: nothing to do", not tqdm's
empty state ("novelty: 0label [00:00, ?label/s]") in the scheduler's log.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

PROGRESS_LINE_SECONDS = 5.0


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Lines:
    """A file for tqdm that turns its redraws into whole lines, at most one per interval."""

    def __init__(self, stream, every: float):
        self.stream, self.every = stream, every
        self.last = float("-inf")
        self.force = True  # the first state is shown at once
        self.pending = ""
        self.shown = ""  # a state already written is not written again (an instant loop: one line)
        self.quiet = lambda: False  # true while nothing was counted in a loop over nothing (Progress sets it)

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if not line or line == self.shown or self.quiet():
            return
        now = time.monotonic()
        if self.force or now - self.last >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last, self.force, self.pending, self.shown = now, False, "", line
        else:
            self.pending = line

    def finish(self) -> None:
        if self.pending and self.pending != self.shown:
            self.stream.write(self.pending + "\n")
            self.stream.flush()
        self.pending = ""

    def flush(self) -> None:
        self.stream.flush()


class Progress(tqdm):
    def __init__(self, *args, file=None, disable: bool = False, line_every: float = PROGRESS_LINE_SECONDS, **kwargs):
        file = file if file is not None else sys.stderr
        self._lines = None if _isatty(file) else _Lines(file, line_every)
        if self._lines is not None:
            kwargs.update(ascii=True, ncols=kwargs.get("ncols", 100), dynamic_ncols=False)
            kwargs.setdefault("mininterval", min(line_every, 1.0))
            file = self._lines
        if self._lines is not None and _total(args, kwargs) == 0:
            self._lines.quiet = lambda: getattr(self, "n", 0) == 0 and not getattr(self, "total", 0)
        super().__init__(*args, file=file, disable=bool(disable), **kwargs)

    def close(self) -> None:
        if self.disable:
            return
        nothing = self._lines is not None and self._lines.quiet()
        super().close()
        if self._lines is not None:
            self._lines.finish()
            if nothing:
                self._lines.stream.write(f"{self.desc.rstrip(': ') or 'progress'}: nothing to do\n")
                self._lines.stream.flush()


def _total(args, kwargs) -> int | None:
    """The total tqdm will use: ``total=``, else the iterable's length when it has one."""
    if kwargs.get("total") is not None:
        return kwargs["total"]
    iterable = args[0] if args else kwargs.get("iterable")
    try:
        return len(iterable)
    except TypeError:
        return None


def progress_bar(*args, **kwargs) -> Progress:
    """``tqdm(...)``'s arguments; ``disable=True`` silences it, nothing else does."""
    return Progress(*args, **kwargs)
