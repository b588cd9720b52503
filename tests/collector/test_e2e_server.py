"""End to end: a real gunicorn process on a free loopback port, its own SQLite file and media folder, HTTP requests."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.collector import samples

ROOT = Path(__file__).resolve().parents[2]


def _manage(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=180)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "S3_", "DJANGO_SETTINGS"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "e2e-secret-key",
        "DEBUG": "false",
        "DATABASE_URL": f"sqlite:///{tmp / 'e2e.sqlite3'}",
        "CROWDLENS_VAR_DIR": str(tmp / "var"),
        "MEDIA_ROOT": str(tmp / "media"),
        "STATIC_ROOT": str(tmp / "static"),
        "PHOTO_MAX_BYTES": str(2 * 1024 * 1024),
        "SITE_URL": "http://127.0.0.1",
    }
    _manage(env, "migrate", "--noinput")
    _manage(env, "shell", "-c", "from collector.models import Label; Label.objects.create(slug='mug', name='Mug')")
    log = open(tmp / "gunicorn.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", "127.0.0.1:0", "--workers", "2",
         "--timeout", "60", "--access-logfile", "-"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        base = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and base is None:
            if process.poll() is not None:
                raise RuntimeError("gunicorn exited: " + (tmp / "gunicorn.log").read_text())
            match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", (tmp / "gunicorn.log").read_text())
            if match:
                base = match.group(1)
            else:
                time.sleep(0.2)
        assert base, "gunicorn did not start: " + (tmp / "gunicorn.log").read_text()
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/api/v1/labels/", timeout=10).status_code == 200:
                    break
            except requests.RequestException:  # workers still booting
                time.sleep(0.2)
        yield {"base": base, "media": tmp / "media"}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class TestAgainstARealServer:
    def test_register_upload_list_thumbnail(self, server):
        base = server["base"]
        reg = requests.post(base + "/api/v1/volunteers/",
                            json={"display_name": "e2e-volunteer", "consent_training": True}, timeout=10)
        assert reg.status_code == 201, reg.text
        auth = {"Authorization": f"Token {reg.json()['token']}"}

        labels = requests.get(base + "/api/v1/labels/", timeout=10).json()
        assert [row["slug"] for row in labels] == ["mug"]

        photo = samples.oriented_jpeg(6, (600, 400))
        up = requests.post(base + "/api/v1/photos/", headers={**auth, "Idempotency-Key": "e2e-1"},
                           files={"image": ("IMG_0001.JPG", photo, "image/jpeg")},
                           data={"label": "mug", "device_model": "e2e"}, timeout=30)
        assert up.status_code == 201, up.text
        body = up.json()
        assert (body["width"], body["height"]) == (600, 400) and body["status"] == "pending"

        retry = requests.post(base + "/api/v1/photos/", headers={**auth, "Idempotency-Key": "e2e-1"},
                              files={"image": ("IMG_0001.JPG", photo, "image/jpeg")}, data={"label": "mug"}, timeout=30)
        assert retry.status_code == 200 and retry.json()["id"] == body["id"]

        listing = requests.get(base + "/api/v1/photos/", headers=auth, timeout=10).json()
        assert [row["id"] for row in listing["results"]] == [body["id"]]

        assert body["thumbnail_url"] == f"{base}/api/v1/photos/{body['id']}/thumbnail/"
        thumb = requests.get(body["thumbnail_url"], headers=auth, timeout=10)
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(thumb.content))
        assert image.size == (480, 320)
        colours = samples.quadrant_colours(image)
        assert all(samples.close_to(colours[c], e) for c, e in samples.QUADRANTS.items())
        assert requests.get(body["thumbnail_url"], timeout=10).status_code == 404, "not without the token"

        me = requests.get(base + "/api/v1/me/", headers=auth, timeout=10).json()
        assert me["photos"]["pending"] == 1
        files = sorted(p for p in server["media"].rglob("*") if p.is_file())
        assert len(files) == 3

    def test_concurrent_identical_uploads_make_one_photo(self, server):
        """Two workers, one SQLite file, six requests at once with the same key and bytes."""
        import threading

        base = server["base"]
        token = requests.post(base + "/api/v1/volunteers/", json={"display_name": "e2e-race", "consent_training": True},
                              timeout=10).json()["token"]
        photo = samples.encode(samples.scene(42, (1600, 1200)), "JPEG", quality=90)
        files_before = {p for p in server["media"].rglob("*") if p.is_file()}
        start = threading.Barrier(6)
        results = []

        def send():
            start.wait()
            r = requests.post(base + "/api/v1/photos/", headers={"Authorization": f"Token {token}", "Idempotency-Key": "race"},
                              files={"image": ("p.jpg", photo, "image/jpeg")}, data={"label": "mug"}, timeout=60)
            results.append(r)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in results) == [200] * 5 + [201], [(r.status_code, r.text[:200]) for r in results]
        assert len({r.json()["id"] for r in results}) == 1
        new_files = {p for p in server["media"].rglob("*") if p.is_file()} - files_before
        assert len(new_files) == 3, "the losers' files were removed"

    def test_a_chunked_upload_works_through_gunicorn(self, server):
        base = server["base"]
        token = requests.post(base + "/api/v1/volunteers/", json={"display_name": "e2e-chunked", "consent_training": True},
                              timeout=10).json()["token"]
        prepared = requests.Request("POST", base + "/api/v1/photos/", files={"image": ("p.jpg", samples.png_bytes())},
                                    data={"label": "mug"}).prepare()
        body = prepared.body

        def chunks():
            for i in range(0, len(body), 4096):
                yield body[i:i + 4096]

        response = requests.post(base + "/api/v1/photos/", data=chunks(), timeout=30, headers={
            "Authorization": f"Token {token}", "Content-Type": prepared.headers["Content-Type"]})
        assert response.status_code == 201, response.text

    def test_a_huge_declared_body_is_refused_before_it_is_sent(self, server):
        host, port = server["base"].removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /api/v1/photos/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: multipart/form-data; boundary=x\r\n"
                         b"Content-Length: 10000000000\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert b'"code":"too_large"' in reply.replace(b" ", b"")

    def test_an_unknown_api_url_is_a_json_404(self, server):
        response = requests.get(server["base"] + "/api/v1/does-not-exist/", timeout=10)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


class TestStaticFilesWithoutDebug:
    def test_the_server_serves_its_own_static_files_with_debug_off(self, server):
        """DEBUG=false with no separate web server: pages still get their CSS and the API docs their assets."""
        base = server["base"]
        home = requests.get(base + "/", timeout=30)
        assert home.status_code == 200
        stylesheets = re.findall(r'<link[^>]+href="(/static/[^"]+\.css)"', home.text)
        assert stylesheets
        for href in stylesheets:
            css = requests.get(base + href, timeout=30)
            assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]
        docs = requests.get(base + "/api/docs/", timeout=30)
        assert docs.status_code == 200
        script = re.findall(r'src="(/static/[^"]+\.js)"', docs.text)[0]
        assert requests.get(base + script, timeout=30).status_code == 200
