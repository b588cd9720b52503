"""Export: quantize, write the .tflite file, and evaluate the written file in LiteRT.

The accuracy reported for a variant is the accuracy of the file that ships, run by the same
interpreter a phone uses, on inputs prepared exactly as its InputSpec tells the phone.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from . import data
from .model import full_model, tf_setup
from .types import Example, InputSpec, VariantResult


def input_spec_for(variant: str, size: int) -> InputSpec:
    return data.uint8_input_spec(size) if variant == "int8" else data.float_input_spec(size)


def _converter(model, size: int):
    """A converter for `model` at batch 1. The converter saves what it is given as a SavedModel:
    a bare tf.Module holding only the inference function is ~10x faster to save than the Keras model."""
    tf = tf_setup()
    module = tf.Module()
    module.serve = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="input")])
    return tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)


def convert(base, head, *, variant: str, size: int, calibration_pixels: list[np.ndarray] | None = None) -> bytes:
    """The .tflite bytes of one variant (batch 1).

    float32/float16/dynamic take normalized float input; int8 is full-integer with raw uint8
    pixels in (normalization folded into the graph) and uint8 probabilities out, calibrated on
    `calibration_pixels` (uint8 HxWx3 clean views of training photos).
    """
    tf = tf_setup()
    if variant == "int8":
        model = full_model(base, head, raw_pixels=True)
        if not calibration_pixels:
            raise ValueError("int8 needs calibration photos")
        samples = [p.astype(np.float32)[None] for p in calibration_pixels]
        # Pin the input range to exactly 0..255 so the uint8 input is the raw pixel (scale 1, zero point 0).
        samples[0] = samples[0].copy()
        samples[0][0, 0, 0, 0] = 0.0
        samples[0][0, 0, 1, 0] = 255.0

        def representative():
            for sample in samples:
                yield [sample]

        converter = _converter(model, size)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    else:
        model = full_model(base, head, raw_pixels=False)
        converter = _converter(model, size)
        if variant == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif variant == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif variant != "float32":
            raise ValueError(f"unknown variant {variant!r}")
    with warnings.catch_warnings():
        # uint8 input with its range pinned above: the converter's "statistics ... not specified" is moot.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        flat = converter.convert()
    if variant == "int8":
        _check_raw_pixel_input(flat)
    return flat


def _interpreter(model_path: Path | None = None, model_content: bytes | None = None):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path) if model_path else None, model_content=model_content, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def _check_raw_pixel_input(flat: bytes) -> None:
    detail = _interpreter(model_content=flat).get_input_details()[0]
    scale, zero_point = detail["quantization"]
    if detail["dtype"] != np.uint8 or abs(scale - 1.0) > 1e-6 or zero_point != 0:
        raise RuntimeError(f"int8 input is not raw pixels: dtype {detail['dtype']}, scale {scale}, zero point {zero_point}")


def write(flat: bytes, out_dir: Path, variant: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"model-{variant}.tflite"
    tmp = path.with_suffix(".tflite.part")
    tmp.write_bytes(flat)
    tmp.replace(path)
    return path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluate_tflite(*, path: Path, examples: list[Example], labels: list[str], input_spec: InputSpec,
                    variant: str | None = None, should_stop: Callable[[], bool] = lambda: False) -> VariantResult:
    """Run a .tflite file in LiteRT on each example, prepared as `input_spec` says.

    `label_index` indexes `labels`, the file's output order. An index outside it (e.g. -1: a label
    the file does not know) counts as a wrong answer and stays out of the per-class figures.
    Latency is the mean wall time of one invoke() on one CPU thread.
    """
    from .types import Stopped

    path = Path(path)
    interpreter = _interpreter(model_path=path)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    expected = np.uint8 if input_spec.dtype == "uint8" else np.float32
    if inp["dtype"] != expected:
        raise ValueError(f"{path.name} takes {np.dtype(inp['dtype']).name}, the input spec says {input_spec.dtype}")
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    predictions: list[int] = []
    correct = 0
    seconds = 0.0
    for example in examples:
        if should_stop():
            raise Stopped("stopped while evaluating")
        pixels = np.asarray(data.load_rgb(example.path), dtype=np.uint8)
        interpreter.set_tensor(inp["index"], data.preprocess_for_inference(pixels, input_spec))
        start = time.perf_counter()
        interpreter.invoke()
        seconds += time.perf_counter() - start
        predicted = int(np.argmax(interpreter.get_tensor(out["index"])[0]))
        predictions.append(predicted)
        if 0 <= example.label_index < n:
            confusion[example.label_index, predicted] += 1
            correct += int(predicted == example.label_index)
    per_class = {}
    for index, label in enumerate(labels):
        tp = int(confusion[index, index])
        predicted_total = int(confusion[:, index].sum())
        support = int(confusion[index].sum())
        per_class[label] = {
            "precision": tp / predicted_total if predicted_total else 0.0,
            "recall": tp / support if support else 0.0,
            "support": support,
        }
    return VariantResult(
        variant=variant or path.stem.removeprefix("model-"),
        path=path,
        size_bytes=path.stat().st_size,
        sha256=file_sha256(path),
        accuracy=correct / len(examples) if examples else 0.0,
        per_class=per_class,
        confusion=confusion.tolist(),
        latency_ms=1000.0 * seconds / len(examples) if examples else 0.0,
        predictions=predictions,
    )
