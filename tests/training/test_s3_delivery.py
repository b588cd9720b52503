"""Model delivery on S3 (moto in server mode, boto3 over HTTP): presigned download URLs, immutable keys."""

import hashlib
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from rest_framework.test import APIClient

from tests.training.conftest import publish

pytestmark = pytest.mark.slow


@pytest.mark.django_db
class TestS3Delivery:
    def test_the_manifest_gives_a_presigned_url_to_the_exact_bytes(self, trained_result, s3_storage, settings):
        settings.S3_PRESIGN_TTL = 900
        version = publish(trained_result)
        assert {f"models/v{version.version}/int8/{name}" for name in ("model.tflite", "labels.txt", "metadata.json")} \
            <= set(s3_storage.keys())
        manifest = APIClient().get("/api/v1/models/latest/?variant=int8").json()
        url = urlparse(manifest["download_url"])
        assert manifest["download_url"].startswith(s3_storage.endpoint_url)
        query = parse_qs(url.query)
        signed_for = int(query["X-Amz-Expires"][0]) if "X-Amz-Expires" in query else int(query["Expires"][0]) - time.time()
        assert 840 <= signed_for <= 960  # S3_PRESIGN_TTL
        assert "X-Amz-Signature" in query or "Signature" in query
        body = requests.get(manifest["download_url"], timeout=30).content
        assert hashlib.sha256(body).hexdigest() == manifest["sha256"] and len(body) == manifest["size"]
        unsigned = requests.get(manifest["download_url"].split("?")[0], timeout=30)
        assert unsigned.status_code == 403  # the bucket is private: only the presigned URL works

    def test_the_download_view_redirects_to_a_presigned_url(self, trained_result, s3_storage):
        version = publish(trained_result)
        response = APIClient().get(f"/api/v1/models/{version.version}/float32/download/")
        assert response.status_code == 302 and "Signature=" in response["Location"]
        body = requests.get(response["Location"], timeout=30).content
        assert hashlib.sha256(body).hexdigest() == trained_result[0].variants["float32"].sha256
        # Phones resume with Range on the presigned URL itself; S3 (moto here) answers 206 with those bytes.
        part = requests.get(response["Location"], headers={"Range": "bytes=100-1099"}, timeout=30)
        assert part.status_code == 206 and part.content == body[100:1100]
        assert part.headers["Content-Range"] == f"bytes 100-1099/{len(body)}"
