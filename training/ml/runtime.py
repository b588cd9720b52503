"""Loading TensorFlow without its native start-up noise.

TensorFlow's C++ side prints through absl before absl's logging is set up
("WARNING: All log messages before absl::InitializeLog() ...", "Could not find
cuda drivers", "failed call to cuInit") straight to file descriptor 2, where
TF_CPP_MIN_LOG_LEVEL cannot reach. Those lines come from importing
TensorFlow and from its first device initialisation; both happen here, once,
with descriptor 2 pointed at /dev/null, and Python's own errors still surface
(as exceptions, after descriptor 2 is back).
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_loaded = False


@contextmanager
def _native_stderr_muted():
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def load_tensorflow():
    """Import TensorFlow and initialise its devices quietly (once per process); return the module."""
    global _loaded
    with _lock:
        if not _loaded:
            with _native_stderr_muted():
                import tensorflow as tf

                tf.config.list_physical_devices()
            _loaded = True
    import tensorflow as tf

    return tf
