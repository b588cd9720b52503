"""What every long-running process shares (config.processes): stopping on a signal, beating through outages."""

from __future__ import annotations

import logging
import os
import signal
import threading

from django.db import OperationalError

from config.processes import Beat, stop_on_signals


def test_sigterm_and_sigint_set_the_stop_event_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    with stop_on_signals(seen.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5) and seen == [signal.SIGTERM]
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C stops the same way, no KeyboardInterrupt
        assert stop.wait(5)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_beat_survives_an_outage_says_so_once_and_says_when_it_recovered(caplog):
    outcome = iter([OperationalError("server closed the connection"), OperationalError("still down"), None, None])
    beats = []
    four = threading.Event()

    def fn():
        beats.append(1)
        if len(beats) == 4:
            four.set()
        error = next(outcome)
        if error is not None:
            raise error

    beat = Beat(fn, interval=0.01, name="probe-heartbeat")
    with caplog.at_level(logging.INFO, logger="crowdlens.processes"):
        beat.start()
        assert four.wait(5)
        beat.stop()
    logged = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in logged if r.exc_info] == ["ERROR"]  # one traceback per outage, not one per beat
    assert any(r.getMessage().startswith("probe-heartbeat works again after") for r in logged)
    assert not beat.failing
