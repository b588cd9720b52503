"""/healthz answers 200 only when database, cache and storage answer; /healthz/live touches nothing."""

import socket

import pytest

from tests.s3 import storage_settings

pytestmark = pytest.mark.django_db


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{dead_port()}/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}


@pytest.fixture
def unwritable_storage(settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker / "media")}}}


class TestReadiness:
    def test_it_answers_200_when_everything_answers(self, client):
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok"}}

    def test_it_answers_200_with_a_media_folder_not_created_yet(self, client, settings, tmp_path):
        settings.STORAGES = {**settings.STORAGES, "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "a" / "b")}}}
        assert client.get("/healthz").status_code == 200

    def test_it_names_a_cache_that_does_not_answer(self, client, dead_cache):
        response = client.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["failed"] == ["cache"] and body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"

    def test_it_names_a_storage_folder_that_cannot_be_written(self, client, unwritable_storage):
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["failed"] == ["storage"]

    def test_it_names_an_s3_endpoint_that_does_not_answer(self, client, settings):
        settings.STORAGES = {**settings.STORAGES, "default": storage_settings(
            bucket="photos", endpoint_url=f"http://127.0.0.1:{dead_port()}")}
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["failed"] == ["storage"]

    def test_it_answers_200_against_a_real_s3_bucket(self, client, s3_storage):
        assert client.get("/healthz").json()["checks"]["storage"] == "ok"

    def test_it_names_every_part_that_fails(self, client, dead_cache, unwritable_storage):
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["failed"] == ["cache", "storage"]


class TestLiveness:
    def test_it_answers_200_without_touching_anything(self, client, dead_cache, unwritable_storage,
                                                      django_assert_num_queries):
        with django_assert_num_queries(0):
            response = client.get("/healthz/live")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
