"""Issue 17: a successful `manage.py train` prints a short, readable log.

Before: about 1,770 coremltools INFO lines, coremltools' progress bars inside the command's own, "Failed to
load _MLModelProxy", the native converter's and LiteRT's stderr lines, and MediaPipe's
`MetadataWriter.__del__` traceback when the process exits.
"""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from training.models import RunOutcome, TrainingRun

BASE = Path(__file__).resolve().parent.parent.parent
NOISE = ("Running MIL", "Converting TF Frontend", "passes/s", "ops/s", "Failed to load _ML", "MetadataWriter.__del__",
         "fully_quantize", "XNNPACK", "has not been tested with coremltools", "contains input name(s)",
         "Exception ignored")


@pytest.mark.slow
@pytest.mark.any_database  # what the command prints does not depend on the database: PostgreSQL only in CI
@pytest.mark.django_db(transaction=True)
def test_a_successful_night_prints_a_short_log(tiny_training, three_classes, capfd, caplog):
    tiny_training.TRAINING_VARIANTS = ("float32", "int8", "coreml")
    # The cross-validated head (issue 17): 36 photos measure enough for the model to be published.
    tiny_training.TRAINING_CV_BELOW_TEST_PHOTOS = 200
    with caplog.at_level(logging.INFO):
        call_command("train")  # with its progress bar, as an operator runs it
    run = TrainingRun.objects.get()
    assert run.outcome == RunOutcome.PUBLISHED, run.error + run.log
    out, err = capfd.readouterr()
    printed = out + err
    for text in NOISE:
        assert text not in printed, text
    assert not [r for r in caplog.records if r.name.startswith("coremltools")]
    assert "coreml: " in out and "published v1" in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) < 60, "\n".join(lines)


SCRIPT = """
import os, sys
sys.path.insert(0, ".")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf
import tf_keras as keras
from training.ml import ModelInfo, tflite_metadata
from training.ml.data import float_input_spec
inp = keras.Input((8, 8, 3))
out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))
flat = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out)).convert()
tflite_metadata.write(flat, labels=["a", "b", "c"], input_spec=float_input_spec(8), info=ModelInfo())
print("written")
"""


@pytest.mark.slow
def test_writing_metadata_leaves_no_traceback_at_exit():
    """MediaPipe's writer cleaned its temporary folder in __del__ at interpreter exit, when `os` is gone
    (measured: without quiet.dispose_metadata_writer this very script prints the traceback)."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=BASE, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "written" in done.stdout, done.stderr
    assert "MetadataWriter.__del__" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
