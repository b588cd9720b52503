"""Upload limits and failure handling: too many bytes, too many pixels, throttling, storage and database failures."""

import io

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from collector.models import Photo
from collector.signals import photo_created
from tests.collector import samples
from tests.collector.asserts import assert_error
from tests.factories import client_for, image_bytes, make_volunteer, upload

URL = "/api/v1/photos/"


class CountingInput(io.RawIOBase):
    """A wsgi.input that remembers how much of the body the server read."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self):
        return True

    def read(self, size=-1):
        chunk = self._data.read(size)
        self.consumed += len(chunk)
        return chunk

    def readline(self, size=-1):
        line = self._data.readline(size)
        self.consumed += len(line)
        return line


class ExplodingInput(io.RawIOBase):
    def readable(self):
        return True

    def read(self, size=-1):
        raise AssertionError("the body of an oversized request must not be read")

    readline = read


def multipart(image: bytes, label="mug") -> bytes:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return encode_multipart(BOUNDARY, {"image": SimpleUploadedFile("p.jpg", image), "label": label})


@pytest.mark.django_db
class TestTooManyBytes:
    def test_it_refuses_from_content_length_without_reading(self, api, label, settings, assert_no_orphans):
        response = api.generic("POST", URL, b"", content_type=MULTIPART_CONTENT,
                               CONTENT_LENGTH=str(settings.REQUEST_MAX_BYTES + 1), **{"wsgi.input": ExplodingInput()})
        assert_error(response, 413, "too_large")
        assert response["Connection"] == "close"
        assert not Photo.objects.exists() and assert_no_orphans() == []

    def test_the_default_limit_is_25_mb(self, api, label):
        response = api.generic("POST", URL, b"", content_type=MULTIPART_CONTENT,
                               CONTENT_LENGTH=str(27 * 1024 * 1024), **{"wsgi.input": ExplodingInput()})
        assert_error(response, 413, "too_large")

    def test_it_stops_reading_a_too_big_file_while_it_streams(self, api, label, settings, assert_no_orphans):
        settings.PHOTO_MAX_BYTES = 64 * 1024
        settings.REQUEST_MAX_BYTES = 10 * 1024 * 1024
        body = multipart(samples.noise_jpeg((1600, 1200)))
        assert len(body) > 6 * settings.PHOTO_MAX_BYTES
        stream = CountingInput(body)
        response = api.generic("POST", URL, b"", content_type=MULTIPART_CONTENT, CONTENT_LENGTH=str(len(body)),
                               **{"wsgi.input": stream})
        assert_error(response, 413, "too_large")
        assert stream.consumed < 4 * settings.PHOTO_MAX_BYTES, "the rest of the body is never read"
        assert not Photo.objects.exists() and assert_no_orphans() == []

    def test_a_file_just_under_the_limit_is_accepted(self, api, label, settings):
        data = image_bytes(size=(320, 240))
        settings.PHOTO_MAX_BYTES = len(data)
        assert upload(api, data, label="mug").status_code == 201

    def test_a_chunked_body_is_accepted(self, api, label, assert_no_orphans):
        body = multipart(image_bytes(size=(320, 240)))
        response = api.generic("POST", URL, b"", content_type=MULTIPART_CONTENT, CONTENT_LENGTH="",
                               HTTP_TRANSFER_ENCODING="chunked",
                               **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True})
        assert response.status_code == 201, response.content
        assert Photo.objects.count() == 1 and len(assert_no_orphans()) == 3

    def test_a_too_big_chunked_body_is_cut_off_while_it_streams(self, api, label, settings, assert_no_orphans):
        settings.REQUEST_MAX_BYTES = 256 * 1024
        body = multipart(samples.noise_jpeg((1600, 1200)))
        stream = CountingInput(body)
        response = api.generic("POST", URL, b"", content_type=MULTIPART_CONTENT, CONTENT_LENGTH="",
                               HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": stream, "wsgi.input_terminated": True})
        assert_error(response, 413, "too_large")
        assert stream.consumed <= settings.REQUEST_MAX_BYTES + 64 * 1024 < len(body)
        assert not Photo.objects.exists() and assert_no_orphans() == []

    def test_a_chunked_body_the_server_cannot_terminate_gets_411(self, api, label):
        body = multipart(image_bytes())
        response = api.generic("POST", URL, b"", content_type=MULTIPART_CONTENT, CONTENT_LENGTH="",
                               HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body)})
        assert_error(response, 411, "length_required")
        assert not Photo.objects.exists()

    @pytest.mark.parametrize("length", ["abc", "-5"])
    def test_a_nonsense_content_length_is_a_400(self, api, label, length):
        response = api.generic("POST", URL, b"", content_type=MULTIPART_CONTENT, CONTENT_LENGTH=length,
                               **{"wsgi.input": ExplodingInput()})
        assert_error(response, 400)

    @pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
    def test_a_large_body_without_files_is_refused_unread(self, content_type, settings):
        from rest_framework.test import APIClient

        response = APIClient().generic("POST", "/api/v1/volunteers/", b"", content_type=content_type,
                                       CONTENT_LENGTH=str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
                                       **{"wsgi.input": ExplodingInput()})
        assert_error(response, 413, "too_large")

    def test_a_large_chunked_json_body_is_cut_off(self, settings):
        from rest_framework.test import APIClient

        stream = CountingInput(b"{" + b" " * (3 * settings.DATA_UPLOAD_MAX_MEMORY_SIZE) + b"}")
        response = APIClient().generic("POST", "/api/v1/volunteers/", b"", content_type="application/json",
                                       CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
                                       **{"wsgi.input": stream, "wsgi.input_terminated": True})
        assert_error(response, 413, "too_large")
        assert stream.consumed <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 64 * 1024

    def test_oversized_form_fields_are_a_413(self, api, label, assert_no_orphans):
        response = upload(api, image_bytes(), label="mug", device_model="x" * (3 * 1024 * 1024))
        assert_error(response, 413, "too_large")
        assert not Photo.objects.exists() and assert_no_orphans() == []

    def test_too_many_fields_are_a_400(self, api, label):
        from django.core.files.uploadedfile import SimpleUploadedFile

        data = {f"f{i}": "x" for i in range(1200)}
        data.update({"image": SimpleUploadedFile("p.jpg", image_bytes()), "label": "mug"})
        response = api.post(URL, data, format="multipart")
        assert_error(response, 400)
        assert not Photo.objects.exists()


@pytest.mark.django_db
class TestTooManyPixels:
    @pytest.mark.parametrize("builder", [
        lambda: samples.png_bomb(30000, 30000),
        lambda: samples.jpeg_claiming_size(60000, 60000),
        lambda: samples.jpeg_claiming_size(10000, 8000),
    ])
    def test_a_decompression_bomb_is_refused(self, api, label, builder, assert_no_orphans):
        response = upload(api, builder(), label="mug")
        assert_error(response, 413, "too_many_pixels", ["image"])
        assert not Photo.objects.exists() and assert_no_orphans() == []

    def test_the_pixel_limit_is_configurable(self, api, label, settings):
        settings.PHOTO_MAX_PIXELS = 100_000
        assert_error(upload(api, image_bytes(size=(400, 300)), label="mug"), 413, "too_many_pixels")
        assert upload(api, image_bytes(size=(300, 300)), label="mug").status_code == 201


@pytest.mark.django_db
class TestThrottling:
    def test_uploads_are_throttled_per_volunteer(self, api, label, settings):
        settings.PHOTO_UPLOAD_RATE = "2/minute"
        assert upload(api, image_bytes(), label="mug").status_code == 201
        assert upload(api, image_bytes(), label="mug").status_code == 201
        response = upload(api, image_bytes(), label="mug")
        assert_error(response, 429, "throttled")
        assert int(response["Retry-After"]) > 0
        assert Photo.objects.count() == 2
        other = client_for(make_volunteer().user)
        assert upload(other, image_bytes(), label="mug").status_code == 201, "another volunteer has their own budget"

    def test_listing_is_not_throttled_by_uploads(self, api, label, settings):
        settings.PHOTO_UPLOAD_RATE = "1/minute"
        upload(api, image_bytes(), label="mug")
        assert upload(api, image_bytes(), label="mug").status_code == 429
        assert api.get(URL).status_code == 200


@pytest.mark.django_db
class TestStorageFailures:
    @pytest.mark.parametrize("fail_on_call", [1, 2, 3])
    def test_storage_down_answers_503_and_records_nothing(self, api, label, monkeypatch, fail_on_call,
                                                          assert_no_orphans):
        real_save = FileSystemStorage._save
        calls = []

        def flaky(self, name, content):
            calls.append(name)
            if len(calls) == fail_on_call:
                raise OSError(28, "No space left on device")
            return real_save(self, name, content)

        monkeypatch.setattr(FileSystemStorage, "_save", flaky)
        response = upload(api, image_bytes(), label="mug")
        error = assert_error(response, 503, "storage_unavailable")
        assert "nothing was recorded" in error["message"]
        assert not Photo.objects.exists()
        assert assert_no_orphans() == [], "files written before the failure are removed"

    def test_a_retry_after_the_outage_succeeds(self, api, label, monkeypatch):
        data = image_bytes()
        with monkeypatch.context() as patch:
            patch.setattr(FileSystemStorage, "_save", lambda *a: (_ for _ in ()).throw(OSError("down")))
            assert upload(api, data, label="mug", key="k1").status_code == 503
        assert upload(api, data, label="mug", key="k1").status_code == 201

    def test_a_thumbnail_that_cannot_be_read_is_a_503(self, api, label, monkeypatch):
        photo_id = upload(api, image_bytes(), label="mug").json()["id"]
        monkeypatch.setattr(FileSystemStorage, "open", lambda *a, **k: (_ for _ in ()).throw(PermissionError("io")))
        assert_error(api.get(f"/api/v1/photos/{photo_id}/thumbnail/"), 503, "storage_unavailable")


@pytest.mark.django_db
class TestDatabaseFailure:
    def test_files_are_removed_when_the_transaction_fails(self, api, label, assert_no_orphans, settings):
        from tests.conftest import stored_files

        seen = {}

        def fail(sender, photo, **kwargs):
            seen["files"] = stored_files(settings.MEDIA_ROOT)  # files are written before the commit
            raise DatabaseError("injected failure before commit")

        photo_created.connect(fail, dispatch_uid="test-fail")
        try:
            response = upload(api, image_bytes(), label="mug")
        finally:
            photo_created.disconnect(dispatch_uid="test-fail")
        assert response.status_code >= 500
        assert_error(response, response.status_code)
        assert len(seen["files"]) == 3
        assert not Photo.objects.exists()
        assert assert_no_orphans() == []
        assert upload(api, image_bytes(), label="mug").status_code == 201, "the next upload works"
