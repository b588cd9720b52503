"""The data types of the interface between training/ml and the Django side.

Importing this module does not import TensorFlow, so the Django side can build
hyper-parameters and examples without paying for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


# Bump when the way features are computed changes (preprocessing, cut layer, views): old cache rows stop matching.
# 2: training photos' rows hold only their augmented views (the clean one was computed and never drawn).
FEATURE_FORMAT_VERSION = 2

VARIANTS = ("float32", "float16", "dynamic", "int8")  # the .tflite files, in export order
# The Core ML package: converted from the same model, not evaluated here (Core ML runs only on Apple
# systems); asked for by naming it in HParams.variants.
COREML = "coreml"

# MobileNetV2 takes pixels scaled to [-1, 1]: (p - 127.5) / 127.5.
MOBILENET_MEAN = [127.5, 127.5, 127.5]
MOBILENET_STD = [127.5, 127.5, 127.5]


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BackboneConfig:
    alpha: float = 0.35
    input_size: int = 224
    base_weights: str = "imagenet"  # "imagenet" | "none" | a filesystem path to a weights .h5

    def weights_identity(self) -> str:
        """What the weights are: 'imagenet', 'none' or 'sha256:<digest of the file>'.

        A path that does not exist raises WeightsUnavailable, like at training time.
        """
        if self.base_weights in ("imagenet", "none"):
            return self.base_weights
        path = Path(self.base_weights)
        if not path.is_file():
            raise WeightsUnavailable(
                f"TRAINING_BASE_WEIGHTS={self.base_weights!r}: no such weights file "
                "(use 'imagenet', 'none' or the path of a MobileNetV2 no-top .h5 file)"
            )
        return "sha256:" + _file_sha256(str(path))

    def cache_id(self, cut: str = "pooled") -> str:
        """Stable string naming everything a cached feature depends on.

        `cut` names the layer whose output is cached ("pooled" for embeddings, or the
        fine-tuning cut plus the augmentation views) and is part of the identity.
        """
        return (
            f"mnv2-v{FEATURE_FORMAT_VERSION}:a{self.alpha:g}:s{self.input_size}:"
            f"w={self.weights_identity()}:{cut}"
        )


@dataclass(frozen=True)
class HParams:
    """Every knob, from settings; recorded on the run as JSON (dataclasses.asdict)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    # Seed slides 9-12: below this many photos in the smallest class, train a head only; else also fine-tune.
    fine_tune_min_per_class: int = 100
    fine_tune_layers: int = 10  # how many top MobileNetV2 blocks (of 16) to unfreeze (BatchNorm stays frozen)
    epochs_head: int = 8
    # 15: the cosine rate has decayed when early stopping keeps the best weights (40: int8 2 points worse).
    epochs_fine_tune: int = 15
    batch_size: int = 32
    learning_rate_head: float = 1e-3
    learning_rate_fine_tune: float = 3e-4
    dropout: float = 0.5
    label_smoothing: float = 0.1
    augment: bool = True
    augment_rotation_deg: float = 10.0
    augment_crop: float = 0.15  # up to this fraction of each side may be cropped away
    augment_brightness: float = 0.15
    augment_contrast: float = 0.15
    augment_blur: float = 0.3  # probability of a small Gaussian blur
    early_stopping_patience: int = 8
    seed: int = 1234
    prune_sparsity: float = 0.0  # 0 = no pruning; tfmot, stripped before export
    int8_calibration_samples: int = 200
    # Calibrations tried: draw 0 as before issue 17 (the manifest's view of 200 photos), each later one on other
    # photos; the int8 file kept is the one closest to the float model on validation photos as the manifest and
    # as MediaPipe resize them (calibration.convert_int8_closest). 1: the calibration before issue 17 alone.
    int8_calibration_draws: int = 3
    # What the later draws calibrate on: "phone" (the manifest's view and the resizes a phone's SDK makes, in
    # turn) or "clean" (the manifest's view only). calibration.calibration_pixels.
    int8_calibration: str = "phone"
    variants: tuple[str, ...] = VARIANTS  # any of VARIANTS, and COREML
    # Added by the ML side (backward compatible): augmented views per photo cached for training.
    augment_views: int = 6
    augment_flip: bool = True  # mirror images (as MediaPipe Model Maker does); turn off for labels with text or handedness
    weight_decay: float = 1e-4
    # Mixup on cached features (Beta(a, a) mixing of two photos' features and labels in a batch); 0 = off.
    mixup_alpha: float = 0.4
    # TensorFlow intra-op threads (0 = min(4, CPUs)); takes effect if TensorFlow is not yet initialised.
    threads: int = 0
    # Below this many test photos a test split measures too little (23 photos: one is 4 points): the accuracy
    # is estimated by k-fold cross-validation over every photo, and the published model trains on all of them.
    cv_below_test_photos: int = 200
    cv_folds: int = 5
    # The k-fold is repeated on this many fold draws at the chosen head (the first draw chooses): the estimate
    # averages them and its interval counts their spread (fit.Estimate.of_cross_validation).
    cv_repeats: int = 3
    # What a head on pooled features reads (model.Pooling): the backbone also sees the input resized (inside the
    # exported graph) to each of these sizes below the input size, and each layer's pooled activations are
    # averaged over the scales. At the default 224 px input: 224 and 128 (1.33 times one pass's work).
    feature_scales: tuple[int, ...] = (128,)
    # Intermediate layers whose pooled activations the "several_layers" candidate reads beside the last one
    # (empty: the candidate is not tried). The night chooses it or the last activation alone by cross-validation.
    head_layers: tuple[str, ...] = ("block_13_expand_relu", "block_16_project_BN")


@dataclass(frozen=True)
class Example:
    key: str  # the photo's sha256 (cache key)
    path: Path  # a local file holding the training derivative JPEG
    label_index: int  # index into the labels list (output order)


class FeatureStore(Protocol):
    def get_many(self, keys: list[str], cache_id: str) -> dict[str, bytes]: ...

    def put_many(self, items: dict[str, bytes], cache_id: str) -> None: ...

    def present(self, keys: list[str], cache_id: str) -> set[str]:
        """Which of ``keys`` are stored, without reading what is stored."""
        ...


class MemoryFeatureStore:
    """A FeatureStore in a dict: for tests, benchmarks and one-off runs."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], bytes] = {}

    def get_many(self, keys: list[str], cache_id: str) -> dict[str, bytes]:
        return {k: self.rows[(cache_id, k)] for k in keys if (cache_id, k) in self.rows}

    def put_many(self, items: dict[str, bytes], cache_id: str) -> None:
        for k, v in items.items():
            self.rows[(cache_id, k)] = v

    def present(self, keys: list[str], cache_id: str) -> set[str]:
        return {k for k in keys if (cache_id, k) in self.rows}


@dataclass
class VariantResult:
    variant: str
    path: Path
    size_bytes: int
    sha256: str
    accuracy: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    latency_ms: float
    predictions: list[int]


@dataclass
class InputSpec:
    height: int
    width: int
    resize: str  # "center_crop" | "stretch"
    dtype: str  # "uint8" | "float32"
    mean: list[float]
    std: list[float]


@dataclass(frozen=True)
class ModelInfo:
    """The general fields of the TFLite Model Metadata written into every exported file (and the
    Core ML model's description). Not a hyper-parameter: the same training with another version
    string is the same training."""

    name: str = "Crowdlens image classifier"
    version: str = "unversioned"  # the Django side passes the training run ("run 42")
    description: str = ("Names the most prominent object in a photo among the labels of a Crowdlens "
                        "installation; input: the largest centred square of the photo, resized.")
    author: str = "Crowdlens"
    license: str = "Terms of the Crowdlens installation that published it"


@dataclass
class CoreMLResult:
    """The Core ML variant: a zipped .mlpackage (training/ml/coreml.py)."""

    path: Path
    size_bytes: int
    sha256: str
    input_spec: InputSpec  # what the phone hands the model: raw RGB pixels of the centred square


@dataclass
class TrainResult:
    strategy: str  # "head_only" | "several_layers" (the head on several layers' pooled features) | "fine_tune"
    labels: list[str]
    variants: dict[str, VariantResult]
    input_specs: dict[str, InputSpec]
    history: dict[str, list[float]]
    phase_seconds: dict[str, float]
    feature_stats: dict[str, int]
    notes: list[str]
    # Added by the ML side: CPU seconds of this process per phase (all threads), steadier than wall
    # time on a shared machine.
    phase_cpu_seconds: dict[str, float] = field(default_factory=dict)
    # Added for the phone SDKs: the Core ML package when HParams.variants asked for it and the
    # conversion worked; a variant that failed to export is left out of the results and named
    # here with the reason (only COREML can fail alone: a .tflite failure fails the run).
    coreml: CoreMLResult | None = None
    failed_variants: dict[str, str] = field(default_factory=dict)
    # Added for small data (training/ml/fit.py): the accuracy the run reports, with its 95 % interval and what it
    # rests on (fit.Estimate.as_dict()); how the strategy and the head's regularisation were chosen; the share of
    # the largest class (what guessing it scores); each variant's right/wrong answer on the photos the default
    # variant is chosen on (``evidence_keys``, same order); and, after cross-validation, each photo's
    # out-of-fold answer (photo key -> label index) from a model that never saw it.
    estimate: dict = field(default_factory=dict)
    choice: dict = field(default_factory=dict)
    largest_class_share: float = 0.0
    evidence: dict[str, list[bool]] = field(default_factory=dict)
    evidence_keys: list[str] = field(default_factory=list)
    out_of_fold: dict[str, int] = field(default_factory=dict)
    # The FeatureStore's cache id under which the trained network's pooled features of every photo lie
    # (train_and_export(model_features=True)); "" when not asked for. The nightly label audit reads them.
    model_features: str = ""


class WeightsUnavailable(Exception):
    """Base weights cannot be had; the message names TRAINING_BASE_WEIGHTS."""


class Stopped(Exception):
    """should_stop() turned true: the run stopped between steps."""


__all__ = [
    "BackboneConfig",
    "HParams",
    "Example",
    "FeatureStore",
    "MemoryFeatureStore",
    "VariantResult",
    "InputSpec",
    "TrainResult",
    "WeightsUnavailable",
    "Stopped",
    "VARIANTS",
    "COREML",
    "CoreMLResult",
    "ModelInfo",
]
