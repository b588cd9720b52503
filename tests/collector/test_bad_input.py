"""The bad-input suite: everything odd a phone or an attacker may POST to /api/v1/photos/.

Each case answers 2xx or a clear 4xx in the error shape (never 5xx) and
leaves no file without a row and no row without its files. Grow the table:
one line per new case.
"""

import io
import struct

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from collector.models import Photo
from tests.collector import samples
from tests.collector.asserts import assert_error
from tests.collector.test_upload import stored_bytes, stored_image
from tests.factories import image_bytes

URL = "/api/v1/photos/"


def _file(data, name="photo.jpg", content_type="image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def _png_with_bad_crc():
    data = bytearray(samples.png_bytes((32, 32)))
    data[29] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def _jpeg_with_broken_exif():
    data = image_bytes(size=(64, 48))
    broken = b"Exif\x00\x00MM\x00\x2a\x00\x00\xff\xff" + b"\x00" * 20
    segment = b"\xff\xe1" + struct.pack(">H", len(broken) + 2) + broken
    return data[:2] + segment + data[2:]


def _jpeg_with_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return samples.encode(samples.quadrant_image((60, 40)), "JPEG", exif=exif.tobytes())


def _palette_png_with_transparency():
    image = Image.new("P", (40, 30), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (20, 0, 40, 30))
    return samples.encode(image, "PNG", transparency=0)


def _avif_brand():
    data = bytearray(samples.heic_bytes((32, 32)))
    data[8:12] = b"avif"
    return bytes(data)


# id, payload fields (image given as bytes or a SimpleUploadedFile), expected status
CASES = [
    ("truncated-jpeg", {"image": samples.truncated_jpeg()}, 422),
    ("header-only-jpeg", {"image": b"\xff\xd8\xff\xe0" + b"\0" * 40}, 422),
    ("png-bad-crc", {"image": _png_with_bad_crc()}, 422),
    ("empty-file", {"image": b""}, 400),
    ("text-as-jpeg", {"image": samples.TEXT}, 415),
    ("html-as-jpeg", {"image": samples.HTML}, 415),
    ("svg-as-png", {"image": _file(samples.SVG, "x.png", "image/png")}, 415),
    ("svg-as-svg", {"image": _file(samples.SVG, "x.svg", "image/svg+xml")}, 415),
    ("pdf-as-jpeg", {"image": samples.PDF}, 415),
    ("zip-as-jpeg", {"image": samples.zip_bytes()}, 415),
    ("gif", {"image": samples.gif_bytes()}, 415),
    ("animated-gif", {"image": samples.animated("GIF")}, 415),
    ("bmp", {"image": samples.bmp_bytes()}, 415),
    ("tiff", {"image": samples.tiff_bytes()}, 415),
    ("avif", {"image": _avif_brand()}, 415),
    ("png-bomb", {"image": samples.png_bomb(30000, 30000)}, 413),
    ("jpeg-claiming-60000px", {"image": samples.jpeg_claiming_size(60000, 60000)}, 413),
    ("png-text-bomb", {"image": samples.png_text_bomb()}, 422),
    ("jpeg-with-html-appended", {"image": samples.jpeg_with_html_appended()}, 201),
    ("cmyk-jpeg", {"image": samples.cmyk_jpeg()}, 201),
    ("16-bit-grey-png", {"image": samples.sixteen_bit_png()}, 201),
    ("16-bit-rgb-png", {"image": samples.sixteen_bit_rgb_png()}, 201),
    ("rgba-png", {"image": samples.png_rgba()}, 201),
    ("palette-png-transparent", {"image": _palette_png_with_transparency()}, 201),
    ("animated-webp", {"image": samples.animated("WEBP")}, 201),
    ("animated-png", {"image": samples.animated("PNG")}, 201),
    ("tiny-1x1", {"image": samples.encode(Image.new("RGB", (1, 1), (9, 9, 9)), "JPEG")}, 201),
    ("tiny-1x1-png", {"image": samples.encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")}, 201),
    ("thin-3000x2", {"image": samples.encode(Image.new("RGB", (3000, 2), (9, 90, 9)), "PNG")}, 201),
    ("gps-exif", {"image": samples.jpeg_with_gps()}, 201),
    ("broken-exif", {"image": _jpeg_with_broken_exif()}, 201),
    ("orientation-0", {"image": _jpeg_with_orientation(0)}, 201),
    ("orientation-9", {"image": _jpeg_with_orientation(9)}, 201),
    *[(f"orientation-{n}", {"image": samples.oriented_jpeg(n, (60, 40))}, 201) for n in range(1, 9)],
    ("heic", {"image": samples.heic_bytes()}, 201),
    ("webp", {"image": samples.webp_bytes()}, 201),
    ("progressive-jpeg", {"image": samples.encode(samples.quadrant_image(), "JPEG", progressive=True)}, 201),
    ("greyscale-jpeg", {"image": samples.encode(samples.quadrant_image().convert("L"), "JPEG")}, 201),
    ("interlaced-png", {"image": samples.encode(samples.quadrant_image((64, 48)), "PNG", interlace=1)}, 201),
    ("1-bit-png", {"image": samples.encode(samples.quadrant_image((64, 48)).convert("1"), "PNG")}, 201),
    ("mpo-two-frames", {"image": samples.mpo_bytes()}, 201),
    ("jpeg-zip-polyglot", {"image": samples.encode(samples.quadrant_image(), "JPEG") + samples.zip_bytes()}, 201),
    ("panorama-20000x20", {"image": samples.encode(Image.new("RGB", (20000, 20), (1, 99, 200)), "PNG")}, 201),
    ("png-zero-width", {"image": samples.png_zero_width()}, 422),
    ("truncated-webp", {"image": samples.webp_bytes()[:200]}, 422),
    ("truncated-heic", {"image": samples.heic_bytes()[:300]}, 422),
    ("riff-not-webp", {"image": b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\0" * 64}, 415),
    ("only-jpeg-magic", {"image": b"\xff\xd8\xff"}, 422),
    ("unknown-label", {"image": image_bytes(), "label": "unicorn"}, 422),
    ("inactive-label", {"image": image_bytes(), "label": "retired"}, 422),
    ("label-not-a-slug", {"image": image_bytes(), "label": "<b>mug</b>"}, 400),
    ("label-too-long", {"image": image_bytes(), "label": "m" * 65}, 400),
    ("label-with-nul", {"image": image_bytes(), "label": "mug\x00"}, 400),
    ("missing-image", {"image": None}, 400),
    ("missing-label", {"image": image_bytes(), "label": None}, 400),
    ("image-as-text-field", {"image": "not a file"}, 400),
    ("device-model-too-long", {"image": image_bytes(), "device_model": "x" * 101}, 400),
    ("app-version-too-long", {"image": image_bytes(), "app_version": "1" * 41}, 400),
    ("predicted-label-too-long", {"image": image_bytes(), "predicted_label": "p" * 65}, 400),
    ("confidence-out-of-range", {"image": image_bytes(), "predicted_confidence": "1.5"}, 400),
    ("confidence-nan", {"image": image_bytes(), "predicted_confidence": "nan"}, 400),
    ("confidence-inf", {"image": image_bytes(), "predicted_confidence": "inf"}, 400),
    ("captured-at-year-1", {"image": image_bytes(), "captured_at": "0001-01-01T00:00:00Z"}, 201),
    ("captured-at-naive", {"image": image_bytes(), "captured_at": "2026-11-20T10:11:12"}, 201),
    ("model-version-huge", {"image": image_bytes(), "model_version": str(2**70)}, 400),
    ("challenge-huge", {"image": image_bytes(), "challenge": str(2**70)}, 400),
    ("confidence-not-a-number", {"image": image_bytes(), "predicted_confidence": "NaN-ish"}, 400),
    ("model-version-negative", {"image": image_bytes(), "model_version": "-3"}, 400),
    ("challenge-zero", {"image": image_bytes(), "challenge": "0"}, 400),
    ("captured-at-garbage", {"image": image_bytes(), "captured_at": "last tuesday"}, 400),
    ("file-name-too-long", {"image": _file(image_bytes(), "a" * 300 + ".jpg")}, 201),  # the name is never used
    ("file-name-traversal", {"image": _file(image_bytes(), "../../../../tmp/evil.jpg")}, 201),
    ("file-name-unicode", {"image": _file(image_bytes(), "фото 📷.jpg")}, 201),
]


@pytest.mark.django_db
class TestBadInput:
    @pytest.fixture(autouse=True)
    def _labels(self, label):
        from tests.factories import make_label

        make_label("retired", active=False)

    @pytest.mark.parametrize("fields, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
    def test_it_answers_clearly_and_leaves_nothing_half_written(self, api, fields, expected, assert_no_orphans):
        payload = {"label": "mug"}
        for name, value in fields.items():
            if value is None:
                payload.pop(name, None)
            elif isinstance(value, bytes):
                payload[name] = _file(value)
            else:
                payload[name] = value
        response = api.post(URL, payload, format="multipart")
        assert response.status_code < 500, response.content[:300]
        if expected >= 400:
            assert_error(response, expected)
            assert not Photo.objects.exists()
            assert assert_no_orphans() == []
            return
        assert response.status_code == expected, response.content[:300]
        photo = Photo.objects.get(pk=response.json()["id"])
        assert len(assert_no_orphans()) == 3
        for key in (photo.training_key, photo.thumbnail_key):
            raw = stored_bytes(key)
            derivative = Image.open(io.BytesIO(raw))
            assert derivative.format == "JPEG" and derivative.mode == "RGB"
            assert not derivative.getexif() and "comment" not in derivative.info and "icc_profile" not in derivative.info
            assert b"<script" not in raw and b"crowdlens-xss" not in raw and samples.GPS_MARKER not in raw
            assert min(derivative.size) >= 1

    def test_html_appended_to_a_jpeg_survives_in_no_derivative(self, api):
        data = samples.jpeg_with_html_appended((600, 400))
        assert samples.HTML_PAYLOAD in data
        photo = Photo.objects.get(pk=api.post(URL, {"image": _file(data), "label": "mug"}, format="multipart").json()["id"])
        for key in (photo.training_key, photo.thumbnail_key):
            raw = stored_bytes(key)
            assert b"<html" not in raw and b"script" not in raw and raw.rstrip(b"\0").endswith(b"\xff\xd9")
        thumb = api.get(f"/api/v1/photos/{photo.pk}/thumbnail/")
        assert b"script" not in b"".join(thumb.streaming_content)
        assert thumb["Content-Type"] == "image/jpeg" and thumb["X-Content-Type-Options"] == "nosniff"

    def test_cmyk_colours_come_out_right(self, api):
        photo = Photo.objects.get(pk=api.post(URL, {"image": _file(samples.cmyk_jpeg((600, 400))), "label": "mug"},
                                              format="multipart").json()["id"])
        colours = samples.quadrant_colours(stored_image(photo.training_key))
        assert all(samples.close_to(colours[c], e, 45) for c, e in samples.QUADRANTS.items()), colours

    def test_16_bit_grey_is_scaled_not_clipped(self, api):
        photo = Photo.objects.get(pk=api.post(URL, {"image": _file(samples.sixteen_bit_png()), "label": "mug"},
                                              format="multipart").json()["id"])
        image = stored_image(photo.training_key)
        left, right = image.getpixel((10, 10)), image.getpixel((image.width - 10, 10))
        assert samples.close_to(left, (16, 16, 16), 8) and samples.close_to(right, (240, 240, 240), 8), (left, right)

    @pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
    def test_animated_images_keep_their_first_frame(self, api, fmt):
        photo = Photo.objects.get(pk=api.post(URL, {"image": _file(samples.animated(fmt)), "label": "mug"},
                                              format="multipart").json()["id"])
        assert samples.close_to(stored_image(photo.training_key).getpixel((60, 45)), (230, 20, 20))

    def test_a_multi_picture_jpeg_keeps_its_first_picture(self, api):
        photo = Photo.objects.get(pk=api.post(URL, {"image": _file(samples.mpo_bytes()), "label": "mug"},
                                              format="multipart").json()["id"])
        assert samples.close_to(stored_image(photo.training_key).getpixel((30, 20)), (230, 20, 20))

    def test_a_huge_phone_photo_is_accepted(self, api):
        data = samples.noise_jpeg((4032, 3024))
        assert len(data) > 2_000_000
        body = api.post(URL, {"image": _file(data), "label": "mug"}, format="multipart").json()
        assert (body["width"], body["height"]) == (4032, 3024)
        photo = Photo.objects.get(pk=body["id"])
        assert stored_image(photo.training_key).size == (341, 256)
        assert max(stored_image(photo.thumbnail_key).size) == 480

    @pytest.mark.parametrize("header", [None, "Token", "Token not-a-real-token", "Bearer abc", "Token a b"])
    def test_no_or_bad_token_is_a_401(self, header, assert_no_orphans):
        client = APIClient()
        if header:
            client.credentials(HTTP_AUTHORIZATION=header)
        response = client.post(URL, {"image": _file(image_bytes()), "label": "mug"}, format="multipart")
        assert_error(response, 401)
        assert not Photo.objects.exists() and assert_no_orphans() == []

    def test_identical_uploads_one_after_another_make_one_photo(self, api, assert_no_orphans):
        data = image_bytes()
        statuses = [api.post(URL, {"image": _file(data), "label": "mug"}, format="multipart").status_code
                    for _ in range(3)]
        assert statuses == [201, 200, 200]
        assert Photo.objects.count() == 1 and len(assert_no_orphans()) == 3


JSON_CASES = [
    ("register-malformed-json", "post", "/api/v1/volunteers/", b'{"display_name": "x", ', 400),
    ("register-json-array", "post", "/api/v1/volunteers/", b'["display_name"]', 400),
    ("register-json-null", "post", "/api/v1/volunteers/", b"null", 400),
    ("register-consent-maybe", "post", "/api/v1/volunteers/", b'{"display_name": "zed", "consent_training": "maybe"}', 400),
    ("register-name-nul", "post", "/api/v1/volunteers/", b'{"display_name": "ze\\u0000d", "consent_training": true}', 400),
    ("register-email-nul", "post", "/api/v1/volunteers/",
     b'{"display_name": "zed", "email": "a\\u0000@b.org", "consent_training": true}', 400),
    ("register-name-number", "post", "/api/v1/volunteers/", b'{"display_name": 12345, "consent_training": true}', 201),
    ("register-password-huge", "post", "/api/v1/volunteers/",
     b'{"display_name": "zed", "password": "' + b"p" * 5000 + b'", "consent_training": true}', 400),
    ("token-username-nul", "post", "/api/v1/auth/token/", b'{"username": "a\\u0000", "password": "x"}', 400),
    ("token-missing-fields", "post", "/api/v1/auth/token/", b"{}", 400),
    ("me-bad-email", "patch", "/api/v1/me/", b'{"email": "not-an-email"}', 400),
    ("me-consent-string", "patch", "/api/v1/me/", b'{"consent_public_credit": "perhaps"}', 400),
]


@pytest.mark.django_db
class TestBadJson:
    @pytest.mark.parametrize("method, path, body, expected", [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
    def test_it_answers_clearly(self, api, method, path, body, expected):
        from django.contrib.auth import get_user_model

        users_before = get_user_model().objects.count()
        response = getattr(api, method)(path, body, content_type="application/json")
        assert response.status_code == expected, response.content[:300]
        if expected >= 400:
            assert_error(response, expected)
            assert get_user_model().objects.count() == users_before
