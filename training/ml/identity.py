"""What a .tflite file computes, apart from what it says about itself.

Two runs that train the same weights write files that differ only in their TFLite Model Metadata
(which run, which dates) and the files packed after the flatbuffer (labels). ``content_sha256`` hashes
the model with those left out, so publishing can tell "the same model again" from a new one.
Imports no TensorFlow (the flatbuffers schema only).
"""

from __future__ import annotations

import hashlib

TFLITE_FILE_IDENTIFIER = b"TFL3"


def content_sha256(flat: bytes) -> str:
    """sha256 of the model re-packed without its metadata entries, their buffers and any trailing packed files.

    Packing the same parsed model is deterministic, so equal weights and graph give equal digests;
    any other byte of the model (a weight, an op, a tensor) changes it.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flat), 0)  # reads from the root: trailing files drop off
    # Drop the metadata's buffers (a file with metadata has more buffers) and renumber the tensors' buffers.
    dropped = {entry.buffer for entry in model.metadata or []}
    kept = [i for i in range(len(model.buffers or [])) if i not in dropped]
    renumber = {old: new for new, old in enumerate(kept)}
    model.buffers = [model.buffers[i] for i in kept]
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            tensor.buffer = renumber.get(tensor.buffer, 0)
    model.metadata = None
    model.metadataBuffer = None
    model.description = None
    builder = flatbuffers.Builder(len(flat) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return hashlib.sha256(bytes(builder.Output())).hexdigest()
