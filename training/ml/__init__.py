"""Framework-free (no Django) model training for Crowdlens: features, training, export, evaluation.

Interface: the training contract (train_and_export, evaluate_tflite, embed, preprocess_for_inference and
the types), kept backward compatible. Additions and precisions by the ML side:
- `BackboneConfig.cache_id(cut="pooled")` takes an optional `cut` (which layer's output is cached).
- `HParams` gained `augment_views`, `augment_flip`, `weight_decay`, `mixup_alpha` and `threads`; every
  field has a default, and the defaults are the ones the flowers benchmark settled on.
- `TrainResult.phase_cpu_seconds` (CPU seconds per phase, default empty) next to `phase_seconds`.
- `MemoryFeatureStore`: an in-memory FeatureStore for tests and benchmarks.
- `VARIANTS`: the variant names in export order.
- `preprocess_for_inference` returns a batch of one, (1, H, W, 3), ready for `set_tensor`.
- `evaluate_tflite`: `label_index` indexes `labels` (the file's output order); an index outside it
  (e.g. -1, a label the file does not know) counts as wrong and is left out of per-class figures.
- TFLite Model Metadata in every .tflite file (tflite_metadata.py): `train_and_export(model_info=ModelInfo(...))`
  gives its name, version, description, author and licence; labels and normalisation come from the run.
- `COREML` in `HParams.variants` adds a Core ML package (coreml.py): `TrainResult.coreml`; a failed
  conversion is named in `TrainResult.failed_variants` and fails nothing else.
- `classify_image(model_content=, image_path=, input_spec=)`: one photo through a `.tflite` in LiteRT, prepared
  as the manifest says; the file's scores (dequantized). The server's own prediction per photo (issue 19).
- `train_and_export` raises ValueError for inconsistent input (no labels, no training photos, a
  label index out of range, an unknown variant) before doing any work.

The data types import no TensorFlow; the functions import it on first call, so importing
`training.ml` from Django code is cheap.
"""

from __future__ import annotations

import os

# The one place TF_USE_LEGACY_KERAS is set: every TensorFlow import goes through this package, and
# tensorflow-model-optimization needs Keras 2 (tf_keras) behind tf.keras. Set before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .types import (
    COREML,
    VARIANTS,
    BackboneConfig,
    CoreMLResult,
    Example,
    FeatureStore,
    HParams,
    InputSpec,
    MemoryFeatureStore,
    ModelInfo,
    Stopped,
    TrainResult,
    VariantResult,
    WeightsUnavailable,
)



# The entry points live in modules that import TensorFlow; they are loaded on
# first use (PEP 562), so importing training.ml (settings, admin, web
# workers) never pays TensorFlow's start-up cost.
_LAZY = {
    "train_and_export": ".train",
    "evaluate_tflite": ".export",
    "classify_image": ".export",
    "embed": ".features",
    "preprocess_for_inference": ".data",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    from .runtime import load_tensorflow

    load_tensorflow()  # before the entry module imports it: TensorFlow's native start-up lines stay out of the log
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "COREML",
    "VARIANTS",
    "CoreMLResult",
    "BackboneConfig",
    "Example",
    "FeatureStore",
    "HParams",
    "InputSpec",
    "MemoryFeatureStore",
    "ModelInfo",
    "Stopped",
    "TrainResult",
    "VariantResult",
    "WeightsUnavailable",
    "train_and_export",
    "evaluate_tflite",
    "classify_image",
    "embed",
    "preprocess_for_inference",
]
