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
        assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok", "spool": "ok"}}

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

    def test_it_names_an_s3_bucket_that_does_not_exist(self, client, s3_storage, settings):
        """The server answers, the bucket is gone (deleted, or a typo in S3_BUCKET): nothing could be stored."""
        settings.STORAGES = {**settings.STORAGES, "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "no-such-bucket"}}}
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["failed"] == ["storage"]

    def test_it_names_a_database_that_does_not_answer(self, tmp_path):
        """A web process whose database is down (here: nothing listens where DATABASE_URL points) answers 503
        naming it, in a second or so, and its liveness path still answers 200."""
        import json
        import subprocess
        import sys
        import time

        from django.conf import settings as django_settings

        probe = (
            "import django, json; django.setup()\n"
            "from django.test import Client\n"
            "c = Client()\n"
            "r, live = c.get('/healthz'), c.get('/healthz/live')\n"
            "print(json.dumps([r.status_code, r.json(), live.status_code]))\n"
        )
        env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
               "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "testserver", "CROWDLENS_VAR_DIR": str(tmp_path),
               "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead_port()}/crowdlens", "TF_CPP_MIN_LOG_LEVEL": "3"}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", probe], cwd=django_settings.BASE_DIR, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        status, body, live = json.loads(done.stdout.strip().splitlines()[-1])
        assert status == 503 and live == 200
        # Without REDIS_URL the cache is the database's own table (shared by every process): it fails with it.
        assert body["failed"] == ["database", "cache"] and body["checks"]["storage"] == "ok", body
        assert time.monotonic() - started < 60

    def test_it_names_every_part_that_fails(self, client, dead_cache, unwritable_storage):
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["failed"] == ["cache", "storage"]


class TestLiveness:
    def test_it_answers_200_without_touching_anything(self, client, dead_cache, unwritable_storage,
                                                      django_assert_num_queries):
        with django_assert_num_queries(0):
            response = client.get("/healthz/live")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
