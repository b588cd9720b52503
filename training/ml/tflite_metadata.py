"""TFLite Model Metadata in every exported .tflite file, written with MediaPipe's metadata writers.

What it gives a phone: MediaPipe Tasks' ImageClassifier (Android, iOS, web, Python) and any other
reader of TFLite Model Metadata find in the file itself the model's name, version, author and
licence, the input image's colour space and normalisation, and the labels in output order (an
associated `labels.txt`, packed in a zip appended after the flatbuffer, as the schema says). The
manifest says the same things as JSON; `check()` reads the metadata back from the written bytes and
refuses a file whose labels or normalisation disagree with it.

The mediapipe wheels since 0.10.30 (1.2.2 here) ship the writers as Python but without one compiled
helper they import, `_pywrap_metadata_version` (the minimum metadata parser version of a metadata
buffer); older wheels have it but need protobuf < 5, which TensorFlow 2.21 cannot use.
`_version_helper` provides it from the rule of MediaPipe's `metadata_version.cc` (each schema member
added after 1.0.0 raises the minimum to the version that added it), so the writers run unchanged.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
import types
import zipfile
from dataclasses import dataclass

from .quiet import dispose_metadata_writer
from .types import InputSpec, ModelInfo

LABELS_FILE = "labels.txt"
_HELPER = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


class MetadataMismatch(RuntimeError):
    """The metadata in a .tflite file does not say what the manifest says."""


@dataclass
class FileMetadata:
    """What a reader of TFLite Model Metadata learns from a file."""

    name: str
    version: str
    description: str
    author: str
    license: str
    min_parser_version: str
    labels: list[str]
    input_mean: list[float] | None  # None where the metadata has no NormalizationOptions
    input_std: list[float] | None
    color_space: str
    json: dict


def write(flat: bytes, *, labels: list[str], input_spec: InputSpec, info: ModelInfo) -> bytes:
    """`flat` with TFLite Model Metadata for an image classifier and `labels.txt` packed in.

    MediaPipe's image classifier writer needs the normalisation for float inputs; for the uint8
    (int8) variant the spec's mean 0 / std 1 say "raw pixels", which is also what the writer records.
    """
    _version_helper()
    from mediapipe.tasks.python.metadata.metadata_writers import image_classifier, metadata_info, metadata_writer

    writer = image_classifier.MetadataWriter.create(
        bytearray(flat), input_norm_mean=list(input_spec.mean), input_norm_std=list(input_spec.std),
        labels=metadata_writer.Labels().add(list(labels)),
    )
    # The public add_general_info() takes a name and a description only; the schema's general
    # fields also hold version, author and licence, and GeneralMd writes them all.
    writer.writer._general_md = metadata_info.GeneralMd(
        name=info.name, version=info.version, description=info.description, author=info.author,
        licenses=info.license)
    try:
        populated, _ = writer.populate()
    finally:
        dispose_metadata_writer(writer)  # no traceback from its __del__ at exit (quiet.py)
    return bytes(populated)


def read(flat: bytes) -> FileMetadata:
    """The metadata of a .tflite file, read back with MediaPipe's MetadataDisplayer."""
    _version_helper()
    from mediapipe.tasks.python.metadata.metadata import MetadataDisplayer

    try:
        displayer = MetadataDisplayer.with_model_buffer(bytearray(flat))
    except ValueError as exc:  # "The model does not have metadata."
        raise MetadataMismatch(f"no TFLite model metadata: {exc}") from None
    doc = json.loads(displayer.get_metadata_json())
    subgraph = doc["subgraph_metadata"][0]
    image = subgraph["input_tensor_metadata"][0]
    scores = subgraph["output_tensor_metadata"][0]
    label_files = [f["name"] for f in scores.get("associated_files", []) if f.get("type") == "TENSOR_AXIS_LABELS"]
    if label_files != [LABELS_FILE] or LABELS_FILE not in displayer.get_packed_associated_file_list():
        raise MetadataMismatch(f"the output has label files {label_files}, not one packed {LABELS_FILE}")
    labels = displayer.get_associated_file_buffer(LABELS_FILE).decode("utf-8").split("\n")
    normalization = next((unit["options"] for unit in image.get("process_units", [])
                          if unit.get("options_type") == "NormalizationOptions"), None)
    properties = image.get("content", {}).get("content_properties", {})
    return FileMetadata(
        name=doc.get("name", ""), version=doc.get("version", ""), description=doc.get("description", ""),
        author=doc.get("author", ""), license=doc.get("license", ""),
        min_parser_version=doc.get("min_parser_version", ""),
        labels=labels,
        input_mean=[float(v) for v in normalization["mean"]] if normalization else None,
        input_std=[float(v) for v in normalization["std"]] if normalization else None,
        color_space=properties.get("color_space", ""),
        json=doc,
    )


def check(flat: bytes, *, labels: list[str], input_spec: InputSpec | dict, info: ModelInfo | None = None) -> FileMetadata:
    """Read the metadata back and compare it with the manifest's labels and input spec (and the
    model information, when given). Raises MetadataMismatch naming the first disagreement."""
    spec = input_spec if isinstance(input_spec, dict) else vars(input_spec)
    found = read(flat)
    if found.labels != list(labels):
        raise MetadataMismatch(f"metadata labels {found.labels} differ from the manifest's {list(labels)}")
    if found.color_space != "RGB":
        raise MetadataMismatch(f"metadata colour space {found.color_space!r}, the manifest's input is RGB")
    if spec["dtype"] == "float32":
        # A float input must say how to normalise: MediaPipe refuses the file otherwise.
        if found.input_mean is None or found.input_std is None:
            raise MetadataMismatch("a float32 input without NormalizationOptions metadata")
        if not (_close(found.input_mean, spec["mean"]) and _close(found.input_std, spec["std"])):
            raise MetadataMismatch(f"metadata normalisation mean {found.input_mean} std {found.input_std}, "
                                   f"the manifest's mean {spec['mean']} std {spec['std']}")
    elif found.input_mean is not None and not (_close(found.input_mean, spec["mean"]) and _close(found.input_std, spec["std"])):
        raise MetadataMismatch(f"metadata normalisation mean {found.input_mean} std {found.input_std} "
                               f"for a {spec['dtype']} input the manifest takes as mean {spec['mean']} std {spec['std']}")
    if info is not None:
        expected = {"name": info.name, "version": info.version, "description": info.description,
                    "author": info.author, "license": info.license}
        wrong = {k: getattr(found, k) for k, v in expected.items() if getattr(found, k) != v}
        if wrong:
            raise MetadataMismatch(f"metadata general fields differ: {wrong}")
    return found


def _close(a: list[float], b: list[float]) -> bool:
    # The schema stores float32; the manifest's values (127.5, 0, 1) are exact in float32.
    return len(a) == len(b) and all(abs(float(x) - float(y)) <= 1e-6 * max(1.0, abs(float(y))) for x, y in zip(a, b))


def split_associated_files(data: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A .tflite file's flatbuffer and the (name, bytes) of the files packed after it (none: [])."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            members = [(info.filename, archive.read(info)) for info in infos]
            start = min((info.header_offset for info in infos), default=len(data))
    except zipfile.BadZipFile:
        return data, []
    if not members or start <= 0 or data[start:start + 4] != b"PK\x03\x04":
        return data, []  # bytes that only looked like a zip's end record
    return data[:start], members


def append_associated_files(flat: bytes, members: list[tuple[str, bytes]]) -> bytes:
    """The flatbuffer with `members` packed after it as the metadata populator packs them (a zip
    appended to the file), with fixed timestamps so the same model always gives the same bytes."""
    if not members:
        return flat
    buffer = io.BytesIO()
    buffer.write(flat)
    with zipfile.ZipFile(buffer, "a") as archive:
        for name, payload in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), payload)
    return buffer.getvalue()


# --- the compiled helper the mediapipe wheel lacks -----------------------------------------------

def min_parser_version(metadata_buffer: bytes) -> str:
    """The lowest metadata parser version that can read this ModelMetadata buffer: the highest
    version among the schema members it uses that were added after 1.0.0
    (mediapipe/tasks/cc/metadata/metadata_version.cc)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    file_type, option, content = fb.AssociatedFileType, fb.ProcessUnitOptions, fb.ContentProperties

    root = fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buffer), 0)
    meta = fb.ModelMetadataT.InitFromObj(root)
    needed = [(1, 0, 0)]

    def files(items):
        for f in items or []:
            if f.type == file_type.VOCABULARY:
                needed.append((1, 0, 1))
            if f.type == file_type.SCANN_INDEX_FILE:
                needed.append((1, 4, 0))
            if f.version is not None:
                needed.append((1, 4, 1))

    def units(items):
        for unit in items or []:
            if unit.optionsType in (option.BertTokenizerOptions, option.SentencePieceTokenizerOptions):
                needed.append((1, 1, 0))
            if unit.optionsType == option.RegexTokenizerOptions:
                needed.append((1, 2, 1))

    def tensors(items):
        for tensor in items or []:
            files(tensor.associatedFiles)
            units(tensor.processUnits)
            if tensor.content is not None and tensor.content.contentPropertiesType == content.AudioProperties:
                needed.append((1, 3, 0))

    for subgraph in meta.subgraphMetadata or []:
        tensors(subgraph.inputTensorMetadata)
        tensors(subgraph.outputTensorMetadata)
        files(subgraph.associatedFiles)
        for present, version in ((subgraph.inputProcessUnits, (1, 1, 0)), (subgraph.outputProcessUnits, (1, 1, 0)),
                                 (subgraph.inputTensorGroups, (1, 2, 0)), (subgraph.outputTensorGroups, (1, 2, 0)),
                                 (subgraph.customMetadata, (1, 5, 0))):
            if present is not None:
                needed.append(version)
        units(subgraph.inputProcessUnits)
        units(subgraph.outputProcessUnits)
    files(meta.associatedFiles)
    return ".".join(str(n) for n in max(needed))


def _version_helper() -> None:
    """Make `_pywrap_metadata_version` importable: the real one if the wheel has it, else ours."""
    if _HELPER in sys.modules:
        return
    try:
        importlib.import_module(_HELPER)
        return
    except ImportError:
        pass
    parts = _HELPER.split(".")
    for depth in range(3, len(parts)):  # mediapipe.tasks.cc, ...metadata, ...python
        name = ".".join(parts[:depth])
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = []
            sys.modules[name] = package
    helper = types.ModuleType(_HELPER)
    helper.GetMinimumMetadataParserVersion = min_parser_version
    sys.modules[_HELPER] = helper
    for depth in range(len(parts) - 1, 2, -1):
        setattr(sys.modules[".".join(parts[:depth])], parts[depth], sys.modules[".".join(parts[:depth + 1])])
