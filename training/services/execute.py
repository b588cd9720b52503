"""A claimed run from start to end (``training_run_execute``).

Order: freeze the dataset, decide whether to skip, download the training
derivatives, train and export through ``training.ml``, gate against the model in
service, publish. Every decision is appended to ``TrainingRun.decisions``. An
admin may cancel a run (``runs.training_run_cancel``) until it reaches publishing.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from collector import storage
from training import ml
from training.feature_store import DbFeatureStore
from training.hparams import hparams_as_recorded, hparams_from_settings, jsonable
from training.models import DatasetVersion, RunOutcome, RunStatus, TrainingRun
from training.services.datasets import SPLITS, DatasetUnavailable, dataset_version_freeze, dataset_version_reload
from training.services.gate import training_run_gate
from training.services.publishing import model_version_identical_in_service, model_version_publish
from training.services.reporter import Heartbeat, RunReporter, run_finish

logger = logging.getLogger("training.services")


def training_run_execute(*, run: TrainingRun, on_progress: Callable[[str, float], None] | None = None,
                         on_log: Callable[[str], None] | None = None,
                         stop_event: threading.Event | None = None, repeat_dataset: int | None = None) -> TrainingRun:
    """Do the claimed run to its end: succeeded (published or held back), skipped or failed.

    ``repeat_dataset``: train on exactly that dataset version again instead of freezing a new one."""
    reporter = RunReporter(run, on_progress=on_progress, on_log=on_log, stop_event=stop_event)
    reporter.heartbeat = Heartbeat(run.pk, settings.TRAINING_HEARTBEAT_SECONDS)
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
            return run_finish(run, reporter, status=RunStatus.CANCELLED, error=f"Cancelled by {cancel.by}.")
        why = "the run lost its claim (marked stale)" if lost else "asked to stop"
        reporter.log(f"Stopped: {why}.")
        return run_finish(run, reporter, status=RunStatus.FAILED, error=f"Stopped: {why}.")
    except (ml.WeightsUnavailable, DatasetUnavailable) as exc:
        reporter.log(str(exc))
        return run_finish(run, reporter, status=RunStatus.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("Training run #%s failed", run.pk)
        reporter.log(traceback.format_exc())
        return run_finish(run, reporter, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    finally:
        reporter.heartbeat.stopping.set()


def _run_steps(run: TrainingRun, reporter: RunReporter, repeat_dataset: int | None = None) -> TrainingRun:
    hparams = hparams_from_settings()
    run.hparams = hparams_as_recorded(hparams)
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
            return run_finish(run, reporter, status=RunStatus.SKIPPED)
    if len(dataset.labels) < 2:
        reporter.decide("skip", f"Only {len(dataset.labels)} label(s) with at least "
                                f"{settings.TRAINING_MIN_PHOTOS_PER_LABEL} approved photos; a classifier needs two.")
        return run_finish(run, reporter, status=RunStatus.SKIPPED)

    with tempfile.TemporaryDirectory(prefix=f"crowdlens-run{run.pk}-") as tmp:
        tmp_path = Path(tmp)
        with reporter.timed("download"):
            examples = _download_examples(dataset, frozen.training_keys, tmp_path / "photos", reporter)
        result = ml.train_and_export(
            train=examples["train"], val=examples["val"], test=examples["test"], labels=list(dataset.labels),
            hparams=hparams, feature_store=DbFeatureStore(), out_dir=tmp_path / "export",
            progress=reporter.progress, log=reporter.log, should_stop=reporter.should_stop,
            # The files' TFLite metadata names the run: the version number is given only at publishing.
            model_info=ml.ModelInfo(version=f"run {run.pk}"),
            model_features=True,  # the label audit's features (training/services/label_audit.py)
        )
        if result.model_features:
            _record_model_features(run, result.model_features, reporter)
        for name, why in result.failed_variants.items():
            # Only this variant is missing: the others are gated and published; phones asking for it
            # keep getting the last version that has it.
            reporter.decide("variant_failed", f"No {name} file in this run: {why}")
        run.strategy = result.strategy
        run.history = jsonable(result.history)
        run.feature_stats = jsonable(result.feature_stats)
        run.phase_seconds = {**run.phase_seconds, **{k: round(v, 3) for k, v in result.phase_seconds.items()}}
        test_ids = [row["id"] for row in dataset.manifest if row["split"] == "test"]
        run.estimate = run_estimate(result)
        run.metrics = {name: {**variant_metrics(vr, test_ids), **run.estimate["variants"].get(name, {})}
                       for name, vr in result.variants.items()}
        reporter.decide("strategy", f"{result.strategy}: " + "; ".join(result.notes) if result.notes else result.strategy)
        reporter.decide("estimate", estimate_sentence(run.estimate))
        reporter.decide("default_variant", f"Default variant {run.estimate['default_variant']}: "
                                           f"{run.estimate['default_variant_why']}")
        for name, vr in result.variants.items():
            reporter.log(f"{name}: accuracy {vr.accuracy:.4f}, {vr.size_bytes} bytes, {vr.latency_ms:.2f} ms/image")
        if reporter.should_stop():
            raise ml.Stopped()
        if settings.TRAINING_EMBEDDINGS:
            with reporter.timed("embed"):
                _embed_photos(examples, hparams, reporter)

        identical = model_version_identical_in_service(result=result)
        if identical is not None:
            run.model_version = identical
            reporter.decide("identical", f"Identical to v{identical.version}: every exported model computes exactly "
                                         f"what the one in service does (only the metadata naming the run "
                                         "differs), so no new version was published (phones would download "
                                         "the same model under a new number).")
            return run_finish(run, reporter, status=RunStatus.SUCCEEDED, outcome=RunOutcome.IDENTICAL)
        with reporter.timed("gate"):
            passed = training_run_gate(run=run, result=result, test=examples["test"], folder=tmp_path / "in-service",
                                       reporter=reporter)
        if not passed:
            return run_finish(run, reporter, status=RunStatus.SUCCEEDED, outcome=RunOutcome.HELD_BACK)
        if not reporter.publish_begins():
            raise ml.Stopped()
        # From here a cancel is refused, and model_version_publish checks no stop: it completes or fails as a whole.
        with reporter.timed("publish"):
            version = model_version_publish(run=run, result=result, dataset=dataset)
        run.model_version = version
        reporter.decide("published", f"Published v{version.version} and put it in service.")
    return run_finish(run, reporter, status=RunStatus.SUCCEEDED, outcome=RunOutcome.PUBLISHED)


def _record_model_features(run: TrainingRun, cache_id: str, reporter: RunReporter) -> None:
    """Name the features of this run's network on the run at once (the audit reads the latest run's), then drop
    older runs' (each night's are of a new network: at 100k photos they are 250 MB a night)."""
    from training.services.feature_cache import feature_cache_forget_older_model_features

    run.model_features = cache_id
    TrainingRun.objects.filter(pk=run.pk).update(model_features=cache_id)
    dropped = feature_cache_forget_older_model_features(keep=cache_id)
    if dropped:
        reporter.log(f"Dropped {dropped} cached feature row(s) of earlier runs' networks.")


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
        computed, stored = ml.embed(paths=[e.path for e in every], keys=[e.key for e in every],
                                    backbone=hparams.backbone, feature_store=DbFeatureStore(),
                                    progress=lambda fraction: reporter.progress("embed", fraction))
        reporter.log(f"Embeddings for challenges: {computed} computed, {stored} already stored.")
    except Exception as exc:  # novelty scores are a nicety; the model still ships
        reporter.log(f"Embeddings for challenges were not computed: {type(exc).__name__}: {exc}")


def run_estimate(result: ml.TrainResult) -> dict:
    """What the run reports: the accuracy with its 95 % interval and photos, per variant too, how the strategy
    was chosen, and the default variant chosen by evidence (training/ml/fit.py)."""
    from training.ml import fit

    variants = fit.variant_estimates(estimate=result.estimate, evidence=result.evidence,
                                     test_accuracy={name: vr.accuracy for name, vr in result.variants.items()},
                                     test_photos=len(next(iter(result.variants.values())).predictions)
                                     if result.variants else 0)
    default, why, _ = fit.variant_choice(correct=result.evidence,
                                         sizes={name: vr.size_bytes for name, vr in result.variants.items()},
                                         max_drop_points=settings.TRAINING_INT8_MAX_DROP)
    return jsonable({**result.estimate, "variants": variants, "choice": result.choice,
                     "largest_class_share": result.largest_class_share, "default_variant": default,
                     "default_variant_why": why, "compared_photos": len(result.evidence_keys)})


def estimate_sentence(estimate: dict) -> str:
    """"float32 61.4 % (95 % interval 53.5-68.8 %, 5-fold cross-validation over all 153 photos); why"."""
    if not estimate.get("photos"):
        return "No photo measured the model: its accuracy is unknown."
    how = (f"{estimate.get('folds')}-fold cross-validation over all {estimate['photos']} photos"
           + (f", repeated on {estimate['repeats']} fold draws" if (estimate.get("repeats") or 0) > 1 else "")
           if estimate.get("method") == "cross_validation" else f"{estimate['photos']} test photos")
    return (f"Accuracy {estimate['accuracy'] * 100:.1f} % (95 % interval {estimate['low'] * 100:.1f}-"
            f"{estimate['high'] * 100:.1f} %, {how}). {estimate.get('why', '')}.").replace("..", ".")


def variant_metrics(vr: ml.VariantResult, test_ids: list[int]) -> dict:
    return jsonable({
        "accuracy": vr.accuracy, "size_bytes": vr.size_bytes, "sha256": vr.sha256, "latency_ms": vr.latency_ms,
        "per_class": vr.per_class, "confusion": vr.confusion, "test_examples": len(vr.predictions),
        # photo id -> predicted index: what the exported file answered, for audits and the end-to-end test.
        "predictions": {str(pid): int(p) for pid, p in zip(test_ids, vr.predictions)},
    })

