"""Writes of the training app: dataset versions, runs (claim, progress, gate), publishing, service changes.

Order of a run (``training_run_execute``): freeze the dataset, decide whether
to skip, download the training derivatives, train and export through
``training.ml``, gate against the model in service, publish. Every decision
is appended to ``TrainingRun.decisions``. An admin may cancel a run
(``training_run_cancel``) until it reaches publishing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from collector import selectors as collector_selectors
from collector import storage
from config.errors import ApiError
from training import ml
from training.models import (
    DatasetVersion,
    FeatureCache,
    ModelFile,
    ModelVersion,
    RunOutcome,
    RunStatus,
    ServiceChange,
    TrainingRun,
    VersionStatus,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# Share of the overall percentage each phase takes; phases the ML side adds
# that are not listed keep the bar where it is.
PHASE_WEIGHTS = {
    "dataset": 2, "download": 5, "backbone": 2, "features": 29, "train_head": 20, "fine_tune": 15, "prune": 5,
    "export": 10, "evaluate": 7, "embed": 3, "gate": 3, "publish": 2,
}
_PHASE_START = {}
_acc = 0.0
for _name, _weight in PHASE_WEIGHTS.items():
    _PHASE_START[_name] = _acc
    _acc += _weight
_PHASE_TOTAL = _acc


class PublishError(Exception):
    pass


# --- dataset versions -------------------------------------------------------


def split_for(sha256: str) -> str:
    """train / val / test from a hash of the photo's bytes: the same photo always lands in the same split,
    whatever else arrives (duplicates of the same bytes share a split, so they never leak into the test set)."""
    bucket = int(hashlib.sha256(f"crowdlens-split:{sha256}".encode()).hexdigest()[:15], 16) / 16**15
    if bucket < settings.TRAINING_TEST_FRACTION:
        return "test"
    if bucket < settings.TRAINING_TEST_FRACTION + settings.TRAINING_VAL_FRACTION:
        return "val"
    return "train"


@dataclass
class FrozenDataset:
    version: DatasetVersion
    training_keys: dict[int, str]  # photo id -> storage key of the training derivative (not kept: may be deleted later)
    created: bool


def dataset_version_freeze(*, cutoff=None) -> FrozenDataset:
    """Freeze the approved photos up to ``cutoff`` (now) into a dataset version (shared when identical)."""
    cutoff = cutoff or timezone.now()
    minimum = settings.TRAINING_MIN_PHOTOS_PER_LABEL
    by_label: dict[str, list[dict]] = {}
    targets: dict[str, int] = {}
    training_keys: dict[int, str] = {}
    for photo in collector_selectors.photos_approved(up_to=cutoff).order_by("id"):
        slug = photo.label.slug
        targets[slug] = photo.label.effective_prototype_target
        by_label.setdefault(slug, []).append({"id": photo.pk, "sha256": photo.sha256, "label": slug,
                                              "split": split_for(photo.sha256)})
        training_keys[photo.pk] = photo.training_key

    labels, excluded, flagged, rows = [], {}, {}, []
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for slug in sorted(by_label):
        photos = by_label[slug]
        n = len(photos)
        if n < minimum:
            excluded[slug] = (f"only {n} approved photo{'s' if n != 1 else ''}; at least {minimum} are needed "
                              "(TRAINING_MIN_PHOTOS_PER_LABEL)")
            continue
        if not any(p["split"] == "train" for p in photos):
            excluded[slug] = f"none of its {n} approved photos fell in the training split"
            continue
        labels.append(slug)
        rows.extend(photos)
        for split in SPLITS:
            counts[split][slug] = sum(1 for p in photos if p["split"] == split)
        if n < targets[slug]:
            flagged[slug] = f"{n} approved photos, under the prototype target of {targets[slug]}"
    rows.sort(key=lambda r: r["id"])
    fingerprint = hashlib.sha256(json.dumps({"labels": labels, "photos": rows, "excluded": excluded, "flagged": flagged},
                                            sort_keys=True).encode()).hexdigest()
    version, created = DatasetVersion.objects.get_or_create(
        fingerprint=fingerprint,
        defaults={"cutoff": cutoff, "manifest": rows, "labels": labels, "excluded_labels": excluded,
                  "flagged_labels": flagged, "counts": counts, "photo_count": len(rows)},
    )
    kept = {r["id"] for r in rows}
    return FrozenDataset(version, {pid: key for pid, key in training_keys.items() if pid in kept}, created)


class DatasetUnavailable(Exception):
    pass


def dataset_version_reload(*, pk: int) -> FrozenDataset:
    """An earlier dataset version, to repeat a run on exactly its photos and splits.

    Refused when any of its photos is no longer approved (withdrawn, rejected since): those
    photos must not be trained on again, so the exact repeat is no longer possible."""
    version = DatasetVersion.objects.filter(pk=pk).first()
    if version is None:
        raise DatasetUnavailable(f"There is no dataset version {pk}.")
    ids = [row["id"] for row in version.manifest]
    live = {p.pk: p for p in collector_selectors.photos_approved().filter(pk__in=ids)}
    gone = [row["id"] for row in version.manifest
            if row["id"] not in live or live[row["id"]].label.slug != row["label"]]
    if gone:
        raise DatasetUnavailable(f"Dataset v{pk} cannot be repeated exactly: {len(gone)} of its {len(ids)} photos are "
                                 "no longer approved under the same label (withdrawn, rejected or relabelled).")
    return FrozenDataset(version, {pid: live[pid].training_key for pid in ids}, created=False)


# --- feature cache ------------------------------------------------------------


class DbFeatureStore:
    """training.ml.FeatureStore on the FeatureCache table."""

    chunk = 500  # SQLite's limit on query variables

    def get_many(self, keys: list[str], cache_id: str) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), self.chunk):
            rows = FeatureCache.objects.filter(cache_id=cache_id, sha256__in=unique[i:i + self.chunk])
            found.update({row.sha256: bytes(row.data) for row in rows.only("sha256", "data")})
        return found

    def put_many(self, items: dict[str, bytes], cache_id: str) -> None:
        rows = [FeatureCache(sha256=k, cache_id=cache_id, data=v) for k, v in items.items()]
        for i in range(0, len(rows), self.chunk):
            FeatureCache.objects.bulk_create(rows[i:i + self.chunk], ignore_conflicts=True)


def feature_cache_forget(*, sha256s: list[str]) -> int:
    """Drop cached features of photos that left (withdrawn), unless other live photos share the bytes."""
    still_used = set(collector_selectors.photos_approved().filter(sha256__in=sha256s).values_list("sha256", flat=True))
    gone = [s for s in sha256s if s not in still_used]
    if not gone:
        return 0
    deleted, _ = FeatureCache.objects.filter(sha256__in=gone).delete()
    return deleted


# --- hyper-parameters -----------------------------------------------------------


def hparams_from_settings() -> ml.HParams:
    backbone = ml.BackboneConfig(alpha=settings.TRAINING_ALPHA, input_size=settings.TRAINING_INPUT_SIZE,
                                 base_weights=settings.TRAINING_BASE_WEIGHTS)
    optional = {
        "fine_tune_min_per_class": settings.TRAINING_FINE_TUNE_MIN_PER_CLASS,
        "fine_tune_layers": settings.TRAINING_FINE_TUNE_LAYERS,
        "epochs_head": settings.TRAINING_EPOCHS_HEAD,
        "epochs_fine_tune": settings.TRAINING_EPOCHS_FINE_TUNE,
        "batch_size": settings.TRAINING_BATCH_SIZE,
        "learning_rate_head": settings.TRAINING_LEARNING_RATE_HEAD,
        "learning_rate_fine_tune": settings.TRAINING_LEARNING_RATE_FINE_TUNE,
        "augment_views": settings.TRAINING_AUGMENT_VIEWS,
        "early_stopping_patience": settings.TRAINING_EARLY_STOPPING_PATIENCE,
        "int8_calibration_samples": settings.TRAINING_INT8_CALIBRATION_SAMPLES,
        "mixup_alpha": settings.TRAINING_MIXUP_ALPHA,
        "augment_flip": settings.TRAINING_AUGMENT_FLIP,
        "threads": settings.TRAINING_TF_THREADS,
    }
    known = {f.name for f in dataclasses.fields(ml.HParams)}
    kwargs = {k: v for k, v in optional.items() if v is not None and k in known}
    return ml.HParams(backbone=backbone, augment=settings.TRAINING_AUGMENT, prune_sparsity=settings.TRAINING_PRUNE_SPARSITY,
                      seed=settings.TRAINING_SEED, variants=tuple(settings.TRAINING_VARIANTS), **kwargs)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


# --- runs: claim, heartbeat, stale ------------------------------------------------


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
            decisions=run.decisions + [_decision("stale", message, now)],
        )
        if changed:
            failed.append(run.pk)
            logger.warning("Training run #%s marked failed: %s", run.pk, message)
    model_versions_abandon_orphans()
    return failed


def training_run_request(*, user=None) -> tuple[TrainingRun, bool]:
    """An admin asks for a run: a queued row that the scheduler (or any `train`) picks up. One at a time."""
    with transaction.atomic():
        existing = TrainingRun.objects.filter(status=RunStatus.QUEUED).order_by("id").first()
        if existing is not None:
            return existing, False
        run = TrainingRun.objects.create(status=RunStatus.QUEUED, trigger="admin", force=True, requested_by=user)
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


def _decision(decision: str, detail: str, at=None) -> dict:
    return {"at": (at or timezone.now()).isoformat(), "decision": decision, "detail": detail}


@dataclass(frozen=True)
class CancelRequest:
    at: datetime
    by: str


def _cancel_request_of(run_id: int) -> CancelRequest | None:
    by = f"cancel_requested_by__{get_user_model().USERNAME_FIELD}"
    row = (TrainingRun.objects.filter(pk=run_id, cancel_requested_at__isnull=False)
           .values_list("cancel_requested_at", by).first())
    return None if row is None else CancelRequest(at=row[0], by=row[1] or "a deleted user")


def training_run_cancel(*, run: TrainingRun, by) -> tuple[TrainingRun, bool]:
    """Cancel a queued run at once, or ask a running one to stop; (the run as it now is, whether this call changed it).

    A running run notices the request at its next progress write or heartbeat, stops at its next
    ``should_stop()`` check and ends ``cancelled``. Conditional updates settle every race: with the
    scheduler claiming the queued run (``training_run_claim`` updates only a row still queued), with
    the run reaching its publishing step (``RunReporter.publish_begins``: after it a cancel is refused,
    as publishing completes or fails as a whole) and with the run finishing. Asking twice changes
    nothing. ApiError 409 when the run already ended or is publishing.
    """
    now = timezone.now()
    who = by.get_username() if by is not None else "an unknown user"
    detail = f"Cancelled by {who} before it started."
    if TrainingRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, active=None, finished_at=now, cancel_requested_at=now, cancel_requested_by=by,
            error=f"Cancelled by {who}.", log=f"{timezone.localtime(now):%H:%M:%S} [cancelled] {detail}",
            decisions=[_decision("cancelled", detail, now)]):
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
        raise ApiError(409, "run_publishing", f"Run #{run.pk} is publishing its model: publishing completes or fails as "
                                              "a whole, so it can no longer be cancelled.")
    raise ApiError(409, "run_finished", f"Run #{run.pk} has already ended ({run.get_status_display().lower()}); "
                                        "there is nothing to cancel.")


class _Heartbeat(threading.Thread):
    def __init__(self, run_id: int, interval: float):
        super().__init__(name=f"training-heartbeat-{run_id}", daemon=True)
        self.run_id, self.interval = run_id, interval
        self.stopping = threading.Event()
        self.lost = False
        self.cancel: CancelRequest | None = None

    def run(self):
        try:
            while not self.stopping.wait(self.interval):
                try:
                    self.beat()
                except Exception:  # a database hiccup must not kill the run; the next beat retries
                    logger.exception("Heartbeat of run #%s failed", self.run_id)
        finally:
            connection.close()

    def beat(self) -> None:
        """Refresh the heartbeat and look for a cancel request (for steps that report no progress for a while)."""
        if not training_run_heartbeat(run_id=self.run_id):
            self.lost = True
        if self.cancel is None:
            self.cancel = _cancel_request_of(self.run_id)


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
        self.heartbeat: _Heartbeat | None = None
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
            self.cancel = _cancel_request_of(self.run.pk)
        return self.cancel_request

    def publish_begins(self) -> bool:
        """The point of no return: True when the run may publish, after which a cancel is refused.

        One conditional update moves the run to the publish phase only while no cancel was asked for;
        ``training_run_cancel`` records a request only while the run is not in that phase: whichever
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
        self.run.decisions = [*self.run.decisions, _decision(decision, detail)]
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


def _finish(run: TrainingRun, reporter: RunReporter, *, status: str, error: str = "", outcome: str = "") -> TrainingRun:
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
              "dataset_version_id", "strategy", "hparams", "labels", "metrics", "history", "feature_stats", "gate",
              "model_version_id"]
    updates = {f: getattr(run, f) for f in fields}
    # Only the claim holder may finish the run; a run failed as stale meanwhile keeps that verdict.
    TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, active=True).update(active=None, **updates)
    run.refresh_from_db()
    return run


# --- the run ---------------------------------------------------------------------


def training_run_execute(*, run: TrainingRun, on_progress: Callable[[str, float], None] | None = None,
                         on_log: Callable[[str], None] | None = None,
                         stop_event: threading.Event | None = None, repeat_dataset: int | None = None) -> TrainingRun:
    """Do the claimed run to its end: succeeded (published or held back), skipped or failed.

    ``repeat_dataset``: train on exactly that dataset version again instead of freezing a new one."""
    reporter = RunReporter(run, on_progress=on_progress, on_log=on_log, stop_event=stop_event)
    reporter.heartbeat = _Heartbeat(run.pk, settings.TRAINING_HEARTBEAT_SECONDS)
    reporter.heartbeat.start()
    try:
        return _run_steps(run, reporter, repeat_dataset)
    except ml.Stopped as stopped:
        lost = reporter.lost_claim or reporter.heartbeat.lost
        if not lost and reporter.cancel_request is not None:
            cancel = reporter.cancel_request
            where = str(stopped) or f"stopped during {run.phase or 'the start'}"
            reporter.decide("cancelled", f"Cancelled by {cancel.by} (asked at {timezone.localtime(cancel.at):%H:%M:%S}); "
                                         f"{where}; nothing was published.")
            return _finish(run, reporter, status=RunStatus.CANCELLED, error=f"Cancelled by {cancel.by}.")
        why = "the run lost its claim (marked stale)" if lost else "asked to stop"
        reporter.log(f"Stopped: {why}.")
        return _finish(run, reporter, status=RunStatus.FAILED, error=f"Stopped: {why}.")
    except (ml.WeightsUnavailable, DatasetUnavailable) as exc:
        reporter.log(str(exc))
        return _finish(run, reporter, status=RunStatus.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("Training run #%s failed", run.pk)
        reporter.log(traceback.format_exc())
        return _finish(run, reporter, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    finally:
        reporter.heartbeat.stopping.set()


def _run_steps(run: TrainingRun, reporter: RunReporter, repeat_dataset: int | None = None) -> TrainingRun:
    hparams = hparams_from_settings()
    run.hparams = _jsonable(dataclasses.asdict(hparams))
    reporter.log(f"Run #{run.pk} ({run.trigger}{', forced' if run.force else ''}) started.")

    with reporter.timed("dataset"):
        frozen = dataset_version_freeze() if repeat_dataset is None else dataset_version_reload(pk=repeat_dataset)
    dataset = frozen.version
    run.dataset_version = dataset
    run.labels = dataset.labels
    reporter.decide("dataset", f"Dataset v{dataset.pk}: {dataset.photo_count} photos, {len(dataset.labels)} labels "
                               f"({'new' if frozen.created else 'same as an earlier version'}); split "
                               + ", ".join(f"{s} {sum(dataset.counts.get(s, {}).values())}" for s in SPLITS) + ".")
    for slug, why in dataset.excluded_labels.items():
        reporter.decide("label_excluded", f"{slug}: {why}")
    for slug, note in dataset.flagged_labels.items():
        reporter.decide("label_flagged", f"{slug}: {note}")
    if reporter.should_stop():
        raise ml.Stopped("stopped after freezing the dataset")

    if not run.force and repeat_dataset is None:
        last = (TrainingRun.objects.filter(status=RunStatus.SUCCEEDED).exclude(pk=run.pk)
                .select_related("dataset_version").order_by("-finished_at", "-id").first())
        if last is not None and last.dataset_version_id == dataset.pk and last.hparams == run.hparams:
            reporter.decide("skip", f"No approved photo changed since run #{last.pk} (dataset v{dataset.pk}); "
                                    "nothing to train. Use --force to train anyway.")
            return _finish(run, reporter, status=RunStatus.SKIPPED)
    if len(dataset.labels) < 2:
        reporter.decide("skip", f"Only {len(dataset.labels)} label(s) with at least "
                                f"{settings.TRAINING_MIN_PHOTOS_PER_LABEL} approved photos; a classifier needs two.")
        return _finish(run, reporter, status=RunStatus.SKIPPED)

    with tempfile.TemporaryDirectory(prefix=f"crowdlens-run{run.pk}-") as tmp:
        tmp_path = Path(tmp)
        with reporter.timed("download"):
            examples = _download_examples(dataset, frozen.training_keys, tmp_path / "photos", reporter)
        result = ml.train_and_export(
            train=examples["train"], val=examples["val"], test=examples["test"], labels=list(dataset.labels),
            hparams=hparams, feature_store=DbFeatureStore(), out_dir=tmp_path / "export",
            progress=reporter.progress, log=reporter.log, should_stop=reporter.should_stop,
        )
        run.strategy = result.strategy
        run.history = _jsonable(result.history)
        run.feature_stats = _jsonable(result.feature_stats)
        run.phase_seconds = {**run.phase_seconds, **{k: round(v, 3) for k, v in result.phase_seconds.items()}}
        test_ids = [row["id"] for row in dataset.manifest if row["split"] == "test"]
        run.metrics = {name: variant_metrics(vr, test_ids) for name, vr in result.variants.items()}
        reporter.decide("strategy", f"{result.strategy}: " + "; ".join(result.notes) if result.notes else result.strategy)
        for name, vr in result.variants.items():
            reporter.log(f"{name}: accuracy {vr.accuracy:.4f}, {vr.size_bytes} bytes, {vr.latency_ms:.2f} ms/image")
        if reporter.should_stop():
            raise ml.Stopped()
        if settings.TRAINING_EMBEDDINGS:
            with reporter.timed("embed"):
                _embed_photos(examples, hparams, reporter)

        with reporter.timed("gate"):
            passed = _gate(run, result, examples["test"], tmp_path / "in-service", reporter)
        if not passed:
            return _finish(run, reporter, status=RunStatus.SUCCEEDED, outcome=RunOutcome.HELD_BACK)
        if not reporter.publish_begins():
            raise ml.Stopped()
        # From here a cancel is refused, and model_version_publish checks no stop: it completes or fails as a whole.
        with reporter.timed("publish"):
            version = model_version_publish(run=run, result=result, dataset=dataset)
        run.model_version = version
        reporter.decide("published", f"Published v{version.version} and put it in service.")
    return _finish(run, reporter, status=RunStatus.SUCCEEDED, outcome=RunOutcome.PUBLISHED)


def _download_examples(dataset: DatasetVersion, keys: dict[int, str], folder: Path,
                       reporter: RunReporter) -> dict[str, list[ml.Example]]:
    folder.mkdir(parents=True, exist_ok=True)
    index = {slug: i for i, slug in enumerate(dataset.labels)}
    rows = dataset.manifest
    done = [0]
    lock = threading.Lock()

    def fetch(row: dict) -> Path:
        path = folder / f"{row['id']}.jpg"
        with storage.open_file(keys[row["id"]]) as handle:
            path.write_bytes(handle.read())
        with lock:
            done[0] += 1
            if done[0] % 50 == 0 or done[0] == len(rows):
                reporter.progress("download", done[0] / len(rows))
        return path

    with ThreadPoolExecutor(max_workers=8 if storage.is_remote() else 2) as pool:
        paths = list(pool.map(fetch, rows))
    out: dict[str, list[ml.Example]] = {s: [] for s in SPLITS}
    for row, path in zip(rows, paths):
        out[row["split"]].append(ml.Example(key=row["sha256"], path=path, label_index=index[row["label"]]))
    return out


def _embed_photos(examples: dict[str, list[ml.Example]], hparams: ml.HParams, reporter: RunReporter) -> None:
    """Pooled embeddings of every photo into the feature cache (only new ones are computed), for challenges."""
    every = [e for split in SPLITS for e in examples[split]]
    try:
        ml.embed(paths=[e.path for e in every], keys=[e.key for e in every], backbone=hparams.backbone,
                 feature_store=DbFeatureStore())
    except Exception as exc:  # novelty scores are a nicety; the model still ships
        reporter.log(f"Embeddings for challenges were not computed: {type(exc).__name__}: {exc}")


def variant_metrics(vr: ml.VariantResult, test_ids: list[int]) -> dict:
    return _jsonable({
        "accuracy": vr.accuracy, "size_bytes": vr.size_bytes, "sha256": vr.sha256, "latency_ms": vr.latency_ms,
        "per_class": vr.per_class, "confusion": vr.confusion, "test_examples": len(vr.predictions),
        # photo id -> predicted index: what the exported file answered, for audits and the end-to-end test.
        "predictions": {str(pid): int(p) for pid, p in zip(test_ids, vr.predictions)},
    })


# --- the release gate ---------------------------------------------------------------


@dataclass
class GateVerdict:
    passed: bool
    decisions: list[tuple[str, str]]


def gate_decide(*, candidate: dict[str, float], service: float | None, service_version: int | None) -> GateVerdict:
    """The release rules on accuracies (0..1); margins are in accuracy points (percent)."""
    variant = settings.TRAINING_GATE_VARIANT
    margin, max_drop = settings.TRAINING_GATE_MARGIN, settings.TRAINING_INT8_MAX_DROP
    decisions: list[tuple[str, str]] = []
    passed = True
    ours = candidate[variant]
    if service is None:
        decisions.append(("gate_no_model_in_service", f"No model in service: the candidate's {variant} accuracy "
                                                      f"{ours:.2%} is not compared."))
    elif (ours - service) * 100 >= -margin - 1e-9:
        decisions.append(("gate_accuracy_ok", f"{variant} accuracy {ours:.2%} vs v{service_version} in service "
                                              f"{service:.2%} on the same test split (margin {margin:g} points)."))
    else:
        passed = False
        decisions.append(("gate_accuracy_worse", f"Held back: {variant} accuracy {ours:.2%} is more than {margin:g} "
                                                 f"points below v{service_version} in service ({service:.2%}) on the "
                                                 "same test split (TRAINING_GATE_MARGIN)."))
    if "int8" in candidate and "float32" in candidate:
        drop = (candidate["float32"] - candidate["int8"]) * 100
        if drop <= max_drop + 1e-9:
            decisions.append(("gate_int8_ok", f"int8 {candidate['int8']:.2%} is within {max_drop:g} points of float32 "
                                              f"{candidate['float32']:.2%} (drop {drop:.2f})."))
        else:
            passed = False
            decisions.append(("gate_int8_drop", f"Held back: int8 {candidate['int8']:.2%} is {drop:.2f} points below "
                                                f"float32 {candidate['float32']:.2%}, more than {max_drop:g} "
                                                "(TRAINING_INT8_MAX_DROP)."))
    else:
        decisions.append(("gate_int8_not_checked", "int8 or float32 was not exported; the int8 rule does not apply."))
    return GateVerdict(passed, decisions)


def _gate(run: TrainingRun, result: ml.TrainResult, test: list[ml.Example], folder: Path, reporter: RunReporter) -> bool:
    candidate = {name: vr.accuracy for name, vr in result.variants.items()}
    current = ModelVersion.objects.filter(in_service=True, status=VersionStatus.PUBLISHED).first()
    service_acc, service_version, gate_info = None, None, {"candidate": candidate, "variant": settings.TRAINING_GATE_VARIANT,
                                                          "margin": settings.TRAINING_GATE_MARGIN,
                                                          "int8_max_drop": settings.TRAINING_INT8_MAX_DROP}
    if current is not None:
        file = (current.files.filter(variant=settings.TRAINING_GATE_VARIANT).first()
                or current.files.filter(variant="float32").first() or current.files.first())
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / f"v{current.version}-{file.variant}.tflite"
        with storage.open_file(file.model_key) as handle:
            local.write_bytes(handle.read())
        evaluation = ml.evaluate_tflite(path=local, examples=test, labels=list(current.labels),
                                        input_spec=ml.InputSpec(**file.input_spec))
        service_acc, service_version = evaluation.accuracy, current.version
        gate_info["service"] = {
            "version": current.version, "variant": file.variant, "accuracy": evaluation.accuracy,
            # The model in service on today's labels: challenges read this recall (labels it lacks count 0).
            "per_class": _jsonable(_per_class_on(evaluation, current.labels, run.labels)),
        }
        reporter.log(f"v{current.version} in service ({file.variant}) re-evaluated on the new test split: "
                     f"{evaluation.accuracy:.4f}")
    verdict = gate_decide(candidate=candidate, service=service_acc, service_version=service_version)
    gate_info["passed"] = verdict.passed
    run.gate = _jsonable(gate_info)
    for decision, detail in verdict.decisions:
        reporter.decide(decision, detail)
    if not verdict.passed:
        reporter.decide("held_back", "The candidate was not published; the model in service stays.")
    return verdict.passed


def _per_class_on(evaluation: ml.VariantResult, model_labels: list[str], run_labels: list[str]) -> dict:
    per_class = dict(evaluation.per_class)
    for slug in run_labels:  # a label the old model never learnt has recall 0 on today's split
        per_class.setdefault(slug, {"precision": 0.0, "recall": 0.0, "support": 0})
    return per_class


# --- publishing ------------------------------------------------------------------


def model_file_keys(version: int, variant: str) -> dict[str, str]:
    prefix = f"models/v{version}/{variant}"
    return {"model_key": f"{prefix}/model.tflite", "labels_key": f"{prefix}/labels.txt",
            "metadata_key": f"{prefix}/metadata.json"}


def _reserve_version(*, run: TrainingRun, result: ml.TrainResult, dataset: DatasetVersion) -> ModelVersion:
    metrics = {name: {k: v for k, v in m.items() if k != "predictions"} for name, m in run.metrics.items()}
    for attempt in range(5):
        try:
            with transaction.atomic():
                number = (ModelVersion.objects.aggregate(m=Max("version"))["m"] or 0) + 1
                return ModelVersion.objects.create(
                    version=number, status=VersionStatus.PENDING, run=run, dataset_version=dataset,
                    strategy=result.strategy, labels=list(result.labels), metrics=metrics,
                    min_app_version=settings.TRAINING_MIN_APP_VERSION,
                )
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def model_version_publish(*, run: TrainingRun, result: ml.TrainResult, dataset: DatasetVersion) -> ModelVersion:
    """Reserve a number, write every file under its immutable keys, check them, then publish in one commit.

    A crash before the last step leaves a *pending* version that no API
    shows; ``model_versions_abandon_orphans`` later marks it abandoned and
    removes its partial files. Its number is never reused.
    """
    version = _reserve_version(run=run, result=result, dataset=dataset)
    files: list[ModelFile] = []
    try:
        labels_txt = ("\n".join(result.labels) + "\n").encode()
        for name, vr in result.variants.items():
            keys = model_file_keys(version.version, name)
            data = Path(vr.path).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            spec = dataclasses.asdict(result.input_specs[name])
            metadata = {
                "version": version.version, "variant": name, "sha256": sha, "size": len(data),
                "labels": list(result.labels), "input": spec, "metrics": version.metrics.get(name, {}),
                "strategy": result.strategy, "dataset_version": dataset.pk, "created_at": version.created_at.isoformat(),
                "min_app_version": version.min_app_version,
            }
            for key, payload in ((keys["model_key"], data), (keys["labels_key"], labels_txt),
                                 (keys["metadata_key"], json.dumps(metadata, indent=2).encode())):
                _write_once(key, payload)
            files.append(ModelFile(model_version=version, variant=name, sha256=sha, size_bytes=len(data),
                                   input_spec=spec, **keys))
        _model_files_verify(files)
    except Exception:
        _model_version_abandon(version)
        raise
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != VersionStatus.PENDING:
            raise PublishError(f"v{locked.version} is {locked.status}, not pending; it was not published.")
        ModelFile.objects.bulk_create(files)
        previous = ModelVersion.objects.select_for_update().filter(in_service=True).first()
        ModelVersion.objects.filter(in_service=True).update(in_service=None)
        locked.status, locked.published_at, locked.in_service = VersionStatus.PUBLISHED, timezone.now(), True
        locked.save(update_fields=["status", "published_at", "in_service"])
        ServiceChange.objects.create(from_version=previous.version if previous else None, to_version=locked.version,
                                     reason="published")
    return locked


def _write_once(key: str, payload: bytes) -> None:
    """Published keys are immutable: refuse to write over anything already there."""
    if storage.exists(key):
        raise PublishError(f"{key} already exists in storage; refusing to overwrite it.")
    storage.save(key, payload)


def _model_files_verify(files: list[ModelFile]) -> None:
    from django.core.files.storage import default_storage

    for f in files:
        for key in (f.model_key, f.labels_key, f.metadata_key):
            if not storage.exists(key):
                raise PublishError(f"{key} is missing from storage after writing it.")
        if default_storage.size(f.model_key) != f.size_bytes:
            raise PublishError(f"{f.model_key} has the wrong size in storage.")


def _model_version_abandon(version: ModelVersion) -> None:
    if ModelVersion.objects.filter(pk=version.pk, status=VersionStatus.PENDING).update(status=VersionStatus.ABANDONED):
        keys = [k for variant in settings.TRAINING_VARIANT_NAMES for k in model_file_keys(version.version, variant).values()]
        storage.delete_quietly([k for k in keys if _exists_quietly(k)])


def _exists_quietly(key: str) -> bool:
    try:
        return storage.exists(key)
    except Exception:
        return False


def model_versions_abandon_orphans() -> int:
    """Pending versions whose run is no longer running were cut off mid-publish: abandon them."""
    orphans = ModelVersion.objects.filter(status=VersionStatus.PENDING).exclude(run__active=True)
    count = 0
    for version in orphans:
        _model_version_abandon(version)
        count += 1
    return count


def model_version_put_in_service(*, version: int, user=None) -> ModelVersion:
    """Rollback or forward: any published version can be the one phones get."""
    with transaction.atomic():
        target = ModelVersion.objects.select_for_update().filter(version=version).first()
        if target is None or target.status != VersionStatus.PUBLISHED:
            raise ApiError(404, "not_found", f"There is no published model version {version}.")
        current = ModelVersion.objects.select_for_update().filter(in_service=True).first()
        if current is not None and current.pk == target.pk:
            return target
        ModelVersion.objects.filter(in_service=True).update(in_service=None)
        target.in_service = True
        target.save(update_fields=["in_service"])
        reason = "rollback" if current is not None and target.version < current.version else "forward"
        ServiceChange.objects.create(from_version=current.version if current else None, to_version=target.version,
                                     reason=reason, changed_by=user)
    return target
