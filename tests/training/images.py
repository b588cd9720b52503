"""The one generator of class photos for every training test: a shape in a colour on a background.

A label's ``Look`` says what its photos show; a ``Variation`` says how much one photo differs from
the next (colours, background, position, specks, noise). The same seed always gives the same bytes.
Tests that train from random weights need looks a tiny network tells apart; tests that measure
novelty need photos alike within a label: each picks its variation, not its own drawing code.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Look:
    shape: str  # "disc", "bar" (one horizontal bar), "bars" (vertical stripes) or "square"
    colour: RGB
    background: RGB | None = None  # None: each photo draws its own within Variation.background_range
    size: float = 1.0  # the shape's size as a multiple of its usual one


@dataclass(frozen=True)
class Variation:
    colour: int = 8  # each channel of the shape moves up to this much
    background: int = 8  # each channel of a fixed background moves up to this much
    background_range: tuple[int, int] = (200, 256)  # where a Look without a background draws one
    position: int = 0  # the shape moves up to this many pixels each way
    specks: int = 3  # random single pixels, so that bytes and hashes differ
    noise: float = 0.0  # Gaussian pixel noise (sigma)
    wider: int = 0  # the photo is up to this many pixels wider than high (not square)
    scale: tuple[float, float] = (1.0, 1.0)  # the shape's size, as a multiple of the Look's, drawn from this range


ALIKE = Variation()  # photos of one scene taken alike every time


def _clip(value: int) -> int:
    return max(0, min(255, value))


def class_photo(look: Look, seed=None, *, size: int = 64, vary: Variation = ALIKE, nudge: int = 0,
                quality: int = 92) -> bytes:
    """A JPEG of ``look``. ``seed`` None: the plainest photo (exact colours, centred, no specks, no noise);
    ``nudge`` moves one pixel of it (a near-duplicate: same scene, other bytes)."""
    rng = random.Random(seed)
    varied = seed is not None
    if look.background is None:
        background = tuple(rng.randrange(*vary.background_range) for _ in range(3))
    else:
        background = tuple(_clip(c + rng.randrange(-vary.background, vary.background + 1)) if varied else c
                           for c in look.background)
    colour = tuple(_clip(c + rng.randrange(-vary.colour, vary.colour + 1)) if varied else c for c in look.colour)
    width = size + (rng.randrange(vary.wider + 1) if varied else 0)
    image = Image.new("RGB", (width, size), background)
    draw = ImageDraw.Draw(image)
    dx, dy = ((rng.randrange(-vary.position, vary.position + 1), rng.randrange(-vary.position, vary.position + 1))
              if varied else (0, 0))
    left, top = (width - size) // 2 + dx, dy
    scale = look.size * (rng.uniform(*vary.scale) if varied else 1.0)

    def at(fraction: float) -> float:  # a fraction of the size, scaled about the centre
        return (0.5 + (fraction - 0.5) * scale) * size

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:  # fractions of the size
        return [left + at(x0), top + at(y0), left + at(x1), top + at(y1)]

    if look.shape == "disc":
        draw.ellipse(box(0.16, 0.16, 0.84, 0.84), fill=colour)
    elif look.shape == "bar":
        draw.rectangle(box(0.09, 0.34, 0.91, 0.66), fill=colour)
    elif look.shape == "bars":
        for x in np.arange(0.2, 0.8, 0.111):
            draw.rectangle(box(x, 0.2, x + 0.055, 0.8), fill=colour)
    elif look.shape == "square":
        draw.rectangle(box(0.22, 0.22, 0.78, 0.78), fill=colour)
    else:
        raise ValueError(f"unknown shape {look.shape!r}")
    for _ in range(vary.specks if varied else 0):
        draw.point((rng.randrange(width), rng.randrange(size)), fill=tuple(rng.randrange(256) for _ in range(3)))
    if nudge:
        draw.point((nudge % width, nudge // width), fill=(200, 200, 200))
    if varied and vary.noise:
        noise = np.random.default_rng(rng.randrange(2**32)).normal(0, vary.noise, (size, width, 3))
        image = Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()



# For the tests that train from random weights (tests/training/ml/): three looks a tiny network tells
# apart at 48 px, on a mid-grey background of a random tint, with size, place, colour and noise varying.
# A linear head on random features reads mostly colour, so the background stays mid-grey; over four seed
# sets these photos gave 0.61-0.94 accuracy (old private generator: 0.61-0.89): the tests' 0.8 floor on
# 18 test photos holds for their seeds, and is noise-sensitive by nature (docs/decisions.md).
TRAINABLE = {
    "red_disc": Look("disc", (228, 20, 20)),
    "green_bars": Look("bars", (20, 218, 20), size=1.07),
    "blue_square": Look("square", (20, 20, 228), size=1.15),
}
TRAINABLE_VARIATION = Variation(colour=27, background_range=(110, 150), position=6, specks=0, noise=8.0,
                                wider=15, scale=(0.65, 0.95))


def make_examples(folder: Path, per_class: int, *, seed: int = 0, labels: list[str] | None = None) -> list:
    """``per_class`` photos of each of ``labels`` (TRAINABLE's keys) written to ``folder``, as training Examples."""
    from training.ml import Example

    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for index, label in enumerate(labels or list(TRAINABLE)):
        for i in range(per_class):
            path = folder / f"{label}-{seed}-{i}.jpg"
            path.write_bytes(class_photo(TRAINABLE[label], f"{seed}-{label}-{i}", size=72,
                                         vary=TRAINABLE_VARIATION, quality=90))
            examples.append(Example(key=hashlib.sha256(path.read_bytes()).hexdigest(), path=path, label_index=index))
    return examples
