"""export.compact(): the same model in fewer bytes, for every variant. No training: a tiny random model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from training.ml import BackboneConfig, calibration, export
from training.ml.model import Head, build_backbone

SIZE = 32
VARIANTS = ("float32", "float16", "dynamic", "int8")


@pytest.fixture(scope="module")
def tiny_model():
    base = build_backbone(BackboneConfig(alpha=0.35, input_size=SIZE, base_weights="none"))
    head = Head(3, dropout=0.0, weight_decay=0.0, seed=1)
    rng = np.random.default_rng(5)
    calibration = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(4)]
    return base, head, calibration


@pytest.fixture(scope="module")
def files(tiny_model):
    """variant -> (what the converter wrote, compacted)."""
    base, head, calibration = tiny_model
    out = {}
    for variant in VARIANTS:
        raw = export.convert(base, head, variant=variant, size=SIZE, calibration_pixels=calibration, compact=False)
        out[variant] = (raw, export.compact(raw))
    return out


def interpreter(flat: bytes) -> Interpreter:
    interp = Interpreter(model_content=flat)  # runs the flatbuffer verifier
    interp.allocate_tensors()
    return interp


def outputs(flat: bytes, inputs: list[np.ndarray]) -> list[bytes]:
    interp = interpreter(flat)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    result = []
    for x in inputs:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        result.append(interp.get_tensor(out["index"]).tobytes())
    return result


def random_inputs(flat: bytes, n: int = 3) -> list[np.ndarray]:
    detail = interpreter(flat).get_input_details()[0]
    rng = np.random.default_rng(11)
    if detail["dtype"] == np.uint8:
        return [rng.integers(0, 256, detail["shape"], dtype=np.uint8) for _ in range(n)]
    return [rng.uniform(-1, 1, detail["shape"]).astype(np.float32) for _ in range(n)]


def parse(flat: bytes):
    return schema.ModelT.InitFromPackedBuf(bytearray(flat), 0)


def plain(value):
    """A parsed flatbuffer object as comparable nested Python values."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "__dict__"):
        return (type(value).__name__, {k: plain(v) for k, v in vars(value).items()})
    return value


def vector_position(table, field_slot: int) -> int | None:
    """Where in the file a table's vector field (0-based field number) starts, or None if absent."""
    voffset = table._tab.Offset(4 + 2 * field_slot)
    return table._tab.Vector(voffset) if voffset else None


def buffer_data_positions(flat: bytes) -> list[int]:
    model = schema.Model.GetRootAs(flat, 0)
    positions = []
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            positions.append(vector_position(buffer, 0))
    return positions


def zero_point_vectors(flat: bytes) -> list[tuple[int, bytes]]:
    """(position in the file, content) of every tensor's quantization zero_point vector."""
    model = schema.Model.GetRootAs(flat, 0)
    found = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            q = subgraph.Tensors(t).Quantization()
            if q is not None and not q.ZeroPointIsNone():
                found.append((vector_position(q, 3), q.ZeroPointAsNumpy().tobytes()))
    return found


@pytest.mark.parametrize("variant", VARIANTS)
class TestEveryVariant:
    def test_it_computes_bit_identical_outputs(self, files, variant):
        raw, compacted = files[variant]
        inputs = random_inputs(raw)
        assert outputs(compacted, inputs) == outputs(raw, inputs)

    def test_it_is_smaller(self, files, variant):
        raw, compacted = files[variant]
        assert len(compacted) < len(raw)

    def test_it_keeps_the_input_and_output_tensors(self, files, variant):
        raw, compacted = files[variant]
        before, after = interpreter(raw), interpreter(compacted)
        for get in ("get_input_details", "get_output_details"):
            for a, b in zip(getattr(before, get)(), getattr(after, get)(), strict=True):
                for key in ("name", "index", "dtype", "quantization"):
                    assert a[key] == b[key], key
                assert list(a["shape"]) == list(b["shape"])
                assert a["name"] in ("input", "Identity")  # the converter's names, kept
                qa, qb = a["quantization_parameters"], b["quantization_parameters"]
                for key in ("scales", "zero_points"):
                    assert np.array_equal(qa[key], qb[key]), key
                assert qa["quantized_dimension"] == qb["quantized_dimension"]

    def test_it_changes_nothing_but_the_strings_it_strips(self, files, variant):
        raw, compacted = files[variant]
        expected, actual = parse(raw), parse(compacted)
        expected.description = None
        for subgraph in expected.subgraphs:
            subgraph.name = None
            kept = set(subgraph.inputs.tolist()) | set(subgraph.outputs.tolist())
            for index, tensor in enumerate(subgraph.tensors):
                if index not in kept:
                    tensor.name = None
        assert plain(actual) == plain(expected)
        names = [m.name for m in actual.metadata]
        assert names == [m.name for m in parse(raw).metadata]
        assert {b"CONVERSION_METADATA", b"min_runtime_version"} <= set(names)

    def test_it_aligns_weight_buffers_to_16_bytes(self, files, variant):
        _, compacted = files[variant]
        positions = buffer_data_positions(compacted)
        assert positions and all(p % 16 == 0 for p in positions)

    def test_compacting_twice_changes_nothing(self, files, variant):
        _, compacted = files[variant]
        again = export.compact(compacted)
        assert len(again) == len(compacted)
        assert again == compacted


class TestInt8:
    def test_it_writes_each_distinct_zero_point_vector_once(self, files):
        raw, compacted = files["int8"]
        raw_vectors = zero_point_vectors(raw)
        counts = Counter(content for _, content in raw_vectors)
        assert max(counts.values()) > 1, "the converter writes one zero point vector per tensor"
        # Per-channel int8 weights and int32 biases are symmetric: all their zero points are 0.
        assert sum(len(content) for _, content in raw_vectors if not any(content)) > len(raw) // 20
        after = zero_point_vectors(compacted)
        assert [content for _, content in after] == [content for _, content in raw_vectors]
        assert len({position for position, _ in after}) == len(counts)
        duplicated_bytes = sum((n - 1) * len(content) for content, n in counts.items())
        assert len(raw) - len(compacted) >= duplicated_bytes

    def test_it_keeps_raw_pixel_input(self, files):
        _, compacted = files["int8"]
        export._check_raw_pixel_input(compacted)


class TestConvert:
    def test_it_compacts_every_variant_by_default(self, tiny_model, files):
        base, head, calibration = tiny_model
        for variant in ("float32", "int8"):
            flat = export.convert(base, head, variant=variant, size=SIZE, calibration_pixels=calibration)
            assert flat == files[variant][1], variant


class TestOtherFiles:
    def test_it_keeps_signature_defs(self, tmp_path):
        from training.ml.model import tf_setup

        tf = tf_setup()
        module = tf.Module()
        module.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4))
        module.serve = tf.function(lambda x: {"scores": tf.matmul(x, module.w)},
                                   input_signature=[tf.TensorSpec([1, 3], tf.float32, name="features")])
        tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.serve})
        raw = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved")).convert()
        compacted = export.compact(raw)
        before, after = interpreter(raw), interpreter(compacted)
        assert before.get_signature_list() == after.get_signature_list() != {}
        x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
        expected = before.get_signature_runner("serving_default")(features=x)
        actual = after.get_signature_runner("serving_default")(features=x)
        assert expected.keys() == actual.keys() == {"scores"}
        assert actual["scores"].tobytes() == expected["scores"].tobytes()

    def test_it_leaves_files_with_data_outside_the_flatbuffer_unchanged(self, files):
        import flatbuffers

        model = parse(files["float32"][0])
        big = max(model.buffers, key=lambda b: 0 if b.data is None else b.data.size)
        big.offset, big.size, big.data = 1 << 31, big.data.size, None  # as the converter writes > 2 GB models
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        flat = bytes(builder.Output())
        assert export.compact(flat) == flat


def test_the_int8_file_kept_is_the_calibration_closest_to_the_float_model(tiny_model):
    """calibration.convert_int8_closest (the night's int8 file, issue 17): one file per calibration, the closest kept."""
    base, head, pixels = tiny_model
    check = [np.random.default_rng(9).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(3)]
    flat, distances, kept = calibration.convert_int8_closest(base, head, size=SIZE, check_pixels=check,
                                                        calibrations=[pixels[:2], pixels[2:]])
    assert len(distances) == 2 and kept == int(np.argmin(distances)) and all(d > 0 for d in distances)
    assert distances[0] != distances[1]  # two calibrations, two files: the choice is a real one
    assert interpreter(flat).get_input_details()[0]["dtype"] == np.uint8  # the kept file: int8, raw pixels in
