"""Hand-made image files for the upload tests: every odd thing a phone or an attacker may send.

Each builder returns bytes. Nothing here downloads or reads shared data.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image

# Displayed (upright) reference: four quadrants of clearly different colours,
# so any rotation or mirror left in a derivative shows up as a wrong corner.
QUADRANTS = {"top_left": (220, 30, 30), "top_right": (30, 200, 30), "bottom_left": (30, 30, 220),
             "bottom_right": (240, 220, 20)}

# What undoes each EXIF orientation (what a viewer applies to show it upright)
# and its inverse (what a camera did when it stored the pixels sideways).
_DISPLAY = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180], 4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE], 6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_90],
}
_STORE = {
    1: [], 2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE], 6: [Image.Transpose.ROTATE_90],
    7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_270],
}


def flat_blocks(size: tuple[int, int]) -> Image.Image:
    """Flat coloured blocks: megapixels that compress to kilobytes (a decompression bomb's shape)."""
    from PIL import ImageDraw

    w, h = size
    image = Image.new("RGB", size, (90, 140, 200))
    draw = ImageDraw.Draw(image)
    for i in range(8):
        for j in range(8):
            if (i + j) % 3:
                draw.rectangle([i * w // 8, j * h // 8, (i + 1) * w // 8 - 1, (j + 1) * h // 8 - 1],
                               fill=((i * 37) % 256, (j * 59) % 256, ((i + j) * 23) % 256))
    return image


def quadrant_image(size=(600, 400)) -> Image.Image:
    w, h = size
    image = Image.new("RGB", size)
    image.paste(QUADRANTS["top_left"], (0, 0, w // 2, h // 2))
    image.paste(QUADRANTS["top_right"], (w // 2, 0, w, h // 2))
    image.paste(QUADRANTS["bottom_left"], (0, h // 2, w // 2, h))
    image.paste(QUADRANTS["bottom_right"], (w // 2, h // 2, w, h))
    return image


def quadrant_colours(image: Image.Image) -> dict[str, tuple[int, int, int]]:
    """The colour at the centre of each quadrant of an (upright) image."""
    image = image.convert("RGB")
    w, h = image.size
    points = {"top_left": (w // 4, h // 4), "top_right": (3 * w // 4, h // 4),
              "bottom_left": (w // 4, 3 * h // 4), "bottom_right": (3 * w // 4, 3 * h // 4)}
    return {name: image.getpixel(xy) for name, xy in points.items()}


def close_to(a, b, tolerance=40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def oriented_jpeg(orientation: int, displayed_size=(600, 400), *, fmt="JPEG") -> bytes:
    """Pixels stored as a camera held sideways would, with the EXIF tag that puts them upright."""
    stored = quadrant_image(displayed_size)
    for op in _STORE[orientation]:
        stored = stored.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, format=fmt, exif=exif.tobytes(), **({"quality": 92} if fmt == "JPEG" else {}))
    data = out.getvalue()
    # Sanity of the sample itself: a standard viewer shows the reference.
    from PIL import ImageOps

    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert shown.size == displayed_size
    return data


GPS_LATITUDE = ((52, 1), (31, 1), (1234, 100))  # 52°31'12.34"
GPS_MARKER = b"CROWDLENS-SECRET-GPS-PLACE"


def jpeg_with_gps(size=(640, 480)) -> bytes:
    """A JPEG whose EXIF carries a GPS position, a camera make and a marker string in a comment."""
    image = quadrant_image(size)
    exif = Image.Exif()
    exif[0x010F] = "CrowdlensPhone"  # Make
    exif[0x0131] = GPS_MARKER.decode()  # Software
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = tuple(a / b for a, b in GPS_LATITUDE)
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 56.78)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=GPS_MARKER, icc_profile=b"\0" * 128 + GPS_MARKER)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "sample must carry GPS"
    return data


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def png_bytes(size=(320, 240)) -> bytes:
    return encode(quadrant_image(size), "PNG")


def png_rgba(size=(320, 240)) -> bytes:
    image = quadrant_image(size).convert("RGBA")
    image.putalpha(128)
    return encode(image, "PNG")


def webp_bytes(size=(320, 240)) -> bytes:
    return encode(quadrant_image(size), "WEBP", quality=90)


def heic_bytes(size=(320, 240), orientation: int = 1) -> bytes:
    """An iPhone-style HEIC; with an orientation, the pixels are stored sideways and the tag says so."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    stored = quadrant_image(size)
    for op in _STORE[orientation]:
        stored = stored.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "HEIF", quality=90, exif=exif.tobytes())


def cmyk_jpeg(size=(320, 240)) -> bytes:
    return encode(quadrant_image(size).convert("CMYK"), "JPEG", quality=90)


def sixteen_bit_png(size=(320, 240)) -> bytes:
    """16-bit greyscale: left half 0x1000 (dark grey once scaled to 8 bits), right half 0xF000 (light grey)."""
    w, h = size
    row = struct.pack(f"<{w}H", *([0x1000] * (w // 2) + [0xF000] * (w - w // 2)))
    image = Image.frombytes("I;16", size, row * h)
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    return data


def sixteen_bit_rgb_png(size=(64, 48)) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    w, h = size
    raw = bytearray()
    for _y in range(h):
        raw.append(0)  # filter: none
        for x in range(w):
            red = 65535 if x < w // 2 else 0
            raw += struct.pack(">HHH", red, 0, 65535 - red)
    return _png(w, h, bit_depth=16, colour_type=2, raw=bytes(raw))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, *, bit_depth=8, colour_type=2, raw: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def png_bomb(width=30000, height=30000) -> bytes:
    """A complete, valid 1-bit PNG of width x height black pixels: ~100 KB that decode to ~1 GB."""
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is rewritten to claim another size."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (10, 20, 30)), "JPEG"))
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


def animated(fmt: str, frames=3, size=(120, 90)) -> bytes:
    """First frame red, later frames blue/green."""
    colours = [(230, 20, 20), (20, 20, 230), (20, 230, 20)]
    images = [Image.new("RGB", size, colours[i % 3]) for i in range(frames)]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0, **extra)


def truncated_jpeg(size=(320, 240)) -> bytes:
    data = encode(quadrant_image(size), "JPEG", quality=90)
    return data[: len(data) // 3]


HTML_PAYLOAD = b"<html><body><script>alert('crowdlens-xss')</script></body></html>"


def jpeg_with_html_appended(size=(320, 240)) -> bytes:
    return encode(quadrant_image(size), "JPEG", quality=90, comment=HTML_PAYLOAD) + HTML_PAYLOAD


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
       b'<script>alert(1)</script><rect width="100" height="100" fill="red"/></svg>')
HTML = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"
TEXT = b"just some text, definitely not a photo\n"


def gif_bytes(size=(32, 32)) -> bytes:
    return encode(Image.new("RGB", size, (1, 2, 3)), "GIF")


def bmp_bytes(size=(32, 32)) -> bytes:
    return encode(Image.new("RGB", size, (1, 2, 3)), "BMP")


def tiff_bytes(size=(32, 32)) -> bytes:
    return encode(Image.new("RGB", size, (1, 2, 3)), "TIFF")


def noise_jpeg(size=(4032, 3024), quality=90) -> bytes:
    """A photo-sized JPEG with texture (noise compresses like a real photo, not like a flat fill)."""
    noise = Image.effect_noise((size[0] // 4, size[1] // 4), 64).convert("RGB").resize(size, Image.Resampling.BILINEAR)
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    return encode(Image.blend(noise, gradient, 0.5), "JPEG", quality=quality)


def png_text_bomb() -> bytes:
    """A small valid PNG with a zTXt chunk that inflates to 64 MB of text."""
    image = Image.new("RGB", (16, 16), (5, 6, 7))
    data = encode(image, "PNG")
    compressed = zlib.compress(b"A" * (64 * 1024 * 1024), 9)
    ztxt = _chunk(b"zTXt", b"Comment\x00\x00" + compressed)
    return data[:33] + ztxt + data[33:]  # right after IHDR


def scene(seed: int, size=(800, 600)) -> Image.Image:
    """A deterministic 'photo' with structure at several scales (seeded rectangles on a gradient)."""
    import random

    from PIL import ImageDraw

    rng = random.Random(seed)
    image = Image.linear_gradient("L").rotate(rng.randrange(360)).resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(24):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(w // 12, w // 2), y0 + rng.randrange(h // 12, h // 2)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def mpo_bytes(size=(64, 48)) -> bytes:
    """A multi-picture JPEG (phones' portrait/depth shots): first frame red, second blue."""
    first, second = Image.new("RGB", size, (230, 20, 20)), Image.new("RGB", size, (20, 20, 230))
    return encode(first, "MPO", save_all=True, append_images=[second])


def png_zero_width() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")
