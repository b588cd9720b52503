"""Export: quantize, write the .tflite file, and evaluate the written file in LiteRT.

The accuracy reported for a variant is the accuracy of the file that ships, run by the same
interpreter a phone uses, on inputs prepared exactly as its InputSpec tells the phone.
"""

from __future__ import annotations

import functools
import hashlib
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from . import data, tflite_metadata
from .model import full_model, tf_setup
from .types import Example, InputSpec, ModelInfo, VariantResult


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


def convert(base, head, *, variant: str, size: int, calibration_pixels: list[np.ndarray] | None = None,
            compact: bool = True, labels: list[str] | None = None, info: ModelInfo | None = None) -> bytes:
    """The .tflite bytes of one variant (batch 1).

    float32/float16/dynamic take normalized float input; int8 is full-integer with raw uint8
    pixels in (normalization folded into the graph) and uint8 probabilities out, calibrated on
    `calibration_pixels` (uint8 HxWx3 clean views of training photos).
    labels: write TFLite Model Metadata (tflite_metadata.write: `info`, the input spec's
    normalisation, the labels as an associated file) into the converter's file, then read it back
    and check it says the same (tflite_metadata.check). train_and_export always does.
    compact: pass the file through `compact()` (every variant alike, so sizes compare fairly),
    checked to compute bit-identical outputs to the converter's file; off only to look at what the
    converter (and the metadata writer) wrote.
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
        converted = flat = converter.convert()
    spec = input_spec_for(variant, size)
    if labels is not None:
        # Before compaction: MediaPipe's populator re-packs the flatbuffer with a plain builder, which
        # would undo it; compact() keeps the metadata and the packed labels file.
        flat = tflite_metadata.write(flat, labels=labels, input_spec=spec, info=info or ModelInfo())
    if compact:
        flat = _compact(flat)
        _check_same_outputs(converted, flat)
    if labels is not None:
        tflite_metadata.check(flat, labels=labels, input_spec=spec, info=info or ModelInfo())
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


TFLITE_FILE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16  # schema.fbs: Buffer { data:[ubyte] (force_align: 16) }


def compact(flat: bytes) -> bytes:
    """The same model in fewer bytes: what it computes, its input and output tensors (names
    included), its signature defs and its metadata are unchanged.

    - Identical numeric vectors are written once and referenced from every table that has them
      (a FlatBuffer offset may point at any vector already written; readers just follow it).
      Above all the per-channel quantization's zero points: int64, all zero for symmetric int8
      weights and int32 biases, one vector per tensor in the converter's file, now one per
      length; likewise equal scale vectors and tensor shapes.
    - Identical leaf tables (quantization parameters, builtin operator options) likewise.
    - Strings nothing reads: intermediate tensor names, subgraph names and the model
      description, as tensorflow.lite.tools.flatbuffer_utils.strip_strings does; but the
      subgraphs' input and output tensor names and the signature defs stay (strip_strings
      drops the signature defs too).
    - Weight buffers (`Buffer.data`) are never shared, and are written 16-byte aligned as the
      schema asks (`force_align: 16`; the TF 2.21 converter aligns them only to 4).

    - Files packed after the flatbuffer (TFLite Model Metadata's associated files, such as the
      labels) are packed again after the compacted flatbuffer, with the same names and bytes.

    A file whose buffers or custom options live outside the flatbuffer (offset-based, for models
    over 2 GB) comes back unchanged.
    """
    from ai_edge_litert import schema_py_generated as schema

    original = flat
    flat, packed = tflite_metadata.split_associated_files(flat)
    model = schema.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    if _has_offset_data(model):
        return original
    _strip_strings(model)
    model.buffers = [_AlignedBuffer(buffer) for buffer in model.buffers or []]
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            if tensor.quantization is not None:
                tensor.quantization = _SharedTable(tensor.quantization)
        for op in subgraph.operators or []:
            if op.builtinOptions is not None:
                op.builtinOptions = _SharedTable(op.builtinOptions)
            if op.builtinOptions2 is not None:
                op.builtinOptions2 = _SharedTable(op.builtinOptions2)
    builder = _compacting_builder()(len(flat) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return tflite_metadata.append_associated_files(bytes(builder.Output()), packed)


_compact = compact  # convert()'s keyword `compact` hides the function inside it


def _has_offset_data(model) -> bool:
    """Buffers or custom options stored after the flatbuffer (offset > 1: schema.fbs)."""
    if any((buffer.offset or 0) > 1 for buffer in model.buffers or []):
        return True
    return any((op.largeCustomOptionsOffset or 0) > 1
               for subgraph in model.subgraphs or [] for op in subgraph.operators or [])


def _strip_strings(model) -> None:
    """flatbuffer_utils.strip_strings, keeping the input/output tensor names and the signature defs."""
    model.description = None
    for subgraph in model.subgraphs or []:
        subgraph.name = None
        keep = {int(i) for i in _as_list(subgraph.inputs)} | {int(i) for i in _as_list(subgraph.outputs)}
        for index, tensor in enumerate(subgraph.tensors or []):
            if index not in keep:
                tensor.name = None


def _as_list(vector) -> list:
    return [] if vector is None else list(vector)


@functools.cache
def _compacting_builder():
    """A flatbuffers.Builder writing each distinct numeric vector once (flatbuffers is imported
    only here: it comes with TensorFlow, which the web side does not install).

    The generated object API (`ModelT.Pack`) writes every numeric vector with `CreateNumpyVector`:
    this one returns the offset of an identical vector written before, except for a Buffer's data.
    """
    import flatbuffers

    class CompactingBuilder(flatbuffers.Builder):
        def __init__(self, size: int):
            super().__init__(size)
            self.vectors: dict = {}
            self.tables: dict = {}  # for _SharedTable
            self.next_vector_aligned_to: int | None = None  # set by _AlignedBuffer

        def CreateNumpyVector(self, x):
            if self.next_vector_aligned_to:
                alignment, self.next_vector_aligned_to = self.next_vector_aligned_to, None
                return self._aligned_bytes(x, alignment)
            key = (x.dtype.str, x.shape, x.tobytes())
            offset = self.vectors.get(key)
            if offset is None:
                offset = self.vectors[key] = super().CreateNumpyVector(x)
            return offset

        def _aligned_bytes(self, x, alignment: int):
            """A [ubyte] vector whose first byte sits at a multiple of `alignment` from the start of
            the finished buffer (the builder writes back to front and pads the whole to its largest
            alignment when it finishes)."""
            payload = np.asarray(x, dtype=np.uint8).tobytes()
            self.StartVector(1, len(payload), alignment)
            self.head -= len(payload)
            self.Bytes[self.head:self.head + len(payload)] = payload
            return self.EndVector()

    return CompactingBuilder


class _AlignedBuffer:
    """Packs a BufferT with its data 16-byte aligned and not shared with any other buffer."""

    def __init__(self, buffer):
        if buffer.data is not None and not isinstance(buffer.data, np.ndarray):
            buffer.data = np.asarray(buffer.data, dtype=np.uint8)
        self.buffer = buffer

    def Pack(self, builder):
        builder.next_vector_aligned_to = BUFFER_ALIGNMENT if self.buffer.data is not None else None
        try:
            return self.buffer.Pack(builder)
        finally:
            builder.next_vector_aligned_to = None


class _SharedTable:
    """Packs a leaf table (only scalars, strings and numeric vectors) once per distinct content."""

    def __init__(self, table):
        self.table = table

    def Pack(self, builder):
        key = _content_key(self.table)
        if key is None:
            return self.table.Pack(builder)
        offset = builder.tables.get(key)
        if offset is None:
            offset = builder.tables[key] = self.table.Pack(builder)
        return offset


def _content_key(table):
    """A hashable key of a table's fields, or None where one holds a nested table (not shared)."""
    fields = []
    for name, value in sorted(vars(table).items()):
        if isinstance(value, np.ndarray):
            value = ("ndarray", value.dtype.str, value.shape, value.tobytes())
        elif isinstance(value, list):
            if not all(isinstance(v, (int, float, bool)) for v in value):
                return None
            value = ("list", tuple((type(v).__name__, v) for v in value))
        elif value is not None and not isinstance(value, (int, float, bool, str, bytes)):
            return None
        fields.append((name, type(value).__name__, value))
    return (type(table).__qualname__, tuple(fields))


def _check_same_outputs(before: bytes, after: bytes) -> None:
    """Both files load in LiteRT, have the same input and output tensors and give the same bytes out
    on one random input: compaction must not change what ships in any way a phone can see."""
    a, b = _interpreter(model_content=before), _interpreter(model_content=after)
    keys = ("name", "index", "shape", "dtype", "quantization")
    for get in ("get_input_details", "get_output_details"):
        da, db = getattr(a, get)(), getattr(b, get)()
        if [[str(d[k]) for k in keys] for d in da] != [[str(d[k]) for k in keys] for d in db]:
            raise RuntimeError(f"compaction changed the model's {get.removeprefix('get_')}")
    rng = np.random.default_rng(0)
    for detail in a.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            x = rng.uniform(-1.0, 1.0, detail["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, detail["shape"], dtype=dtype, endpoint=True)
        a.set_tensor(detail["index"], x)
        b.set_tensor(detail["index"], x)
    a.invoke()
    b.invoke()
    for detail in a.get_output_details():
        if a.get_tensor(detail["index"]).tobytes() != b.get_tensor(detail["index"]).tobytes():
            raise RuntimeError("compaction changed the model's outputs")


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


def classify_image(*, model_content: bytes, image_path: Path | str, input_spec: InputSpec) -> list[float]:
    """One photo through a .tflite file in LiteRT, prepared as `input_spec` says (the manifest's crop and
    normalisation): the file's scores in its output order (dequantized for uint8 outputs). What a phone
    that follows the manifest computes; the server's own prediction for a stored photo (issue 19)."""
    interpreter = _interpreter(model_content=model_content)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    pixels = np.asarray(data.load_rgb(image_path), dtype=np.uint8)
    interpreter.set_tensor(inp["index"], data.preprocess_for_inference(pixels, input_spec))
    interpreter.invoke()
    scores = interpreter.get_tensor(out["index"])[0].astype(np.float64)
    scale, zero_point = out.get("quantization", (0.0, 0))
    if scale:
        scores = (scores - zero_point) * scale
    return [float(s) for s in scores]
