"""A run's progress as its process sees it: the heartbeat thread, the reporter handed to training.ml, the finish.

The reporter writes progress, log and decisions to the run's row (throttled) only
while the run still holds its claim, and is where a running run notices a cancel.
"""

from __future__ import annotations

import logging
import threading
import time

from django.utils import timezone

from config.processes import Beat

from training import ml
from training.models import RunStatus, TrainingRun
from training.services.runs import CancelRequest, cancel_request_of, decision_entry, training_run_heartbeat

logger = logging.getLogger("training.services")

# Share of the overall percentage each phase takes; phases the ML side adds
# that are not listed keep the bar where it is.
PHASE_WEIGHTS = {
    "dataset": 2, "download": 5, "backbone": 2, "features": 29, "train_head": 20, "fine_tune": 15, "prune": 5,
    "model_features": 3, "export": 10, "evaluate": 7, "embed": 3, "gate": 3, "publish": 2,
}
_PHASE_START = {}
_acc = 0.0
for _name, _weight in PHASE_WEIGHTS.items():
    _PHASE_START[_name] = _acc
    _acc += _weight
_PHASE_TOTAL = _acc


class Heartbeat(Beat):
    """Beats every ``interval`` seconds while a run works, so a run that reports no progress for a while stays alive."""

    def __init__(self, run_id: int, interval: float):
        super().__init__(self.beat, interval=interval, name=f"training-heartbeat-{run_id}",
                         what=f"The heartbeat of run #{run_id}")
        self.run_id = run_id
        self.lost = False
        self.cancel: CancelRequest | None = None

    def beat(self) -> None:
        """Refresh the heartbeat and look for a cancel request (for steps that report no progress for a while)."""
        if not training_run_heartbeat(run_id=self.run_id):
            self.lost = True
        if self.cancel is None:
            self.cancel = cancel_request_of(self.run_id)


class RunReporter:
    """Progress, log and phase times of one run, written to its row (throttled) and echoed to the caller."""

    def __init__(self, run: TrainingRun, *, on_progress=None, on_log=None, stop_event: threading.Event | None = None,
                 min_interval: float = 1.0):
        self.run = run
        self.on_progress, self.on_log = on_progress, on_log
        self.stop_event = stop_event or threading.Event()
        self.min_interval = min_interval
        self._last_write = 0.0
        self._lines: list[str] = [run.log] if run.log else []
        self.phase_seconds: dict[str, float] = {}
        self.lost_claim = False
        self.heartbeat: Heartbeat | None = None
        self.cancel: CancelRequest | None = None
        # The download's worker threads report progress too; only the run's own thread (one connection)
        # looks for a cancel request.
        self._thread = threading.current_thread()

    # The callbacks handed to training.ml ------------------------------------
    def progress(self, phase: str, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if phase in PHASE_WEIGHTS:
            percent = 100.0 * (_PHASE_START[phase] + PHASE_WEIGHTS[phase] * fraction) / _PHASE_TOTAL
        else:
            percent = self.run.percent
        changed_phase = phase != self.run.phase
        self.run.phase, self.run.percent = phase, max(self.run.percent, round(percent, 1))
        if self.on_progress:
            self.on_progress(phase, self.run.percent)
        self._flush(force=changed_phase)

    def log(self, message: str) -> None:
        line = f"{timezone.now():%H:%M:%S} {message}"
        self._lines.append(line)
        if self.on_log:
            self.on_log(line)
        self._flush()

    def should_stop(self) -> bool:
        return (self.stop_event.is_set() or self.lost_claim or bool(self.heartbeat and self.heartbeat.lost)
                or self.cancel_request is not None)

    @property
    def cancel_request(self) -> CancelRequest | None:
        return self.cancel or (self.heartbeat.cancel if self.heartbeat else None)

    def look_for_cancel(self) -> CancelRequest | None:
        if self.cancel_request is None and threading.current_thread() is self._thread:
            self.cancel = cancel_request_of(self.run.pk)
        return self.cancel_request

    def publish_begins(self) -> bool:
        """The point of no return: True when the run may publish, after which a cancel is refused.

        One conditional update moves the run to the publish phase only while no cancel was asked for;
        ``runs.training_run_cancel`` records a request only while the run is not in that phase: whichever
        commits first wins, so a cancelled run never publishes and a publishing run is never cancelled.
        """
        if self.look_for_cancel() is not None or self.should_stop():
            return False
        if TrainingRun.objects.filter(pk=self.run.pk, status=RunStatus.RUNNING, active=True,
                                      cancel_requested_at=None).update(phase="publish", heartbeat_at=timezone.now()):
            self.run.phase = "publish"
            return True
        if self.look_for_cancel() is None:
            self.lost_claim = True
        return False

    # ------------------------------------------------------------------------
    def decide(self, decision: str, detail: str) -> None:
        self.run.decisions = [*self.run.decisions, decision_entry(decision, detail)]
        self.log(f"[{decision}] {detail}")
        self._flush(force=True)

    def timed(self, phase: str):
        reporter = self

        class _Timer:
            def __enter__(self):
                reporter.progress(phase, 0.0)
                if reporter.should_stop():  # a step never starts once a stop or cancel was asked for
                    raise ml.Stopped(f"stopped before {phase}")
                self.start = time.monotonic()

            def __exit__(self, *exc):
                reporter.phase_seconds[phase] = round(reporter.phase_seconds.get(phase, 0.0) + time.monotonic() - self.start, 3)
                if exc[0] is None:
                    reporter.progress(phase, 1.0)

        return _Timer()

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        self.run.log = "\n".join(self._lines)[-200_000:]
        fields = {"phase": self.run.phase, "percent": self.run.percent, "log": self.run.log,
                  "decisions": self.run.decisions, "heartbeat_at": timezone.now()}
        if not TrainingRun.objects.filter(pk=self.run.pk, status=RunStatus.RUNNING, active=True).update(**fields):
            self.lost_claim = True
        else:
            self.look_for_cancel()


def run_finish(run: TrainingRun, reporter: RunReporter, *, status: str, error: str = "", outcome: str = "") -> TrainingRun:
    cancel = reporter.look_for_cancel()
    if cancel is not None and status != RunStatus.CANCELLED and not reporter.lost_claim:
        reporter.decide("cancel_too_late", f"{cancel.by} asked to cancel at {timezone.localtime(cancel.at):%H:%M:%S} "
                                           f"as the run was ending; it ended {status}.")
    reporter.run.log = "\n".join(reporter._lines)[-200_000:]
    run.status, run.error, run.outcome = status, error, outcome
    run.finished_at = timezone.now()
    run.phase_seconds = {**run.phase_seconds, **reporter.phase_seconds}
    if status == RunStatus.SUCCEEDED:
        run.percent = 100.0
    fields = ["status", "error", "outcome", "finished_at", "phase_seconds", "percent", "log", "decisions", "phase",
              "dataset_version_id", "strategy", "hparams", "labels", "metrics", "history", "feature_stats", "gate", "estimate",
              "model_version_id", "model_features"]
    updates = {f: getattr(run, f) for f in fields}
    # Only the claim holder may finish the run; a run failed as stale meanwhile keeps that verdict.
    TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, active=True).update(active=None, **updates)
    run.refresh_from_db()
    return run

