"""The one real training run the test session shares: tiny images, random weights, seconds.

Built once per session (tests/training/conftest.py's `first_run`) and read by the training library's
tests (tests/training/ml/) and by the delivery API's (`trained_result`): one model and one Core ML
conversion per session instead of one each.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.training.images import TRAINABLE, make_examples
from training.ml import BackboneConfig, HParams, ModelInfo

SIZE = 48
FIRST_RUN_INFO = ModelInfo(version="run 7", license="CC BY 4.0")


def tiny_hparams(**changes) -> HParams:
    hparams = HParams(
        backbone=BackboneConfig(alpha=0.35, input_size=SIZE, base_weights="none"),
        fine_tune_min_per_class=10,
        fine_tune_layers=2,
        epochs_head=12,
        epochs_fine_tune=3,
        batch_size=16,
        learning_rate_head=3e-3,
        learning_rate_fine_tune=1e-3,
        augment_views=2,
        dropout=0.2,  # 16 photos a class: the defaults' dropout 0.5 and mixup are for thousands
        mixup_alpha=0.0,
        early_stopping_patience=4,
        int8_calibration_samples=16,
        # One int8 conversion a run (the night converts three and keeps the closest: a choice that
        # tests/training/ml/test_compact.py proves on its own, at a third of the conversions).
        int8_calibration_draws=1,
        cv_below_test_photos=0,  # these tests are about the Keras path: a test split of any size measures
    )
    return dataclasses.replace(hparams, **changes)


@dataclasses.dataclass
class Photos:
    train: list
    val: list
    test: list
    labels: list


def make_photos(root: Path) -> Photos:
    return Photos(
        train=make_examples(root / "train", 16, seed=1),
        val=make_examples(root / "val", 4, seed=2),
        test=make_examples(root / "test", 6, seed=3),
        labels=list(TRAINABLE),
    )


def train_first_run(photos: Photos, out: Path):
    """A fine-tuning run exporting every variant (the Core ML package too), storing its network's features as the
    night does (model_features): (result, feature store, folder)."""
    from training.ml import COREML, VARIANTS, MemoryFeatureStore, train_and_export

    store = MemoryFeatureStore()
    result = train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels,
                              hparams=tiny_hparams(variants=(*VARIANTS, COREML)), feature_store=store, out_dir=out,
                              log=lambda m: None, model_info=FIRST_RUN_INFO, model_features=True)
    return result, store, out
