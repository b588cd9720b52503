"""Tiny, visually distinct photos through the real collector, and settings that train in seconds."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.factories import client_for, make_label, make_reviewer, make_volunteer, upload
from tests.training.processes import BASE, subprocess_env
from tests.training.built_once import built_once
from tests.training.images import Look, Variation, class_photo
from tests.training.tiny_run import Photos, make_photos, train_first_run

# Three classes a small network tells apart at 32 px even from random weights: hue and shape differ.
CLASSES = {
    "red-disc": Look("disc", (220, 40, 40)),
    "green-bar": Look("bar", (40, 190, 60)),
    "blue-square": Look("square", (40, 70, 220)),
}
# Each photo on its own pale background, the shape moved and shaded: a label is a shape and a hue, not one picture.
VARIED = Variation(colour=25, position=6, specks=30)


def class_image(slug: str, seed: int, size: int = 64) -> bytes:
    return class_photo(CLASSES[slug], f"{slug}-{seed}", size=size, vary=VARIED)


@pytest.fixture
def tiny_training(settings):
    """Real pipeline, tiny: 32 px input, random base weights, few epochs; heartbeats off the test's path."""
    settings.PHOTO_TRAINING_SHORT_SIDE = 48
    settings.TRAINING_INPUT_SIZE = 32
    settings.TRAINING_BASE_WEIGHTS = "none"
    # Fine-tune two top blocks from the first photo on (the seed's "large data" row): on random base weights
    # this learns these classes in seconds, where a head on pooled random features may not.
    settings.TRAINING_FINE_TUNE_MIN_PER_CLASS = 1
    settings.TRAINING_FINE_TUNE_LAYERS = 2
    # ... on any test split: the cross-validated head (issue 17) has tests of its own (test_small_data.py).
    settings.TRAINING_CV_BELOW_TEST_PHOTOS = 0
    settings.TRAINING_MIXUP_ALPHA = 0.0
    settings.TRAINING_EPOCHS_HEAD = 5
    settings.TRAINING_EPOCHS_FINE_TUNE = 8
    settings.TRAINING_LEARNING_RATE_HEAD = 0.02
    # A randomly initialised network quantizes poorly (int8 measured 14-43 points under float32 here), so the
    # int8 rule would hold every tiny model back; that rule is proven on its own in test_gate.py.
    settings.TRAINING_INT8_MAX_DROP = 100.0
    # Likewise the chance rule: 5-7 test photos cannot show a tiny model better than chance with 95 % confidence,
    # and these tests are about what a run does once it publishes; the rule has its own (test_small_data.py).
    settings.TRAINING_PUBLISH_MIN_ACCURACY = 0.0
    settings.TRAINING_AUGMENT = False
    settings.TRAINING_AUGMENT_VIEWS = 0
    settings.TRAINING_BATCH_SIZE = 16
    settings.TRAINING_EARLY_STOPPING_PATIENCE = 12
    settings.TRAINING_INT8_CALIBRATION_SAMPLES = 32
    settings.TRAINING_INT8_CALIBRATION_DRAWS = 1  # one conversion a run; the draws are tested in tests/training/ml
    settings.TRAINING_MIN_PHOTOS_PER_LABEL = 5
    settings.TRAINING_HEARTBEAT_SECONDS = 3600
    # The Core ML conversion adds a minute to every run; test_pipeline's Core ML test and
    # tests/training/ml/test_coreml.py ask for it.
    settings.TRAINING_VARIANTS = settings.TRAINING_TFLITE_VARIANTS
    return settings


class PhotoMaker:
    """Uploads through collector's HTTP API as a volunteer, then approves through the review API."""

    def __init__(self):
        self.volunteer = make_volunteer()
        self.reviewer = make_reviewer()
        self.seed = 0

    def add(self, slug: str, n: int = 1, *, approve: bool = True, looks_like: str | None = None) -> list[int]:
        """``n`` approved photos labelled ``slug``, showing ``looks_like``'s look (default: the label's own)."""
        make_label(slug)
        uploader, reviewer = client_for(self.volunteer.user), client_for(self.reviewer)
        ids = []
        for _ in range(n):
            self.seed += 1
            response = upload(uploader, class_image(looks_like or slug, self.seed), label=slug)
            assert response.status_code == 201, response.content
            photo_id = response.json()["id"]
            if approve:
                review = reviewer.post(f"/api/v1/photos/{photo_id}/review/", {"decision": "approve"}, format="json")
                assert review.status_code == 200, review.content
            ids.append(photo_id)
        return ids


@pytest.fixture
def photos(db):
    return PhotoMaker()


@pytest.fixture
def three_classes(photos):
    for slug in CLASSES:
        photos.add(slug, 12)
    return photos


# --- real .tflite files, trained once per session, for publishing and the manifest API -------------


@pytest.fixture(scope="session")
def trainable_photos(tmp_path_factory) -> Photos:
    return built_once("photos", make_photos, lambda: tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def first_run(trainable_photos, tmp_path_factory):
    """The session's one real run (tests/training/tiny_run.py): (TrainResult, feature store, export folder).
    Once per CI run, not per pass (tests/training/built_once.py)."""
    return built_once("first-run", lambda folder: train_first_run(trainable_photos, folder),
                      lambda: tmp_path_factory.mktemp("run1"))


@pytest.fixture(scope="session")
def trained_result(first_run, trainable_photos):
    """That run's TrainResult (every variant, Core ML too) and its test examples, for `publish`."""
    return first_run[0], trainable_photos.test


@pytest.fixture(scope="session")
def classes_result(tmp_path_factory):
    """A real TrainResult on CLASSES, the looks and label slugs the Django-level tests upload (PhotoMaker), for
    tests that need the model in service to recognise their photos (review guesses, the stumped bonus, the
    phone's guess). The shared run above knows other labels (TRAINABLE's); this one is small (32 px, no Core ML).
    Once per CI run, not per pass (tests/training/built_once.py)."""
    return built_once("classes", _train_classes, lambda: tmp_path_factory.mktemp("classes"))


def _train_classes(folder):
    import hashlib

    from training import ml

    labels = sorted(CLASSES)
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for index, slug in enumerate(labels):
        for i in range(14):
            path = folder / f"{slug}-{i}.jpg"
            path.write_bytes(class_image(slug, 1000 + i, size=48))
            split = "test" if i < 3 else "val" if i < 5 else "train"
            splits[split].append(ml.Example(key=hashlib.sha256(path.read_bytes()).hexdigest(), path=path,
                                            label_index=index))
    hparams = ml.HParams(
        backbone=ml.BackboneConfig(alpha=0.35, input_size=32, base_weights="none"),
        fine_tune_min_per_class=1, fine_tune_layers=2, mixup_alpha=0.0, epochs_head=5, epochs_fine_tune=8,
        learning_rate_head=0.02, augment=False, augment_views=0, batch_size=16, early_stopping_patience=12,
        int8_calibration_samples=32, int8_calibration_draws=1, cv_below_test_photos=0,
        # What the tests read: the gate's file (review guesses, the stumped bonus) and int8 (the phone's guess).
        variants=("float32", "int8"),
    )
    result = ml.train_and_export(train=splits["train"], val=splits["val"], test=splits["test"], labels=labels,
                                 hparams=hparams, feature_store=ml.MemoryFeatureStore(), out_dir=folder / "export",
                                 log=lambda message: None)
    return result, splits["test"]


# --- a migrated file SQLite database, for commands run as processes (tests/training/processes.py) ---------


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """A migrated file SQLite database (once per session); tests copy it."""
    folder = tmp_path_factory.mktemp("filedb")
    path = folder / "template.sqlite3"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE,
                   env=subprocess_env(path, folder), check=True, timeout=300)
    return path


@pytest.fixture
def file_db(migrated_sqlite, tmp_path):
    db = tmp_path / "db.sqlite3"
    shutil.copy(migrated_sqlite, db)
    return db


def publish(result_and_test) -> "ModelVersion":  # noqa: F821
    """Publish a real exported result through training.services, as a run's last step does."""
    import uuid

    from django.utils import timezone

    from training.services.execute import variant_metrics
    from training.services.publishing import model_version_publish
    from training.models import DatasetVersion, RunStatus, TrainingRun

    result, test = result_and_test
    dataset = DatasetVersion.objects.create(fingerprint=uuid.uuid4().hex, cutoff=timezone.now(), labels=result.labels)
    run = TrainingRun.objects.create(status=RunStatus.RUNNING, active=None, dataset_version=dataset,
                                     strategy=result.strategy, labels=result.labels)
    run.metrics = {name: variant_metrics(vr, list(range(len(test)))) for name, vr in result.variants.items()}
    return model_version_publish(run=run, result=result, dataset=dataset)
