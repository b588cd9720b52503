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


def test_tensorflow_s_own_thread_variable_is_honoured():
    """An operator who sets TF_NUM_INTRAOP_THREADS (CI sets 1: four test processes share two cores) gets that,
    not the library's min(4, CPUs); an explicit count (TRAINING_TF_THREADS) still wins."""
    code = ("from training.ml.model import tf_setup\n"
            "import sys\n"
            "tf = tf_setup(int(sys.argv[1]) or None)\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.config.threading.get_inter_op_parallelism_threads())\n")
    for explicit, expected in (("0", "1 1"), ("3", "3 2")):
        env = {"PATH": "/usr/bin:/bin", "TF_NUM_INTRAOP_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", code, explicit], cwd=settings.BASE_DIR, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split("\n")[-2] == expected, done.stdout
