"""The Core ML variant: an 8-bit-weight ML Program classifier for iOS, zipped for download.

Converted with coremltools from the same trained Keras model as the .tflite files (the float
model, normalisation inside the file):
- input `image`, an ImageType of input_size x input_size RGB whose scale 1/127.5 and bias -1 give
  (pixel - 127.5) / 127.5, the float variants' normalisation; the crop is the phone's, as for
  the .tflite files: the largest centred square (Vision: `imageCropAndScaleOption = .centerCrop`);
- a classifier (ClassifierConfig) with the labels in output order: outputs `classLabel` and
  `classLabel_probs`;
- weights of more than `WEIGHT_THRESHOLD` elements linearly quantized to int8
  (coremltools.optimize.coreml.linear_quantize_weights, per channel, symmetric); smaller tensors
  (biases, BatchNormalization folded into them) stay float16, the ML Program's precision.

coremltools converts tf_keras models only as TensorFlow graphs: the model is wrapped in a
tf.function with a named input signature and converted from its concrete function, as the
.tflite converter is. Core ML does not run on Linux; what can be checked here (the spec, the
labels, the int8 weights) is checked by tests; docs/training-ml.md says how to compare outputs on a
Mac.

The zip is reproducible: entries sorted, fixed timestamps, the package manifest's random item
identifiers replaced by ones derived from the item paths, and coremltools' conversion date left out.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
import zipfile
from pathlib import Path

from .model import full_model, tf_setup
from .quiet import no_progress_bars, quiet_loggers
from .types import CoreMLResult, InputSpec, ModelInfo

INPUT_NAME = "image"
LABEL_OUTPUT = "classLabel"
PROBABILITIES_OUTPUT = "classLabel_probs"
SCALE = 1.0 / 127.5
BIAS = -1.0
WEIGHT_THRESHOLD = 2048  # coremltools' default: tensors with more elements are quantized
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_IDS = uuid.UUID("5f1c3e0a-6c1b-4b7e-9a53-0c7d2c1f5e11")  # namespace for the package's item identifiers


class CoreMLExportFailed(RuntimeError):
    """The Core ML conversion failed; only this variant is missing from the run."""


def input_spec(size: int) -> InputSpec:
    """The manifest's input spec for the Core ML file: like int8's, raw 0-255 RGB pixels of the
    centred square; the model's ImageType does the float variants' normalisation itself."""
    from .data import uint8_input_spec

    return uint8_input_spec(size)


def export(base, head, *, labels: list[str], size: int, out_dir: Path, info: ModelInfo) -> CoreMLResult:
    """Convert, quantize, save and zip; raises CoreMLExportFailed with the reason."""
    try:
        package = convert(base, head, labels=labels, size=size, info=info)
    except Exception as exc:  # the converter raises anything from ValueError to NotImplementedError
        raise CoreMLExportFailed(f"Core ML conversion failed: {type(exc).__name__}: {exc}") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model-coreml.mlpackage.zip"
    with tempfile.TemporaryDirectory(prefix="coreml-") as tmp:
        folder = Path(tmp) / "model.mlpackage"
        package.save(str(folder))
        part = path.with_name(path.name + ".part")
        zip_package(folder, part)
        part.replace(path)
    data = path.read_bytes()
    return CoreMLResult(path=path, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        input_spec=input_spec(size))


def convert(base, head, *, labels: list[str], size: int, info: ModelInfo):
    """The quantized coremltools MLModel (not yet saved)."""
    quiet_loggers()  # before the import: its "Failed to load _MLModelProxy" is expected on Linux
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    no_progress_bars()  # its tqdm bars would nest inside `manage.py train`'s own
    tf = tf_setup()
    model = full_model(base, head, raw_pixels=False)
    module = tf.Module()
    module.serve = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name=INPUT_NAME)])
    mlmodel = ct.convert(
        [module.serve.get_concrete_function()], source="tensorflow", convert_to="mlprogram",
        inputs=[ct.ImageType(name=INPUT_NAME, shape=(1, size, size, 3), scale=SCALE, bias=[BIAS] * 3,
                             color_layout=ct.colorlayout.RGB)],
        classifier_config=ct.ClassifierConfig(list(labels)),
        minimum_deployment_target=ct.target.iOS16,  # constexpr int8 weights need iOS 16 / macOS 13
        skip_model_load=True,  # Core ML itself exists only on Apple systems
    )
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD))
    mlmodel = cto.linear_quantize_weights(mlmodel, config=config)
    mlmodel.short_description = info.description
    mlmodel.author = info.author
    mlmodel.license = info.license
    mlmodel.version = info.version
    mlmodel.input_description[INPUT_NAME] = (f"RGB photo, the largest centred square resized to {size}x{size} "
                                             "(Vision: imageCropAndScaleOption = .centerCrop)")
    mlmodel.output_description[LABEL_OUTPUT] = "The most probable label"
    mlmodel.output_description[PROBABILITIES_OUTPUT] = "Probability of every label"
    mlmodel.user_defined_metadata.pop("com.github.apple.coremltools.conversion_date", None)
    mlmodel.user_defined_metadata["com.crowdlens.labels"] = json.dumps(list(labels))
    mlmodel.user_defined_metadata["com.crowdlens.name"] = info.name
    return mlmodel


def zip_package(folder: Path, target: Path) -> None:
    """Zip a saved .mlpackage folder (as `model.mlpackage/...`), reproducibly."""
    manifest_path = folder / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    renamed = {old: str(uuid.uuid5(_IDS, entry["path"])) for old, entry in manifest["itemInfoEntries"].items()}
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in manifest["itemInfoEntries"].items()}
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())


def unzip_package(archive: Path, into: Path) -> Path:
    """The .mlpackage folder inside a downloaded zip (for tests and for `coremltools` on a Mac)."""
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        if any(n.startswith("/") or ".." in Path(n).parts for n in names):
            raise ValueError("unsafe path in the Core ML zip")
        z.extractall(into)
    roots = {n.split("/")[0] for n in names}
    if len(roots) != 1:
        raise ValueError(f"the zip holds {sorted(roots)}, not one .mlpackage")
    return into / roots.pop()


