"""Image handling for uploads, free of Django: sniff, decode, normalise, hash.

Formats are recognised by their leading bytes, never by file name or
Content-Type, and Pillow is only ever asked to decode the one format the
bytes claim to be (an allow-list), so a file cannot smuggle in a decoder
we did not choose (EPS, PSD, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, ContextManager

from PIL import Image, ImageOps

logger = logging.getLogger("crowdlens.images")
from collector.lib.decode_budget import BudgetTimeout, give_memory_back

try:  # HEIC/HEIF from iPhones
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    HEIF_AVAILABLE = False

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# Peak bytes a decode holds per decoded pixel, measured (bench/upload_memory.py): a HEIC, reduced straight
# from libheif's buffer, holds libheif's YCbCr planes and RGB pixels (4.5 measured at 48 MP; 7 leaves room
# for an alpha plane); Pillow's PNG, WebP and JPEG decoders hold Pillow's pixels (4 bytes for RGB) and a
# band's copies.
_PEAK_BYTES_PER_PIXEL = {"HEIF": 7}
_DEFAULT_PEAK_BYTES_PER_PIXEL = 8
# Below this a decode costs too little to count against the host's budget (a 12 MP JPEG decodes at 1/8).
BUDGET_MIN_MB = 32
Budget = Callable[[int], ContextManager[None]]  # cost in MB -> held while the large image is in memory
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}


class ImageError(Exception):
    """Raised with a code the API maps to a status: unsupported (415), too_many_pixels (413), corrupt (422)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def sniff_format(head: bytes) -> str | None:
    """The format the first bytes announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF" if head[8:12] != b"avif" else None
    return None


@dataclass(frozen=True)
class Derivative:
    data: bytes
    width: int
    height: int
    content_type: str = "image/jpeg"


@dataclass(frozen=True)
class ProcessedImage:
    source_format: str
    width: int
    height: int
    sha256: str
    phash: int
    training: Derivative
    thumbnail: Derivative


def sha256_of(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    for chunk in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


def decode_cost_mb(fmt: str, width: int, height: int) -> int:
    """The most memory (MB) decoding ``width`` x ``height`` pixels of ``fmt`` holds at once, estimated."""
    return math.ceil(width * height * _PEAK_BYTES_PER_PIXEL.get(fmt, _DEFAULT_PEAK_BYTES_PER_PIXEL) / 2**20)


def _reduction(size: tuple[int, int], min_short_side: int | None, min_long_side: int | None) -> float:
    """How many times smaller than ``size`` the derivatives may be decoded or reduced (>= 1)."""
    if not min_short_side:
        return 1.0
    scale = min(size) / min_short_side
    if min_long_side:
        scale = min(scale, max(size) / min_long_side)
    return max(1.0, scale)


def open_upright(
    stream: BinaryIO, *, max_pixels: int, min_short_side: int | None = None, min_long_side: int | None = None,
    max_pixels_full_decode: int | None = None, budget: Budget | None = None,
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode the first frame as an upright RGB image; raise ImageError on anything else.

    Returns the image, its format and its full size as displayed (after EXIF
    orientation). With ``min_short_side`` (and ``min_long_side``), a JPEG may
    be decoded at a reduced scale (libjpeg's DCT scaling: 1/2, 1/4, 1/8) as
    long as its short side stays at least ``min_short_side`` and its long side
    at least ``min_long_side``: the derivatives never need the full 12 MP.
    Formats that decode whole (PNG, WebP, HEIC) are reduced as soon as they
    are decoded, so only one full-size copy ever exists.

    Memory: PNG and WebP, which phones do not shoot photos in, are refused
    above ``max_pixels_full_decode``; a decode estimated at ``BUDGET_MIN_MB``
    or more holds its cost in ``budget`` (collector.lib.decode_budget) until
    its full-size pixels are gone. Both bound what an image can cost in
    memory, whatever its bytes.
    """
    stream.seek(0)
    fmt = sniff_format(stream.read(32))
    stream.seek(0)
    if fmt is None:
        raise ImageError("unsupported", "The file is not a JPEG, PNG, WebP or HEIC/HEIF image.")
    if fmt == "HEIF" and not HEIF_AVAILABLE:  # pragma: no cover
        raise ImageError("unsupported", "HEIC/HEIF support is not installed on this server.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=[fmt])
            full_w, full_h = image.size
            if full_w * full_h > max_pixels:
                raise ImageError(
                    "too_many_pixels",
                    f"The image has {full_w}x{full_h} pixels; the limit is {max_pixels} pixels.",
                )
            if fmt in ("PNG", "WEBP") and max_pixels_full_decode and full_w * full_h > max_pixels_full_decode:
                name = "PNG" if fmt == "PNG" else "WebP"
                raise ImageError(
                    "too_many_pixels",
                    f"The image has {full_w}x{full_h} pixels; the limit for {name} images is "
                    f"{max_pixels_full_decode} pixels (photos from a camera: JPEG or HEIC).",
                )
            if full_w < 1 or full_h < 1:
                raise ImageError("corrupt", "The image has no pixels.")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated images: the first frame only
            scale = _reduction((full_w, full_h), min_short_side, min_long_side)
            if fmt == "JPEG" and scale >= 2:
                image.draft("RGB", (max(1, int(full_w / scale)), max(1, int(full_h / scale))))
            orientation = image.getexif().get(0x0112, 1)
            cost = decode_cost_mb(fmt, *image.size)  # after draft: what will really be decoded
            holding = budget(cost) if budget is not None and cost >= BUDGET_MIN_MB else contextlib.nullcontext()
            with holding:
                factor = int(_reduction(image.size, min_short_side, min_long_side))
                heif = _heif_decoded_reduced(image, stream, factor) if fmt == "HEIF" else None
                if heif is not None:
                    image = heif
                else:
                    image.load()
                    image = _reduced(image, factor)
            if cost >= BUDGET_MIN_MB:
                give_memory_back()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("too_many_pixels", f"The image has more than {max_pixels} pixels.") from None
    except Exception as exc:  # Pillow raises many types for broken files
        if isinstance(exc, BudgetTimeout):  # not the image's fault: the host is busy (503)
            raise
        # The message is for the volunteer: what Pillow raised stays in the server's log, not in the answer.
        logger.info("Undecodable %s upload: %s: %s", fmt, exc.__class__.__name__, exc)
        raise ImageError("corrupt", "The image could not be decoded: the file is damaged or incomplete.") from None
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not lose the photo
        upright, orientation = image, 1
    displayed = (full_h, full_w) if orientation in (5, 6, 7, 8) else (full_w, full_h)
    return _to_rgb(upright), fmt, displayed


_AVERAGEABLE_MODES = ("L", "LA", "RGB", "RGBA", "RGBX", "I", "F", "CMYK", "YCbCr")
_BAND_PIXELS = 1_000_000  # pixels of the full-size image reduced at a time


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """The decoded image made ``factor`` times smaller by averaging pixel blocks (Image.reduce): what the
    derivatives need, at a fraction of the memory, with nothing resampled twice (the thumbnail and training
    copy are resampled from this).

    In bands of rows: reduce() of a whole RGBA image first converts all of it (premultiplied alpha), and a
    palette or 16-bit image must be converted before it can be averaged; band by band those copies are a
    band's size, not the image's. The caller drops the full-size image (not closed: that would close the
    upload's file, still needed), so its pixels are freed as the reference goes."""
    if factor < 2:
        return image
    width = image.size[0]
    small = _reduce_bands(image.size, factor, lambda top, rows: image.crop((0, top, width, top + rows)))
    small.info = image.info
    return small


def _heif_decoded_reduced(image: Image.Image, stream: BinaryIO, factor: int) -> Image.Image | None:
    """A HEIC decoded by libheif and reduced band by band straight from libheif's pixels, or None (then the
    plugin's ordinary load): the plugin copies all of libheif's pixels into Pillow's 4-byte ones first,
    about 7 bytes a pixel at the peak, this about 4.5 (a 48 MP HEIC: 330 -> 210 MB)."""
    if factor < 2 or not HEIF_AVAILABLE:
        return None
    stream.seek(0)
    frame = pillow_heif.open_heif(stream, convert_hdr_to_8bit=True)[image.tell()]
    if frame.size != image.size or frame.mode not in ("RGB", "RGBA", "L"):
        return None
    pixels, stride, mode, width = frame.data, frame.stride, frame.mode, frame.size[0]
    small = _reduce_bands(frame.size, factor, lambda top, rows: Image.frombuffer(
        mode, (width, rows), pixels[top * stride:(top + rows) * stride], "raw", mode, stride, 1))
    small.info = dict(image.info)
    return small


def _reduce_bands(size: tuple[int, int], factor: int, band_at) -> Image.Image:
    """Reduce an image of ``size`` by ``factor``, ``band_at(top, rows)`` giving its rows a band at a time."""
    width, height = size
    rows = factor * max(1, _BAND_PIXELS // (width * factor))
    small = None
    for top in range(0, height, rows):
        band = band_at(top, min(rows, height - top))
        if band.mode not in _AVERAGEABLE_MODES:  # palette indices (P, PA), 1-bit, 16-bit: convert first
            band = _to_rgb(band)
        band = band.reduce(factor)
        if small is None:
            small = Image.new(band.mode, (-(-width // factor), -(-height // factor)))
        small.paste(band, (0, top // factor))
    return small


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip. Pillow's point()
        # only scales in mode "I" (on "I;16" it applies a lookup table meant
        # for 8 bits), so widen first.
        return image.convert("I").point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")  # CMYK, L, P, YCbCr, ...


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # Pillow carries the source's ``info`` through resize/copy, and its JPEG
    # writer falls back to ``info["comment"]``: a COM segment (which may hold
    # HTML or a location) would survive. Empty it; EXIF, ICC, XMP and GPS are
    # only written when passed explicitly, and nothing is passed.
    image.info = {}
    image.save(out, format="JPEG", quality=quality, optimize=False, progressive=False)
    return out.getvalue()


def resize_short_side(image: Image.Image, short_side: int) -> Image.Image:
    w, h = image.size
    scale = short_side / min(w, h)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def thumbnail_of(image: Image.Image, longest: int) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((longest, longest), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return thumb


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: robust to re-encoding, resizing and small edits."""
    small = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = small.tobytes()  # one byte per pixel ("L"), row by row
    value = 0
    for row in range(8):
        for col in range(8):
            left = pixels[row * 9 + col]
            right = pixels[row * 9 + col + 1]
            value = (value << 1) | (1 if left > right else 0)
    return value


def hash_is_informative(value: int) -> bool:
    """False for hashes of nearly featureless images (a plain wall, a black frame).

    A flat image hashes to all zeros (or a smooth gradient to all ones), so
    every flat photo would "match" every other; such hashes are never used
    to flag near-duplicates.
    """
    return 8 <= value.bit_count() <= 56


def hash_bands(value: int) -> tuple[int, int, int, int]:
    """Four 16-bit bands, signed to fit a 32-bit integer column anywhere."""
    return tuple(((value >> (16 * i)) & 0xFFFF) for i in range(4))  # type: ignore[return-value]


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def process_upload(
    stream: BinaryIO, *, max_pixels: int, training_short_side: int, thumbnail_size: int, sha256: str | None = None,
    max_pixels_full_decode: int | None = None, budget: Budget | None = None,
) -> ProcessedImage:
    """Everything the collector stores about an upload, computed in one decode."""
    digest = sha256 or sha256_of(stream)
    # The decode only needs to be as large as the derivatives: a short side of
    # training_short_side and a long side of thumbnail_size. A 12 MP JPEG is
    # decoded at 1/8 scale (504x378), a 2 MP one at 1/2.
    image, fmt, (width, height) = open_upright(
        stream, max_pixels=max_pixels, min_short_side=training_short_side, min_long_side=thumbnail_size,
        max_pixels_full_decode=max_pixels_full_decode, budget=budget,
    )
    # The thumbnail is resampled from the decoded image; the training copy
    # from the thumbnail when that is large enough (the usual case: a 4:3
    # photo's 480x360 thumbnail covers a 256 px short side), so the big image
    # is resampled once.
    thumb_image = thumbnail_of(image, thumbnail_size)
    source = thumb_image if min(thumb_image.size) >= min(training_short_side, *image.size) else image
    training_image = resize_short_side(source, training_short_side)
    image.close()
    training = Derivative(_encode_jpeg(training_image, 90), *training_image.size)
    thumbnail = Derivative(_encode_jpeg(thumb_image, 82), *thumb_image.size)
    return ProcessedImage(
        source_format=fmt,
        width=width,
        height=height,
        sha256=digest,
        phash=dhash(training_image),
        training=training,
        thumbnail=thumbnail,
    )
