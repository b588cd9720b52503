"""A part that fails (Redis, the upload disk, PostgreSQL) makes the site answer 503 "retry later", never 500.

Real parts: a Redis address nothing answers on, a real filesystem that is full (a tmpfs of a few MiB,
mounted here; the test needs root, as CI and the deployment test have), a PostgreSQL address nothing
answers on. tests/deploy/test_failing_parts.py stops and restarts real servers under a running cluster.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from PIL import Image

from collector.models import Photo
from config.errors import UNAVAILABLE_RETRY_AFTER
from tests.conftest import stored_files
from tests.factories import client_for, make_label, make_volunteer, upload
from tests.hardening.test_health import dead_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down(settings):
    """REDIS_URL points where no Redis answers (stopped, or its host gone): throttle counters cannot be read."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{dead_port()}/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}


def assert_unavailable(response, code: str):
    assert response.status_code == 503, response.content[:500]
    assert json.loads(response.content)["error"]["code"] == code
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)


def assert_try_again_page(response):
    assert response.status_code == 503, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)
    assert b"Try again soon" in response.content


class TestRedisDown:
    def test_every_throttled_write_answers_503_unavailable_with_retry_after(self, redis_down):
        label = make_label("mug")
        volunteer = make_volunteer("alice", password="a-long-alice-password")
        anonymous = Client(raise_request_exception=False)
        answers = {
            "sign-up": anonymous.post("/api/v1/volunteers/", {"display_name": "bob", "password": "a-long-bob-password",
                                                               "consent_training": True}, content_type="application/json"),
            "token": anonymous.post("/api/v1/auth/token/", {"username": "alice", "password": "a-long-alice-password"},
                                    content_type="application/json"),
            "upload": upload(client_for(volunteer.user), label=label.slug),
            "subscribe": anonymous.post("/api/v1/newsletter/subscribe/", {"email": "c@example.org"},
                                        content_type="application/json"),
        }
        for what, response in answers.items():
            assert response.status_code == 503, (what, response.content[:300])
            assert_unavailable(response, "unavailable")
        assert Photo.objects.count() == 0

    def test_the_sign_up_page_shows_try_again_soon(self, redis_down):
        page = Client(raise_request_exception=False).post(
            "/signup/", {"display_name": "bob", "password": "a-long-bob-password",
                         "consent_training": "on"})
        assert_try_again_page(page)

    def test_readiness_names_the_cache(self, redis_down, client):
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["failed"] == ["cache"]


# --- a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A real filesystem of 4 MiB (tmpfs), unmounted afterwards; skipped where mounting is not allowed."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the filesystem of ``folder`` up to ``leave`` bytes free."""
    import shutil

    filler = folder / "filler"
    with open(filler, "wb") as out:
        out.write(b"\0" * max(0, shutil.disk_usage(folder).free - leave))
    return filler


def big_photo() -> bytes:
    """Random pixels: a PNG of about 3 MiB, over FILE_UPLOAD_MAX_MEMORY_SIZE, so Django spools it to disk."""
    image = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


class TestDiskFull:
    def test_an_upload_to_a_full_spool_answers_503_and_leaves_nothing(self, settings, tiny_disk):
        settings.FILE_UPLOAD_TEMP_DIR = str(tiny_disk)
        filler = fill(tiny_disk, leave=256 * 1024)
        label = make_label("mug")
        client = client_for(make_volunteer().user)
        client.raise_request_exception = False

        response = upload(client, big_photo(), label=label.slug, filename="big.png")
        assert_unavailable(response, "storage_unavailable")
        assert sorted(tiny_disk.iterdir()) == [filler], "a half-written spool file stayed behind"
        assert Photo.objects.count() == 0 and stored_files(settings.MEDIA_ROOT) == []

        # Room again: the same upload goes through, and the spool is empty afterwards.
        filler.unlink()
        assert upload(client, big_photo(), label=label.slug, filename="big.png").status_code == 201
        assert list(tiny_disk.iterdir()) == []

    def test_a_full_storage_disk_answers_503_and_keeps_no_part_of_the_photo(self, settings, tiny_disk):
        settings.STORAGES = {**settings.STORAGES, "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tiny_disk / "media")}}}
        fill(tiny_disk, leave=512 * 1024)  # the spool (elsewhere) takes the 3 MiB, the storage cannot
        label = make_label("mug")
        client = client_for(make_volunteer().user)

        response = upload(client, big_photo(), label=label.slug, filename="big.png")
        assert_unavailable(response, "storage_unavailable")
        assert stored_files(tiny_disk / "media") == [], "a half-written photo stayed in storage"
        assert Photo.objects.count() == 0

    def test_readiness_fails_while_the_spool_has_less_room_than_one_largest_upload(self, settings, tiny_disk, client):
        settings.FILE_UPLOAD_TEMP_DIR = str(tiny_disk)
        settings.REQUEST_MAX_BYTES = 2 * 1024 * 1024
        assert client.get("/healthz").status_code == 200
        filler = fill(tiny_disk, leave=settings.REQUEST_MAX_BYTES - 64 * 1024)
        response = client.get("/healthz")
        assert response.status_code == 503 and response.json()["failed"] == ["spool"]
        filler.unlink()
        assert client.get("/healthz").json()["checks"]["spool"] == "ok"
        settings.FILE_UPLOAD_TEMP_DIR = str(tiny_disk / "not-created")
        assert client.get("/healthz").json()["failed"] == ["spool"]

    def test_a_chunked_body_to_a_full_spool_answers_503(self, settings, tiny_disk, rf):
        """Bodies without a Content-Length are spooled by the middleware itself (config.middleware)."""
        from config.middleware import RequestSizeLimitMiddleware

        settings.FILE_UPLOAD_TEMP_DIR = str(tiny_disk)
        filler = fill(tiny_disk, leave=256 * 1024)
        body = b"x" * (3 * 1024 * 1024)
        request = rf.post("/api/v1/photos/", data=body, content_type="multipart/form-data; boundary=x",
                          HTTP_TRANSFER_ENCODING="chunked")
        del request.META["CONTENT_LENGTH"]
        request.META["wsgi.input"], request.META["wsgi.input_terminated"] = io.BytesIO(body), True
        response = RequestSizeLimitMiddleware(lambda r: pytest.fail("the view must not run"))(request)
        assert_unavailable(response, "storage_unavailable")
        assert sorted(tiny_disk.iterdir()) == [filler]


# --- PostgreSQL down --------------------------------------------------------------------------------


class TestDatabaseDown:
    def test_signed_in_pages_show_try_again_soon_and_the_api_its_503(self, tmp_path):
        """A web process whose PostgreSQL is down (nothing listens where DATABASE_URL points): a signed-in
        page (its session lives in the database) shows the "try again soon" page with 503, the API 503."""
        from django.conf import settings as django_settings

        probe = (
            "import django, json; django.setup()\n"
            "from django.test import Client\n"
            "c = Client(raise_request_exception=False, HTTP_ACCEPT='text/html')\n"
            "c.cookies['sessionid'] = 'x' * 32\n"
            "out = {}\n"
            "for path in ('/me/', '/capture/', '/api/v1/me/'):\n"
            "    r = c.get(path)\n"
            "    out[path] = [r.status_code, r.get('Retry-After'), r['Content-Type'], r.content.decode()]\n"
            "print(json.dumps(out))\n"
        )
        env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
               "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "testserver", "CROWDLENS_VAR_DIR": str(tmp_path),
               "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead_port()}/crowdlens", "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", probe], cwd=django_settings.BASE_DIR, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        answers = json.loads(done.stdout.strip().splitlines()[-1])
        for path in ("/me/", "/capture/"):
            status, retry_after, content_type, body = answers[path]
            assert (status, retry_after) == (503, str(UNAVAILABLE_RETRY_AFTER)), (path, body[:500])
            assert content_type.startswith("text/html") and "Try again soon" in body, body[:500]
        status, retry_after, content_type, body = answers["/api/v1/me/"]
        assert (status, retry_after) == (503, str(UNAVAILABLE_RETRY_AFTER))
        assert json.loads(body)["error"]["code"] == "database_unavailable"


def test_a_real_error_is_still_a_500():
    """Only a part that is down is a 503: any other exception stays the logged 500 it is."""
    from config.errors import unavailable_part

    assert unavailable_part(ValueError("a bug")) is None
    assert unavailable_part(OSError(13, "Permission denied")) is None
    assert unavailable_part(OSError(28, "No space left on device")).code == "storage_unavailable"


def test_a_part_down_under_a_middleware_is_a_503_too(rf):
    """Exceptions raised in middleware (a session saved as the response leaves) never reach process_exception:
    Django hands them to handler500 while they are being handled, and it answers 503 for a part that is down."""
    from django.db import OperationalError

    from config.errors import handler500

    for path, wants in (("/me/", "text/html"), ("/api/v1/me/", "application/json")):
        try:
            raise OperationalError("server closed the connection unexpectedly")
        except OperationalError:
            response = handler500(rf.get(path))
        assert response.status_code == 503 and response["Content-Type"].startswith(wants), path
        assert response["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)
    try:
        raise ValueError("a bug")
    except ValueError:
        assert handler500(rf.get("/api/v1/me/")).status_code == 500
