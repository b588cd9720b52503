"""Images in, tensors out: loading, the phone's preprocessing, augmentation, and tf.data pipelines.

One preprocessing for everything: decode, centre-crop to a square, resize (bilinear, antialiased)
to the input size. The phone does the same (InputSpec, slide 2: "check the cropping used").
Augmentation (slide 42) is drawn per (photo, view, seed), so cached augmented views are
reproducible; evaluation and calibration never see it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from .types import MOBILENET_MEAN, MOBILENET_STD, HParams, InputSpec

RESAMPLE = Image.Resampling.BILINEAR


def load_rgb(path: Path | str) -> Image.Image:
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")


def center_square(image: Image.Image) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def clean_view(image: Image.Image, size: int) -> np.ndarray:
    """The evaluation view: centre crop and resize, uint8 HxWx3."""
    return np.asarray(center_square(image).resize((size, size), RESAMPLE), dtype=np.uint8)


# How a phone may resize when it hands its SDK the whole frame (MediaPipe Tasks' own resize: resize_unfiltered):
# the int8 calibration sees these beside the manifest's own view (calibration.calibration_pixels).
PHONE_RESIZES = ("manifest", "shrunk", "shrunk_from_larger", "enlarged")


def resize_unfiltered(image: Image.Image, size: int) -> np.ndarray:
    """The square resize MediaPipe Tasks makes itself when handed a whole frame (its CPU ImageToTensor: an
    OpenCV bilinear warp of the region's corners onto the tensor's): output pixel x samples input x * in/out,
    corner-aligned, so the content lands shifted by (in/out - 1) / 2 input pixels against a centre-aligned
    resize such as the manifest's, and nothing filters a shrink. Measured against MediaPipe Tasks 1.2.2 by
    tests/training/ml/test_phone_resize.py."""
    width, height = image.size
    sx, sy = width / size, height / size
    # PIL's transform maps the output pixel centre (x + 0.5) to input coordinates in which pixel i spans
    # [i, i + 1): x * s + 0.5 (input pixel x * s's centre) needs the constant 0.5 - s / 2.
    affine = (sx, 0.0, 0.5 - sx / 2, 0.0, sy, 0.5 - sy / 2)
    return np.asarray(image.transform((size, size), Image.Transform.AFFINE, affine, resample=RESAMPLE), np.uint8)


def phone_view(image: Image.Image, size: int, how: str) -> np.ndarray:
    """The photo's centred square at the input size as a phone may make it (PHONE_RESIZES): the manifest's own
    resize; shrunk without antialiasing (from the photo as stored, or from a frame 2.5 times larger, as a
    camera's is); or enlarged without it from a frame 0.75 times the size (a small photo, a large input)."""
    square = center_square(image)
    if how == "manifest":
        return np.asarray(square.resize((size, size), RESAMPLE), np.uint8)
    if how == "shrunk":
        return resize_unfiltered(square, size)
    if how == "shrunk_from_larger":
        side = max(size, round(square.size[0] * 2.5))
        return resize_unfiltered(square.resize((side, side), Image.Resampling.BICUBIC), size)
    if how == "enlarged":
        side = max(8, round(min(square.size[0], size) * 0.75))
        return resize_unfiltered(square.resize((side, side), RESAMPLE), size)
    raise ValueError(f"unknown phone resize {how!r}")


def normalize(pixels: np.ndarray) -> np.ndarray:
    """Raw 0-255 pixels to the backbone's float input, (p - 127.5) / 127.5."""
    return (pixels.astype(np.float32) - np.float32(MOBILENET_MEAN[0])) / np.float32(MOBILENET_STD[0])


def augment_signature(hparams: HParams) -> str:
    """Short digest of the augmentation settings: part of the cache identity of augmented views."""
    knobs = {
        k: v
        for k, v in asdict(hparams).items()
        if k.startswith("augment") or k == "seed"
    }
    return hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:10]


def _view_rng(key: str, view: int, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{view}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def augmented_view(image: Image.Image, size: int, hparams: HParams, *, key: str, view: int) -> np.ndarray:
    """One phone-like variation of a photo: small rotation, crop, brightness, contrast, blur.

    Deterministic for (key, view, seed). The crop keeps at least (1 - augment_crop) of the
    centre square's side, anywhere inside the photo, so objects near the edge stay in view.
    """
    rng = _view_rng(key, view, hparams.seed)
    width, height = image.size
    side = min(width, height)
    crop_side = side * (1.0 - rng.uniform(0.0, max(hparams.augment_crop, 0.0)))
    # A rotated square needs a bigger source region to avoid black corners; take it from inside the photo.
    angle = rng.uniform(-hparams.augment_rotation_deg, hparams.augment_rotation_deg)
    theta = np.deg2rad(abs(angle))
    need = crop_side * (np.cos(theta) + np.sin(theta))
    if need > side:
        crop_side = side / (np.cos(theta) + np.sin(theta))
        need = side
    cx = rng.uniform(need / 2, width - need / 2)
    cy = rng.uniform(need / 2, height - need / 2)
    region = image.crop((int(cx - need / 2), int(cy - need / 2), int(cx + need / 2), int(cy + need / 2)))
    if angle:
        region = region.rotate(angle, resample=RESAMPLE)
    inner = (region.size[0] - crop_side) / 2
    region = region.crop((int(inner), int(inner), int(inner + crop_side), int(inner + crop_side)))
    out = region.resize((size, size), RESAMPLE)
    if hparams.augment_flip and rng.uniform() < 0.5:
        out = ImageOps.mirror(out)
    if hparams.augment_brightness:
        out = ImageEnhance.Brightness(out).enhance(1.0 + rng.uniform(-hparams.augment_brightness, hparams.augment_brightness))
    if hparams.augment_contrast:
        out = ImageEnhance.Contrast(out).enhance(1.0 + rng.uniform(-hparams.augment_contrast, hparams.augment_contrast))
    if rng.uniform() < hparams.augment_blur:
        out = out.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 1.0) * size / 128))
    return np.asarray(out, dtype=np.uint8)


def views_for(path: Path, size: int, hparams: HParams, *, key: str, augmented: int) -> np.ndarray:
    """What features are computed from, uint8 VxHxWx3: the clean view alone when `augmented` is 0
    (validation photos; training photos with augmentation off), else `augmented` augmented views
    and not the clean one, which training with augmentation never draws."""
    image = load_rgb(path)
    if augmented <= 0:
        return clean_view(image, size)[None]
    return np.stack([augmented_view(image, size, hparams, key=key, view=v) for v in range(1, augmented + 1)])


def preprocess_for_inference(image_rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Exactly what the manifest tells a phone to do, as a batch of one (1, H, W, 3) ready for set_tensor.

    `image_rgb` is an HxWx3 uint8 RGB array. "center_crop": the largest centred square, then a
    bilinear resize; "stretch": resize the whole image. uint8 inputs are the raw pixels; float32
    inputs are (pixel - mean) / std per channel.
    """
    image = Image.fromarray(np.asarray(image_rgb, dtype=np.uint8), "RGB")
    if spec.resize == "center_crop":
        image = center_square(image)
    elif spec.resize != "stretch":
        raise ValueError(f"unknown resize {spec.resize!r}")
    pixels = np.asarray(image.resize((spec.width, spec.height), RESAMPLE), dtype=np.uint8)
    if spec.dtype == "uint8":
        return pixels[None, ...]
    if spec.dtype == "float32":
        mean = np.asarray(spec.mean, dtype=np.float32)
        std = np.asarray(spec.std, dtype=np.float32)
        return ((pixels.astype(np.float32) - mean) / std)[None, ...]
    raise ValueError(f"unknown dtype {spec.dtype!r}")


def float_input_spec(size: int) -> InputSpec:
    return InputSpec(height=size, width=size, resize="center_crop", dtype="float32",
                     mean=list(MOBILENET_MEAN), std=list(MOBILENET_STD))


def uint8_input_spec(size: int) -> InputSpec:
    return InputSpec(height=size, width=size, resize="center_crop", dtype="uint8", mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])


def feature_dataset(features, labels: np.ndarray, *, batch_size: int, training: bool, seed: int,
                    sample_weights: np.ndarray | None = None):
    """tf.data over cached features, read a batch at a time.

    `features` is N x V x ...: a FeatureArray on disk or a numpy array (V cached views per photo:
    the clean view alone, or the augmented views of training photos, see `views_for`; the clean view
    is not among those: drawing it too measured ~2 points worse on the flowers). Training draws one
    of the V views per photo per epoch and shuffles; evaluation uses view 0 (of validation photos:
    the clean one), in order. Only the photos of the batch being built are read into memory.
    """
    import tensorflow as tf

    from .feature_array import InMemoryFeatures

    if isinstance(features, np.ndarray):
        features = InMemoryFeatures(features)
    n_views = features.shape[1]
    feature_shape = list(features.shape[2:])
    labels = labels.astype(np.int32)

    def read(indices, views):
        return features.read_views(indices, views)

    def load(index, view, *rest):
        x = tf.numpy_function(read, [index, view], tf.float32, stateful=False)
        x.set_shape([None, *feature_shape])
        return (x, *rest)

    if not training:
        ds = tf.data.Dataset.from_tensor_slices((np.arange(len(labels)), np.zeros(len(labels), np.int64), labels))
        return ds.batch(batch_size).map(load).prefetch(tf.data.AUTOTUNE)

    weights = np.ones(len(labels), np.float32) if sample_weights is None else sample_weights.astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(labels)), labels, weights))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)

    def pick(index, label, weight):
        view = tf.random.uniform([], 0, n_views, dtype=tf.int32, seed=seed)
        return index, tf.cast(view, tf.int64), label, weight

    # Sequential map: a seeded random op in a parallel map draws in a racy order (runs would differ).
    return ds.map(pick).batch(batch_size).map(load).prefetch(tf.data.AUTOTUNE)
