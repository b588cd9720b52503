"""Tiny generated photos: a few visually distinct classes, for fast real training runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from training.ml import Example

LABELS = ["red_disc", "green_bars", "blue_square"]


def draw(label: str, rng: np.random.Generator, size: int = 72) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(90, 170, 3))
    image = Image.new("RGB", (size + int(rng.integers(0, 16)), size), background)
    pen = ImageDraw.Draw(image)
    w, h = image.size
    cx, cy = w / 2 + rng.uniform(-6, 6), h / 2 + rng.uniform(-6, 6)
    r = rng.uniform(0.22, 0.32) * size
    if label == "red_disc":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(int(rng.integers(200, 255)), 20, 20))
    elif label == "green_bars":
        for x in range(int(cx - r), int(cx + r), 8):
            pen.rectangle((x, cy - r, x + 3, cy + r), fill=(20, int(rng.integers(180, 255)), 20))
    else:
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=(20, 20, int(rng.integers(200, 255))))
    noise = rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8))


def make_examples(folder: Path, per_class: int, *, seed: int = 0, labels: list[str] = LABELS) -> list[Example]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for index, label in enumerate(labels):
        for i in range(per_class):
            path = folder / f"{label}-{seed}-{i}.jpg"
            draw(label, rng).save(path, quality=90)
            key = hashlib.sha256(path.read_bytes()).hexdigest()
            examples.append(Example(key=key, path=path, label_index=index))
    return examples
