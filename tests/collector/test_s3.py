"""The S3 path, against moto's server mode through boto3 over HTTP (tests/s3.py)."""

import io
import time

import pytest
import requests
from django.db import DatabaseError
from django.test import TestCase
from PIL import Image

from collector import selectors, storage
from collector.models import Photo, PhotoStatus
from collector.signals import photo_created
from tests.collector import samples
from tests.collector.asserts import assert_error
from tests.factories import client_for, image_bytes, make_photo, make_reviewer, upload
from tests.s3 import free_port, storage_settings


@pytest.mark.django_db
class TestS3Storage:
    def test_an_upload_lands_in_the_bucket(self, s3_storage, api, label):
        data = samples.jpeg_with_gps((800, 600))
        response = upload(api, data, label="mug")
        assert response.status_code == 201, response.content
        photo = Photo.objects.get(pk=response.json()["id"])
        assert s3_storage.keys() == sorted(photo.storage_keys)
        assert s3_storage.read(photo.original_key) == data
        for key, size in ((photo.training_key, (341, 256)), (photo.thumbnail_key, (480, 360))):
            raw = s3_storage.read(key)
            derivative = Image.open(io.BytesIO(raw))
            assert derivative.size == size and not derivative.getexif() and samples.GPS_MARKER not in raw
        thumb = api.get(response.json()["thumbnail_url"])
        assert thumb.status_code == 200
        assert b"".join(thumb.streaming_content) == s3_storage.read(photo.thumbnail_key)

    def test_derivatives_on_s3_are_upright(self, s3_storage, api, label):
        photo = Photo.objects.get(pk=upload(api, samples.oriented_jpeg(8, (600, 400)), label="mug").json()["id"])
        colours = samples.quadrant_colours(Image.open(io.BytesIO(s3_storage.read(photo.training_key))))
        assert all(samples.close_to(colours[c], e) for c, e in samples.QUADRANTS.items()), colours

    def test_objects_are_private_and_presigned_urls_work(self, s3_storage, api, label):
        photo = Photo.objects.get(pk=upload(api, image_bytes(), label="mug").json()["id"])
        url = storage.url_for(photo.training_key, expire=60)
        assert "Signature" in url or "X-Amz-Signature" in url
        fetched = requests.get(url, timeout=10)
        assert fetched.status_code == 200 and fetched.content == s3_storage.read(photo.training_key)
        unsigned = requests.get(f"{s3_storage.endpoint_url}/{s3_storage.bucket}/{photo.original_key}", timeout=10)
        assert unsigned.content != s3_storage.read(photo.original_key) or unsigned.status_code >= 400

    def test_deleting_the_account_deletes_the_objects(self, s3_storage, volunteer, api, label):
        approved = make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED)
        other = make_photo(label=label, status=PhotoStatus.APPROVED)
        assert len(s3_storage.keys()) == 6
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert api.delete("/api/v1/me/").status_code == 204
        assert s3_storage.keys() == sorted(other.storage_keys)
        assert list(selectors.photos_approved()) == [other]
        approved.refresh_from_db()
        assert approved.status == PhotoStatus.WITHDRAWN

    def test_a_rejected_photo_keeps_its_files_but_leaves_datasets(self, s3_storage, api, label):
        photo = Photo.objects.get(pk=upload(api, image_bytes(), label="mug").json()["id"])
        client_for(make_reviewer()).post(f"/api/v1/photos/{photo.pk}/review/", {"decision": "reject", "reason": "blurry"},
                                         format="json")
        assert photo not in selectors.photos_approved()
        assert s3_storage.keys() == sorted(photo.storage_keys)

    def test_a_missing_bucket_is_a_503_and_nothing_is_recorded(self, s3_storage, api, label):
        s3_storage.delete_bucket()
        error = assert_error(upload(api, image_bytes(), label="mug"), 503, "storage_unavailable")
        assert "nothing was recorded" in error["message"]
        assert not Photo.objects.exists()

    def test_a_server_that_is_down_is_a_503_and_nothing_is_recorded(self, s3_storage, api, label, settings):
        settings.STORAGES = {**settings.STORAGES, "default": storage_settings(
            bucket=s3_storage.bucket, endpoint_url=f"http://127.0.0.1:{free_port()}")}
        started = time.monotonic()
        assert_error(upload(api, image_bytes(), label="mug"), 503, "storage_unavailable")
        assert time.monotonic() - started < 30, "a dead endpoint fails within seconds, not minutes"
        assert not Photo.objects.exists()

    def test_a_database_failure_removes_the_objects(self, s3_storage, api, label):
        def fail(sender, photo, **kwargs):
            assert len(s3_storage.keys()) == 3, "written before the commit"
            raise DatabaseError("injected")

        photo_created.connect(fail, dispatch_uid="s3-fail")
        try:
            response = upload(api, image_bytes(), label="mug")
        finally:
            photo_created.disconnect(dispatch_uid="s3-fail")
        assert response.status_code >= 500
        assert not Photo.objects.exists() and s3_storage.keys() == []

    def test_an_idempotent_retry_writes_nothing_new(self, s3_storage, api, label):
        data = image_bytes()
        upload(api, data, label="mug", key="k")
        before = s3_storage.keys()
        assert upload(api, data, label="mug", key="k").status_code == 200
        assert s3_storage.keys() == before

    def test_deleting_the_account_while_s3_is_down_still_withdraws(self, s3_storage, volunteer, api, label, settings):
        photo = make_photo(volunteer=volunteer, label=label, status=PhotoStatus.APPROVED)
        keys = sorted(photo.storage_keys)
        settings.STORAGES = {**settings.STORAGES, "default": storage_settings(
            bucket=s3_storage.bucket, endpoint_url=f"http://127.0.0.1:{free_port()}")}
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert api.delete("/api/v1/me/").status_code == 204
        photo.refresh_from_db()
        assert photo.status == PhotoStatus.WITHDRAWN and photo not in selectors.photos_approved()
        assert s3_storage.keys() == keys, "the files stay behind (logged with their keys for a sweep)"
