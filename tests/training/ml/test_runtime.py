"""TensorFlow loads without its native start-up lines in the log."""

import subprocess
import sys

from django.conf import settings


def test_loading_training_code_prints_no_native_tensorflow_noise():
    code = ("import sys, os\n"
            "from training import ml\n"
            "ml.train_and_export\n"  # the lazy entry point loads TensorFlow
            "import tensorflow as tf\n"
            "print(float(tf.reduce_sum(tf.ones((2, 2)))))\n"
            "os.write(2, b'a real native error line\\n')\n")
    env = {"PATH": "/usr/bin:/bin"}  # no TF_CPP_MIN_LOG_LEVEL nor TF_USE_LEGACY_KERAS from the caller
    done = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4.0"
    assert "absl::InitializeLog" not in done.stderr and "cuda" not in done.stderr.lower(), done.stderr
    assert "a real native error line" in done.stderr  # descriptor 2 works again afterwards
