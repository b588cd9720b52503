"""Progress of long commands: a bar at a terminal, whole lines every few seconds in a log."""

from __future__ import annotations

import io

from config.progress import progress_bar


class FakeClockLog(io.StringIO):
    """A log file (not a terminal)."""


def test_it_prints_whole_lines_and_the_final_state_when_not_a_terminal(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("config.progress.time.monotonic", lambda: now[0])
    log = FakeClockLog()
    bar = progress_bar(total=100, desc="Importing", unit="photo", file=log, line_every=5.0, mininterval=0)
    for _ in range(100):
        bar.update(1)
        now[0] += 0.2  # 20 s of work in all
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 3 <= len(lines) <= 7, lines  # one line every 5 s, not one per photo
    assert lines[0].startswith("Importing")
    assert "100/100" in lines[-1]


def test_it_shows_progress_even_where_tqdm_would_hide_it():
    log = FakeClockLog()
    bar = progress_bar(total=3, desc="run #1", file=log)
    bar.update(3)
    bar.close()
    assert "3/3" in log.getvalue()


def test_nothing_to_do_is_one_plain_line(monkeypatch):
    """The scheduler's log showed "novelty: 0label [00:00, ?label/s]" for a rotation with no label."""
    monkeypatch.setattr("config.progress.time.monotonic", lambda: 1000.0)
    log = FakeClockLog()
    for _ in progress_bar([], desc="novelty", unit="label", file=log):
        pass
    assert log.getvalue().splitlines() == ["novelty: nothing to do"]


def test_a_bar_that_starts_at_0_and_grows_shows_its_progress(monkeypatch):
    """storage_sweep starts at total=0 and adds to it as it lists the storage: that is not "nothing to do"."""
    monkeypatch.setattr("config.progress.time.monotonic", lambda: 1000.0)
    log = FakeClockLog()
    bar = progress_bar(total=0, desc="Checking", unit="file", file=log)
    bar.total += 2
    bar.update(2)
    bar.close()
    assert "2/2" in log.getvalue().splitlines()[-1]
    assert "nothing to do" not in log.getvalue()


def test_disable_silences_it():
    log = FakeClockLog()
    bar = progress_bar(total=3, file=log, disable=True)
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""


def test_a_terminal_gets_the_redrawn_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    bar = progress_bar(total=2, file=tty, mininterval=0)
    bar.update(1)
    bar.update(1)
    bar.close()
    assert "\r" in tty.getvalue()
