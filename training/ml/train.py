"""The one entry point: `train_and_export(train, val, test, labels, hparams, ...)`.

Phases: backbone (load weights), features (cached), train_head, fine_tune (when the data allows),
prune (optional), export (every variant written), evaluate (every written file in LiteRT).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from . import calibration, data, export, fine_tune, fit, tflite_metadata
from .features import cached_features, model_features as _model_features
from .quiet import libraries_quiet
from .model import POOLED, Head, Pooling, bottom_model, build_backbone, cut_layer_name, set_top_trainable, tf_setup
from .types import COREML, VARIANTS, Example, FeatureStore, HParams, ModelInfo, Stopped, TrainResult


def choose_strategy(counts: Counter, labels: list[str], hparams: HParams, *, test_photos: int | None = None) -> str:
    """Seed slides 9-12: a small dataset similar to ImageNet -> a classifier on CNN features;
    a large one -> fine-tune. "Small" is the smallest class below `fine_tune_min_per_class`, or a test split
    under `cv_below_test_photos`: then the accuracy is cross-validated over every photo, which only the head
    (seconds per fold on cached features) affords, and a fine-tuned top could not be shown to be better."""
    smallest = min(counts.get(i, 0) for i in range(len(labels)))
    if test_photos is not None and test_photos < hparams.cv_below_test_photos:
        return "head_only"
    return "fine_tune" if hparams.fine_tune_layers > 0 and smallest >= hparams.fine_tune_min_per_class else "head_only"


def _validate(train, val, test, labels, hparams):
    if not labels:
        raise ValueError("no labels")
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be unique")
    if not train:
        raise ValueError("no training examples")
    for split in (train, val, test):
        for example in split:
            if not 0 <= example.label_index < len(labels):
                raise ValueError(f"example {example.key} has label index {example.label_index} outside 0..{len(labels) - 1}")
    unknown = set(hparams.variants) - set(VARIANTS) - {COREML}
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}")


def train_and_export(
    *,
    train: list[Example],
    val: list[Example],
    test: list[Example],
    labels: list[str],
    hparams: HParams,
    feature_store: FeatureStore,
    out_dir: Path,
    progress: Callable[[str, float], None] = lambda phase, fraction: None,
    log: Callable[[str], None] = print,
    should_stop: Callable[[], bool] = lambda: False,
    model_info: ModelInfo = ModelInfo(),
    model_features: bool = False,
) -> TrainResult:
    """``model_features``: also store the pooled features of the trained network for every photo given (the
    nightly label audit's; features.model_features), named in ``TrainResult.model_features``."""
    _validate(train, val, test, labels, hparams)
    out_dir = Path(out_dir)
    tf = tf_setup(hparams.threads or None)
    keras = __import__("tf_keras")
    seed = hparams.seed

    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}
    notes: list[str] = []
    clock, cpu_clock = time.perf_counter(), time.process_time()

    def phase_done(name: str) -> None:
        nonlocal clock, cpu_clock
        now, cpu_now = time.perf_counter(), time.process_time()
        phases[name] = round(phases.get(name, 0.0) + now - clock, 3)
        cpu[name] = round(cpu.get(name, 0.0) + cpu_now - cpu_clock, 3)
        clock, cpu_clock = now, cpu_now
        if should_stop():
            raise Stopped(f"stopped after {name}")

    n = len(labels)
    size = hparams.backbone.input_size
    every = [*train, *val, *test]
    counts = Counter(e.label_index for e in every)
    largest_share = max(counts.values()) / len(every)
    cross_validate = len(test) < hparams.cv_below_test_photos
    strategy = choose_strategy(counts, labels, hparams, test_photos=len(test))
    smallest = min(counts.get(i, 0) for i in range(n))
    if cross_validate:
        how = (f"{len(test)} test photos are fewer than {hparams.cv_below_test_photos}: accuracy is estimated by "
               f"{hparams.cv_folds}-fold cross-validation over all {len(every)} photos, and the model trains on all "
               "of them")
    else:
        how = f"{len(test)} test photos measure the accuracy; the model trains on the other {len(train) + len(val)}"
    why = (f"{strategy}: smallest class has {smallest} photos (fine-tune from {hparams.fine_tune_min_per_class} and "
           f"{hparams.cv_below_test_photos} test photos); {how}")
    log(f"strategy {why}")

    progress("backbone", 0.0)
    base = build_backbone(hparams.backbone)  # raises WeightsUnavailable
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)
    cut = cut_layer_name(base, hparams.fine_tune_layers) if strategy == "fine_tune" else POOLED
    set_top_trainable(base, cut, False)
    phase_done("backbone")

    if strategy == "head_only":
        fitted = _train_head_by_cv(base=base, head_examples=every if cross_validate else [*train, *val], hparams=hparams,
                                   feature_store=feature_store, out_dir=out_dir, progress=progress, log=log,
                                   should_stop=should_stop, n=n, phase_done=phase_done)
        head, stats, history, choice = fitted["head"], fitted["stats"], {}, fitted["choice"]
        out_of_fold = fitted["out_of_fold"] if cross_validate else {}
        estimate = fitted["estimate"] if cross_validate else None
        cut = POOLED
        strategy = choice["features"]
        why = f"{strategy} (chosen by cross-validation: {choice['features_why']}); " + why.split(": ", 1)[1]
    else:
        head, stats, history, choice, out_of_fold, estimate = *fine_tune.train_fine_tune(
            base=base, cut=cut, train=train, val=val, n=n, hparams=hparams, feature_store=feature_store,
            out_dir=out_dir, progress=progress, log=log, should_stop=should_stop, phase_done=phase_done,
            notes=notes), {}, None
    choice = {"strategy": strategy, "why": why, **choice}

    features_id = ""
    if model_features:
        # What the night's classifier reads, for every photo: the label audit ranks label errors on these and
        # the frozen backbone's together (docs/review.md), better than on either alone (bench/README.md).
        progress("model_features", 0.0)
        features_id, computed = _model_features(base=base, fine_tuned=strategy == "fine_tune", keys=[e.key for e in every],
                                                paths=[e.path for e in every], backbone=hparams.backbone,
                                                feature_store=feature_store,
                                                progress=lambda f: progress("model_features", f), should_stop=should_stop)
        log(f"model features for the label audit: {computed} computed, {len(every) - computed} already stored")
        phase_done("model_features")

    # --- export every variant, then evaluate every written file -----------------------------
    with libraries_quiet():
        return _export_and_evaluate(**locals())


def _export_and_evaluate(*, train, val, test, labels, hparams, out_dir, progress, log, should_stop, model_info, phases,
                         cpu, notes, phase_done, n, size, every, counts, largest_share, cross_validate, how, base, head,
                         stats, history, choice, out_of_fold, estimate, strategy, features_id, **_) -> TrainResult:
    calibrations = calibration.calibration_draws(train, hparams)
    tflite_variants = [v for v in hparams.variants if v != COREML]
    exports = len(hparams.variants)
    paths = {}
    for i, variant in enumerate(tflite_variants):
        progress("export", i / exports)
        if variant == "int8" and len(calibrations) > 1:
            flat = calibration.int8_closest(base, head, calibrations, train=train, val=val, hparams=hparams,
                                            labels=labels, model_info=model_info, log=log)
        else:
            flat = export.convert(base, head, variant=variant, size=size,
                                  calibration_pixels=calibrations[0] if calibrations else None,
                                  labels=list(labels), info=model_info)
        paths[variant] = export.write(flat, out_dir, variant)
        if should_stop():
            raise Stopped("stopped during export")
    coreml_result, failed = None, {}
    if COREML in hparams.variants:
        from . import coreml

        progress("export", len(tflite_variants) / exports)
        try:
            coreml_result = coreml.export(base, head, labels=list(labels), size=size, out_dir=out_dir, info=model_info)
            log(f"coreml: {coreml_result.size_bytes} bytes (not evaluated: Core ML runs only on Apple systems; "
                "converted by coremltools 9.0, which names TensorFlow 2.21 untested)")
        except coreml.CoreMLExportFailed as exc:
            failed[COREML] = str(exc)
            log(f"coreml: {exc}")
        if should_stop():
            raise Stopped("stopped during export")
    progress("export", 1.0)
    phase_done("export")

    specs = {v: export.input_spec_for(v, size) for v in tflite_variants}
    results = {}
    # The default variant is chosen on every photo the files can be compared on without training on the
    # comparison: the validation and test photos, or, after cross-validation, every photo (see fit.variant_choice).
    held = test_set(test)
    extra = [e for e in (every if cross_validate else val) if id(e) not in held]
    evidence: dict[str, list[bool]] = {}
    for i, variant in enumerate(tflite_variants):
        # The metadata is read back from the file that ships and checked against what the manifest will say.
        tflite_metadata.check(paths[variant].read_bytes(), labels=labels, input_spec=specs[variant], info=model_info)
        progress("evaluate", i / len(tflite_variants))
        results[variant] = export.evaluate_tflite(path=paths[variant], examples=test, labels=labels,
                                                  input_spec=specs[variant], variant=variant, should_stop=should_stop)
        more = (export.evaluate_tflite(path=paths[variant], examples=extra, labels=labels, input_spec=specs[variant],
                                       variant=variant, should_stop=should_stop).predictions if extra else [])
        evidence[variant] = [p == e.label_index for p, e in zip([*results[variant].predictions, *more], [*test, *extra])]
        log(f"{variant}: test accuracy {results[variant].accuracy:.3f}, {results[variant].size_bytes} bytes, "
            f"{results[variant].latency_ms:.2f} ms")
    progress("evaluate", 1.0)
    phase_done("evaluate")
    if estimate is None:
        reference = results.get("float32") or next(iter(results.values()), None)
        right = round(reference.accuracy * len(test)) if reference is not None else 0
        estimate = fit.Estimate.of(method="test_split", why="", correct=right, photos=len(test))
    estimate.why = how
    log(f"estimated accuracy {estimate.sentence()}")
    if not test:
        notes.append("no test photos: accuracies are 0 and mean nothing")
    small = [labels[i] for i in range(n) if counts.get(i, 0) < 30]
    if small:
        notes.append("under 30 photos (prototype target): " + ", ".join(small))
    notes.append("hparams " + repr(asdict(hparams)))
    if failed:
        notes.append("not exported: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return TrainResult(strategy=strategy, labels=list(labels), variants=results, input_specs=specs, history=history,
                       phase_seconds=phases, feature_stats=stats, notes=notes, phase_cpu_seconds=cpu,
                       coreml=coreml_result, failed_variants=failed, estimate=estimate.as_dict(), choice=choice,
                       largest_class_share=largest_share, evidence=evidence,
                       evidence_keys=[e.key for e in [*test, *extra]], out_of_fold=out_of_fold,
                       model_features=features_id)


def test_set(test: list[Example]) -> set[int]:
    return {id(e) for e in test}


HEAD_CANDIDATES = {"head_only": "the last activation's pooled features",
                   "several_layers": "the pooled features of several layers"}


def _train_head_by_cv(*, base, head_examples, hparams, feature_store, out_dir, progress, log, should_stop, n,
                      phase_done) -> dict:
    """The logistic head on pooled features (clean view + cached augmented views of every photo given). Which
    features (the last activation's, or several layers': model.Pooling) and its L2 strength are chosen together
    by k-fold cross-validation (training/ml/fit.py); the chosen head is written into the Dense layer that ships,
    and the exported graph computes the features it reads."""
    from . import fit

    augmented = max(0, hparams.augment_views) if hparams.augment else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    pooling = Pooling.of(hparams)
    keys, paths = [e.key for e in head_examples], [e.path for e in head_examples]
    common = dict(base=base, backbone=hparams.backbone, cut=pooling, hparams=hparams, feature_store=feature_store,
                  should_stop=should_stop, bottom=bottom_model(base, pooling), scratch=out_dir)
    share = 1 / (1 + augmented)
    # With the plain pooling, the clean view's cache row is the challenges' embedding of the photo (same identity).
    clean_f = cached_features(keys=keys, paths=paths, augmented=0, progress=lambda f: progress("features", f * share),
                              **common)
    views_f = (cached_features(keys=keys, paths=paths, augmented=augmented,
                               progress=lambda f: progress("features", share + f * (1 - share)), **common)
               if augmented else None)
    every = np.arange(len(head_examples))
    clean = clean_f.features.read(every).reshape(len(every), -1)
    views = views_f.features.read(every).reshape(len(every), augmented, -1) if views_f else None
    computed = clean_f.computed + (views_f.computed if views_f else 0)
    reused = clean_f.reused + (views_f.reused if views_f else 0)
    for f in (clean_f, views_f):
        if f is not None:
            f.features.close()
    log(f"features {pooling}: {computed} computed, {reused} reused, clean view + {augmented} augmented views "
        "per photo")
    phase_done("features")

    y = np.array([e.label_index for e in head_examples], np.int64)
    progress("train_head", 0.0)
    last = int(base.output.shape[-1])
    candidates = {"head_only": slice(0, last)}
    if pooling.layers:
        candidates["several_layers"] = slice(None)
    choice = fit.choose_head(clean=clean, views=views, y=y, n_classes=n, seed=hparams.seed, folds=hparams.cv_folds,
                             candidates=candidates, repeats=hparams.cv_repeats, should_stop=should_stop)
    kernel, bias = fit.fit_head(clean=clean, views=views, y=y, n_classes=n, c=choice.c, seed=hparams.seed,
                                columns=candidates[choice.candidate])
    chosen = Pooling(layers=pooling.layers if choice.candidate == "several_layers" else (), scales=pooling.scales)
    head = Head(n, dropout=hparams.dropout, weight_decay=hparams.weight_decay, seed=hparams.seed, pooling=chosen)
    head.set_weights(kernel, bias)
    best = {name: min(losses.values()) for name, losses in choice.log_loss.items()}
    features_why = "; ".join(
        f"{name} ({HEAD_CANDIDATES[name]}): best held-out log loss {best[name]:.3f}, accuracy "
        f"{max(choice.scores[name].values()):.3f}" for name in candidates)
    log(f"train_head: logistic head on {len(y)} photos reading {choice.candidate} ({chosen}), L2 C={choice.c:g}, "
        f"chosen by {choice.folds}-fold cross-validation: {features_why}")
    progress("train_head", 1.0)
    phase_done("train_head")
    estimate = fit.Estimate.of_cross_validation(why="", correct=choice.correct, photos=len(y), folds=choice.folds,
                                                fold_accuracies=choice.fold_accuracies, repeats=choice.repeats)
    return {"head": head, "stats": {"computed": computed, "reused": reused},
            "choice": {"head": f"logistic regression on {HEAD_CANDIDATES[choice.candidate]} ({chosen})",
                       "features": choice.candidate, "features_why": features_why, "pooling": str(chosen),
                       "C": choice.c, "cv_accuracy_by_C": {f"{c:g}": s for c, s in choice.scores[choice.candidate].items()},
                       "cv_accuracy_by_features": {name: {f"{c:g}": s for c, s in per.items()}
                                                   for name, per in choice.scores.items()},
                       "folds": choice.folds, "repeats": choice.repeats, "photos": len(y),
                       "views_per_photo": 1 + augmented},
            "out_of_fold": {e.key: int(p) for e, p in zip(head_examples, choice.out_of_fold)},
            "estimate": estimate}
