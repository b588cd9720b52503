"""Issue 17: no `MetadataWriter.__del__` traceback when a process that wrote model metadata exits.

The rest of the short log (no converter lines, no nested progress bars) is checked on a real night:
tests/training/short_log.py, from test_pipeline.py's fourth night.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parent.parent.parent


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
