"""int8 calibration (issue 17): which photos and views measure the activation ranges, and which of several
calibrations ships.

Draw 0 is the calibration every int8 file had before issue 17 (the manifest's view of a seeded draw of
training photos); later draws take other photos through the resizes a phone's SDK makes when handed a whole
frame (data.phone_view). The file kept is the one whose probabilities stay closest to the float model's on
validation photos, as the manifest and as MediaPipe prepare them: on the flowers the recipes' effects were
draw-to-draw noise (bench/README.md, "The phone's own resizing"), so a measured choice beats a fixed recipe.
"""

from __future__ import annotations

import numpy as np

from . import export
from .data import PHONE_RESIZES, clean_view, load_rgb, phone_view
from .model import full_model
from .types import Example, HParams, ModelInfo


def calibration_pixels(examples: list, hparams: HParams, *, draw: int = 0) -> list[np.ndarray]:
    """What the int8 file's activation ranges are measured on: up to `int8_calibration_samples` training
    photos, one view each. Draw 0 is the calibration before issue 17: the manifest's view of a draw of photos
    seeded by `seed`. Each later draw takes other photos and, with `int8_calibration` "phone" (the default),
    sends them in turn through PHONE_RESIZES, so the ranges also hold for a frame the phone's SDK resized
    itself; with "clean" they keep the manifest's view."""
    if hparams.int8_calibration not in ("clean", "phone"):
        raise ValueError(f"unknown int8_calibration {hparams.int8_calibration!r}")
    rng = np.random.default_rng(hparams.seed if draw == 0 else [hparams.seed, draw])
    order = rng.permutation(len(examples))[: max(1, hparams.int8_calibration_samples)]
    size = hparams.backbone.input_size
    if draw == 0 or hparams.int8_calibration == "clean":
        return [clean_view(load_rgb(examples[i].path), size) for i in order]
    return [phone_view(load_rgb(examples[i].path), size, PHONE_RESIZES[(k + draw) % len(PHONE_RESIZES)])
            for k, i in enumerate(order)]


FIDELITY_RESIZES = ("manifest", "shrunk_from_larger", "enlarged")


def fidelity_pixels(examples: list, size: int, *, limit: int = 100, seed: int = 0) -> list[np.ndarray]:
    """Views on which an int8 file's outputs are compared with the float model's (convert_int8_closest):
    up to `limit` photos, each as the manifest prepares it and as MediaPipe resizes a larger and a smaller frame."""
    order = np.random.default_rng(seed).permutation(len(examples))[:limit]
    return [phone_view(image, size, how) for image in (load_rgb(examples[i].path) for i in order)
            for how in FIDELITY_RESIZES]


def calibration_draws(train: list[Example], hparams: HParams) -> list[list[np.ndarray]]:
    """`int8_calibration_draws` calibrations of up to int8_calibration_samples training photos each
    (calibration_pixels); none without int8."""
    if "int8" not in hparams.variants:
        return []
    return [calibration_pixels(train, hparams, draw=d) for d in range(max(1, hparams.int8_calibration_draws))]


def int8_closest(base, head, calibrations, *, train, val, hparams, labels, model_info, log) -> bytes:
    """The int8 file of the calibration closest to the float model (convert_int8_closest), checked on
    validation photos (training photos when there are none: closeness to the float model is not accuracy)."""
    size = hparams.backbone.input_size
    check = fidelity_pixels(val or train, size, seed=hparams.seed)
    flat, distances, kept = convert_int8_closest(base, head, size=size, calibrations=calibrations,
                                                        check_pixels=check, labels=list(labels), info=model_info)
    log(f"int8: {len(calibrations)} calibrations (draw 0 as before issue 17, then {hparams.int8_calibration}), mean L1 "
        f"to the float model on "
        f"{len(check)} views " + ", ".join(f"{d:.4f}" for d in distances) + f": kept draw {kept}")
    return flat


def convert_int8_closest(base, head, *, size: int, calibrations: list[list[np.ndarray]], check_pixels: list[np.ndarray],
                         labels: list[str] | None = None, info: ModelInfo | None = None) -> tuple[bytes, list[float], int]:
    """The int8 file of each calibration, and the one kept: the closest to the float model on `check_pixels`
    (mean L1 distance between the two probability vectors; photos the calibrations did not draw, as the
    manifest and as a phone's SDK resize them). Which calibration lands closest varies from model to model
    (bench/README.md, "The phone's own resizing"); the distance picks it on photos other than the test's.
    Returns (file, distance of each calibration, index kept)."""
    reference = full_model(base, head, raw_pixels=True).predict(
        np.stack(check_pixels).astype(np.float32), batch_size=32, verbose=0).astype(np.float64)
    files, distances = [], []
    for pixels in calibrations:
        flat = export.convert(base, head, variant="int8", size=size, calibration_pixels=pixels, labels=labels, info=info)
        interpreter = export._interpreter(model_content=flat)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        scale, zero_point = out["quantization"]
        total = 0.0
        for view, expected in zip(check_pixels, reference, strict=True):
            interpreter.set_tensor(inp["index"], np.asarray(view, np.uint8)[None])
            interpreter.invoke()
            probabilities = (interpreter.get_tensor(out["index"])[0].astype(np.float64) - zero_point) * scale
            total += float(np.abs(probabilities - expected).sum())
        files.append(flat)
        distances.append(total / max(1, len(check_pixels)))
    kept = int(np.argmin(distances))
    return files[kept], distances, kept
