"""The Core ML variant of a real (tiny) training run: what can be checked without Apple's runtime.

Core ML runs only on Apple systems; here the package's specification is read with coremltools:
its input, its preprocessing, its labels, its int8 weights, and that it loads as a model spec.
docs/training-ml.md says how to compare its outputs with the .tflite file on a Mac.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter

import numpy as np
import pytest

from tests.training.ml.conftest import FIRST_RUN_INFO, SIZE, tiny_hparams
from training.ml import COREML, VARIANTS, MemoryFeatureStore, train_and_export
from training.ml import coreml

pytestmark = pytest.mark.slow

INFO = FIRST_RUN_INFO


@pytest.fixture(scope="module")
def coreml_run(first_run, tmp_path_factory):
    """The Core ML package of the shared tiny run (exported beside its .tflite files)."""
    result, _, _ = first_run
    package = coreml.unzip_package(result.coreml.path, tmp_path_factory.mktemp("unzipped"))
    return result, package


def program(package):
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    main = spec.mlProgram.functions["main"]
    return spec, main.block_specializations[main.opset].operations


def const_value(operations, name):
    op = next(o for o in operations if o.type == "const" and o.outputs[0].name == name)
    return list(op.attributes["val"].immediateValue.tensor.floats.values)


class TestCoreMLVariant:
    def test_it_is_exported_next_to_the_tflite_files(self, coreml_run):
        result, _ = coreml_run
        assert result.failed_variants == {}
        assert set(result.variants) == set(VARIANTS)  # evaluated in LiteRT; Core ML is not
        assert result.coreml.path.parent == result.variants["float32"].path.parent
        data = result.coreml.path.read_bytes()
        assert result.coreml.path.name == "model-coreml.mlpackage.zip"
        assert (result.coreml.size_bytes, result.coreml.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        spec = result.coreml.input_spec
        assert (spec.height, spec.width, spec.resize, spec.dtype) == (SIZE, SIZE, "center_crop", "uint8")

    def test_its_input_is_an_rgb_image_normalised_as_in_training(self, coreml_run):
        _, package = coreml_run
        spec, operations = program(package)
        (image,) = spec.description.input
        assert image.name == "image"
        assert image.type.WhichOneof("Type") == "imageType"
        assert (image.type.imageType.width, image.type.imageType.height) == (SIZE, SIZE)
        assert image.type.imageType.ColorSpace.Name(image.type.imageType.colorSpace) == "RGB"
        # (pixel * 1/127.5) - 1 == (pixel - 127.5) / 127.5: MobileNetV2's preprocessing in training.
        assert const_value(operations, "image__scaled___y_0") == pytest.approx([1 / 127.5])
        assert const_value(operations, "image__biased___y_0") == pytest.approx([-1.0] * 3)
        first = [o for o in operations if o.type != "const"][:2]
        assert [o.type for o in first] == ["mul", "add"]
        assert first[0].inputs["x"].arguments[0].name == "image"

    def test_it_is_a_classifier_with_the_labels_in_output_order(self, coreml_run, photos):
        _, package = coreml_run
        spec, operations = program(package)
        assert spec.description.predictedFeatureName == "classLabel"
        assert spec.description.predictedProbabilitiesName == "classLabel_probs"
        classify = next(o for o in operations if o.type == "classify")
        values = classify.inputs["classes"].arguments[0].value.immediateValue.list.values
        assert [v.immediateValue.tensor.strings.values[0] for v in values] == photos.labels

    def test_its_weights_are_8_bit(self, coreml_run):
        import coremltools as ct

        _, package = coreml_run
        _, operations = program(package)
        kinds = Counter(o.type for o in operations)
        dtype = ct.proto.MIL_pb2.DataType
        quantized = [o for o in operations if o.type == "constexpr_affine_dequantize"]
        assert quantized and all(dtype.Name(o.attributes["quantized_data"].type.tensorType.dataType) == "INT8"
                                 for o in quantized)
        # Every convolution and the classifier with more than WEIGHT_THRESHOLD weights reads int8 weights.
        produced_by = {o.outputs[0].name: o.type for o in operations}
        weighted = [o for o in operations if o.type in ("conv", "matmul", "linear")]
        big = [o for o in weighted if _elements(operations, o) > coreml.WEIGHT_THRESHOLD]
        assert big and all(produced_by[_weight_name(o)] == "constexpr_affine_dequantize" for o in big)
        # No float tensor above the threshold is left.
        floats = [o for o in operations if o.type == "const" and _const_elements(o) > coreml.WEIGHT_THRESHOLD]
        assert floats == []
        assert kinds["conv"] > 10
        # The weights file holds about one byte per weight: far below float16's two.
        weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
        total = sum(_elements(operations, o) for o in weighted)
        assert weights.stat().st_size < 1.3 * total

    def test_it_loads_as_a_model_spec_with_the_model_information(self, coreml_run, photos):
        import coremltools as ct

        _, package = coreml_run
        model = ct.models.MLModel(str(package), skip_model_load=True)
        assert model.get_spec().WhichOneof("Type") == "mlProgram"
        assert (model.version, model.author, model.license) == (INFO.version, INFO.author, INFO.license)
        assert model.short_description == INFO.description
        assert "com.github.apple.coremltools.conversion_date" not in model.user_defined_metadata
        assert model.user_defined_metadata["com.crowdlens.labels"] == '["' + '", "'.join(photos.labels) + '"]'

    def test_its_zip_is_reproducible(self, coreml_run, tmp_path):
        result, package = coreml_run
        again = tmp_path / "again.zip"
        coreml.zip_package(package, again)
        assert again.read_bytes() == result.coreml.path.read_bytes()
        with zipfile.ZipFile(result.coreml.path) as archive:
            names = archive.namelist()
        assert names == sorted(names) and all(n.startswith("model.mlpackage/") for n in names)
        assert "model.mlpackage/Manifest.json" in names


class TestCoreMLFailure:
    def test_a_failed_conversion_fails_only_that_variant(self, photos, tmp_path, monkeypatch):
        """A converter error (here forced: the real converter works on this model) leaves the
        .tflite files exported and evaluated and names the failure."""
        import coremltools as ct

        def unsupported(*args, **kwargs):
            raise NotImplementedError("Conversion for TF op 'Foo' not implemented.")

        monkeypatch.setattr(ct, "convert", unsupported)
        result = train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels,
                                  hparams=tiny_hparams(variants=("int8", COREML), epochs_fine_tune=1, epochs_head=4),
                                  feature_store=MemoryFeatureStore(), out_dir=tmp_path, log=lambda m: None)
        assert result.coreml is None
        assert "Foo" in result.failed_variants[COREML]
        assert set(result.variants) == {"int8"} and result.variants["int8"].path.is_file()
        assert any("not exported: coreml" in note for note in result.notes)
        assert not list(tmp_path.glob("*coreml*"))


def _weight_name(op) -> str:
    return op.inputs["weight" if "weight" in op.inputs else "y"].arguments[0].name


def _elements(operations, op) -> int:
    name = _weight_name(op)
    producer = next((o for o in operations if o.outputs[0].name == name), None)
    if producer is None:
        return 0
    return int(np.prod([d.constant.size for d in producer.outputs[0].type.tensorType.dimensions]))


def _const_elements(op) -> int:
    value = op.attributes["val"]
    if value.type.WhichOneof("type") != "tensorType":
        return 0
    return int(np.prod([d.constant.size for d in value.type.tensorType.dimensions] or [1]))
