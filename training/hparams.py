"""The backbone and hyper-parameters a run trains with, read from settings in this one place.

Not a service (nothing is written): runs record ``hparams_from_settings()`` and selectors
name the feature cache after ``backbone_from_settings()``, so both see the same configuration.
"""

from __future__ import annotations

import dataclasses
import json

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from training import ml

# HParams field -> the setting that sets it; a setting left unset (None) keeps HParams' tuned default.
SETTING_BY_FIELD: dict[str, str] = {
    "fine_tune_min_per_class": "TRAINING_FINE_TUNE_MIN_PER_CLASS",
    "fine_tune_layers": "TRAINING_FINE_TUNE_LAYERS",
    "epochs_head": "TRAINING_EPOCHS_HEAD",
    "epochs_fine_tune": "TRAINING_EPOCHS_FINE_TUNE",
    "batch_size": "TRAINING_BATCH_SIZE",
    "learning_rate_head": "TRAINING_LEARNING_RATE_HEAD",
    "learning_rate_fine_tune": "TRAINING_LEARNING_RATE_FINE_TUNE",
    "augment_views": "TRAINING_AUGMENT_VIEWS",
    "early_stopping_patience": "TRAINING_EARLY_STOPPING_PATIENCE",
    "int8_calibration_samples": "TRAINING_INT8_CALIBRATION_SAMPLES",
    "int8_calibration_draws": "TRAINING_INT8_CALIBRATION_DRAWS",
    "mixup_alpha": "TRAINING_MIXUP_ALPHA",
    "augment_flip": "TRAINING_AUGMENT_FLIP",
    "threads": "TRAINING_TF_THREADS",
    "cv_below_test_photos": "TRAINING_CV_BELOW_TEST_PHOTOS",
    "cv_folds": "TRAINING_CV_FOLDS",
}


def backbone_from_settings() -> ml.BackboneConfig:
    """TRAINING_ALPHA, TRAINING_INPUT_SIZE, TRAINING_BASE_WEIGHTS: what runs train on and embeddings are named after."""
    return ml.BackboneConfig(alpha=settings.TRAINING_ALPHA, input_size=settings.TRAINING_INPUT_SIZE,
                             base_weights=settings.TRAINING_BASE_WEIGHTS)


def hparams_from_settings(*, setting_by_field: dict[str, str] = SETTING_BY_FIELD) -> ml.HParams:
    """The run's hyper-parameters. A field name that HParams lacks is a programming error and fails loudly,
    instead of a setting that silently stops having any effect."""
    known = {f.name for f in dataclasses.fields(ml.HParams)}
    unknown = sorted(set(setting_by_field) - known)
    if unknown:
        raise ImproperlyConfigured(
            "Not hyper-parameter fields of training.ml.HParams: "
            + ", ".join(f"{name} (from {setting_by_field[name]})" for name in unknown))
    kwargs = {name: getattr(settings, setting) for name, setting in setting_by_field.items()}
    kwargs = {name: value for name, value in kwargs.items() if value is not None}
    return ml.HParams(backbone=backbone_from_settings(), augment=settings.TRAINING_AUGMENT,
                      prune_sparsity=settings.TRAINING_PRUNE_SPARSITY, seed=settings.TRAINING_SEED,
                      variants=tuple(settings.TRAINING_VARIANTS), **kwargs)


def jsonable(value):
    """``value`` as a JSONField stores it (dates and paths as strings): what runs record and compare."""
    return json.loads(json.dumps(value, default=str))


def hparams_as_recorded(hparams: ml.HParams) -> dict:
    """The hyper-parameters as a run records them (``TrainingRun.hparams``), to compare two runs."""
    return jsonable(dataclasses.asdict(hparams))
