"""Keep a night's log readable: the libraries' chatter out, their warnings that matter in, once.

What `manage.py train` printed before (issue 17): about 1,770 coremltools INFO lines (one per converted op
and pass), coremltools' tqdm bars nested inside the command's own bar, "Failed to load _MLModelProxy" (Core ML
cannot load on Linux, which we know: the package is converted, never run here), TensorFlow's absl INFO about
renamed SavedModel inputs, the native converter's and LiteRT's lines on stderr ("fully_quantize: 0, ...",
"Created TensorFlow Lite XNNPACK delegate for CPU"), and MediaPipe's `MetadataWriter.__del__` traceback at
exit. `libraries_quiet()` wraps the export and evaluation steps; `dispose_metadata_writer` runs the writer's
cleanup while the interpreter is still whole.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile

# Native stderr lines that say nothing an operator needs (dropped).
NATIVE_NOISE = re.compile(
    r"(Created TensorFlow Lite XNNPACK delegate|fully_quantize: \d|Estimated count of arithmetic ops|"
    r"WARNING: All log messages before absl::InitializeLog|^W0000 |^I0000 |Ignored output_format|"
    r"Ignored drop_control_dependency|Reading SavedModel|Reading meta graph|Restoring SavedModel|"
    r"SavedModel load for tags|Loading SavedModel|TensorFlow Lite XNNPACK|tensorflow/compiler/mlir|"
    r"disabling MLIR crash reproducer|^\s*$)")
# Python-side messages dropped: known and expected here.
DROPPED = (
    "Failed to load _MLModelProxy",  # Core ML cannot load on Linux; we never load it (skip_model_load)
    "contains input name(s)",  # absl: SavedModel renames an input; harmless
)
_TQDM_MODULES = (
    "coremltools.converters.mil.frontend.tensorflow.convert_utils",
    "coremltools.converters.mil.frontend.tensorflow.load",
    "coremltools.converters.mil.frontend.tensorflow2.load",
    "coremltools.converters.mil.backend.nn.op_mapping",
    "coremltools.converters.mil.mil.passes.pass_pipeline",
    "coremltools.optimize.coreml._post_training_quantization",
    "coremltools.optimize.coreml._quantization_passes",
)


class _Drop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in DROPPED)


_DROP = _Drop()


def quiet_loggers() -> None:
    """coremltools and absl at WARNING, the known harmless warnings dropped (idempotent; called before they
    are imported, so their import-time warnings are filtered too)."""
    # coremltools' warnings are all about this system, known and summarised in the run's log by coreml.py
    # (Core ML cannot load here; coremltools 9.0 names TensorFlow 2.21 and scikit-learn 1.9 untested).
    levels = {"coremltools": logging.ERROR, "absl": logging.WARNING, "tensorflow": logging.WARNING}
    for name, level in levels.items():
        logger = logging.getLogger(name)
        if logger.level < level:
            logger.setLevel(level)
        if _DROP not in logger.filters:
            logger.addFilter(_DROP)
    for handler in logging.getLogger().handlers:  # records of child loggers reach the root's handlers
        if _DROP not in handler.filters:
            handler.addFilter(_DROP)


def no_progress_bars() -> None:
    """coremltools' tqdm bars (which would nest inside the command's own) are turned off."""
    from tqdm import tqdm

    quiet = functools.partial(tqdm, disable=True)
    for name in _TQDM_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        for attribute in ("_tqdm", "tqdm"):
            if getattr(module, attribute, None) is tqdm:
                setattr(module, attribute, quiet)


@contextlib.contextmanager
def libraries_quiet():
    """Around export and evaluation: quiet loggers, no coremltools bars, and the native stderr lines (fd 2)
    filtered: known noise dropped, anything else passed on when the block ends (so another thread's stderr
    lines in the meantime come late, never lost; the run's own log goes through `log`, not stderr)."""
    quiet_loggers()
    no_progress_bars()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded): nothing to filter
        yield
        no_progress_bars()
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            no_progress_bars()  # modules imported inside the block
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if not NATIVE_NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def dispose_metadata_writer(writer) -> None:
    """Remove MediaPipe's writer's temporary folder now, and make its class's ``__del__`` safe: it runs at
    interpreter exit for writers still alive then, when its module's ``os`` is already None, and printed
    "Exception ignored in: MetadataWriter.__del__" with a traceback after every successful night."""
    for candidate in (writer, getattr(writer, "writer", None)):
        folder = getattr(candidate, "_temp_folder", None)
        if folder is None:
            continue
        folder.cleanup()
        if type(candidate).__del__ is not _safe_del:
            type(candidate).__del__ = _safe_del


def _safe_del(self, _exists=os.path.exists) -> None:  # os.path.exists bound now, not looked up at exit
    folder = getattr(self, "_temp_folder", None)
    try:
        if folder is not None and _exists(folder.name):
            folder.cleanup()
    except Exception:  # at exit: the folder's own finalizer removes it
        pass
