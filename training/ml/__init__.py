"""Framework-free (no Django) model training for Crowdlens: features, training, export, evaluation.

Interface: the training contract (train_and_export, evaluate_tflite, embed, preprocess_for_inference and
the types), kept backward compatible. Additions and precisions by the ML side:
- `BackboneConfig.cache_id(cut="pooled")` takes an optional `cut` (which layer's output is cached).
- `HParams` gained `augment_views`, `augment_flip`, `weight_decay`, `mixup_alpha` and `threads`; every
  field has a default, and the defaults are the ones the flowers benchmark settled on.
- `TrainResult.phase_cpu_seconds` (CPU seconds per phase, default empty) next to `phase_seconds`.
- `MemoryFeatureStore`: an in-memory FeatureStore for tests and benchmarks.
- `VARIANTS`: the variant names in export order.
- `preprocess_for_inference` returns a batch of one, (1, H, W, 3), ready for `set_tensor`.
- `evaluate_tflite`: `label_index` indexes `labels` (the file's output order); an index outside it
  (e.g. -1, a label the file does not know) counts as wrong and is left out of per-class figures.
- `train_and_export` raises ValueError for inconsistent input (no labels, no training photos, a
  label index out of range, an unknown variant) before doing any work.

The data types import no TensorFlow; the functions import it on first call, so importing
`training.ml` from Django code is cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from .types import (
    VARIANTS,
    BackboneConfig,
    Example,
    FeatureStore,
    HParams,
    InputSpec,
    MemoryFeatureStore,
    Stopped,
    TrainResult,
    VariantResult,
    WeightsUnavailable,
)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
) -> TrainResult:
    from .train import train_and_export as impl

    return impl(
        train=train, val=val, test=test, labels=labels, hparams=hparams, feature_store=feature_store,
        out_dir=out_dir, progress=progress, log=log, should_stop=should_stop,
    )


def evaluate_tflite(*, path: Path, examples: list[Example], labels: list[str], input_spec: InputSpec) -> VariantResult:
    from .export import evaluate_tflite as impl

    return impl(path=path, examples=examples, labels=labels, input_spec=input_spec)


def embed(*, paths: list[Path], backbone: BackboneConfig, feature_store: FeatureStore, keys: list[str]) -> dict[str, np.ndarray]:
    from .features import embed as impl

    return impl(paths=paths, backbone=backbone, feature_store=feature_store, keys=keys)


def preprocess_for_inference(image_rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    from .data import preprocess_for_inference as impl

    return impl(image_rgb, spec)


__all__ = [
    "VARIANTS",
    "BackboneConfig",
    "Example",
    "FeatureStore",
    "HParams",
    "InputSpec",
    "MemoryFeatureStore",
    "Stopped",
    "TrainResult",
    "VariantResult",
    "WeightsUnavailable",
    "train_and_export",
    "evaluate_tflite",
    "embed",
    "preprocess_for_inference",
]
