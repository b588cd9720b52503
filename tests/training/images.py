"""The one generator of class photos for every training test: a shape in a colour on a background.

A label's ``Look`` says what its photos show; a ``Variation`` says how much one photo differs from
the next (colours, background, position, specks, noise). The same seed always gives the same bytes.
Tests that train from random weights need looks a tiny network tells apart; tests that measure
novelty need photos alike within a label: each picks its variation, not its own drawing code.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Look:
    shape: str  # "disc", "bar" (one horizontal bar), "bars" (vertical stripes) or "square"
    colour: RGB
    background: RGB | None = None  # None: each photo draws its own within Variation.background_range


@dataclass(frozen=True)
class Variation:
    colour: int = 8  # each channel of the shape moves up to this much
    background: int = 8  # each channel of a fixed background moves up to this much
    background_range: tuple[int, int] = (200, 256)  # where a Look without a background draws one
    position: int = 0  # the shape moves up to this many pixels each way
    specks: int = 3  # random single pixels, so that bytes and hashes differ
    noise: float = 0.0  # Gaussian pixel noise (sigma)
    wider: int = 0  # the photo is up to this many pixels wider than high (not square)


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

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:  # fractions of the size
        return [left + x0 * size, top + y0 * size, left + x1 * size, top + y1 * size]

    if look.shape == "disc":
        draw.ellipse(box(0.16, 0.16, 0.84, 0.84), fill=colour)
    elif look.shape == "bar":
        draw.rectangle(box(0.09, 0.34, 0.91, 0.66), fill=colour)
    elif look.shape == "bars":
        for x in np.arange(0.2, 0.8, 0.125):
            draw.rectangle(box(x, 0.2, x + 0.05, 0.8), fill=colour)
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

