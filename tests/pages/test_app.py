"""The installable app's pieces over HTTP: the service worker, the web app manifest, the camera page's policy."""

import json
import re

import pytest


class TestServiceWorker:
    def test_it_is_served_at_the_root_uncached_and_precaches_the_shell_and_runtime(self, client):
        response = client.get("/sw.js")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/javascript")
        assert response["Cache-Control"] == "no-cache"
        body = response.content.decode()
        assert 'importScripts("/static/vendor/workbox/workbox-sw.js", "/static/js/outbox.js")' in body
        precache = json.loads(re.search(r"precacheAndRoute\((\[.*?\])\)", body).group(1))
        urls = {entry["url"] for entry in precache}
        assert {"/static/js/capture.js", "/static/js/outbox.js", "/static/js/model.js", "/static/css/site.css",
                "/static/vendor/mediapipe/wasm/vision_wasm_internal.wasm"} <= urls
        assert all(re.fullmatch(r"[0-9a-f]{16}", entry["revision"]) for entry in precache)
        for entry in precache:  # every file it names is served by the site itself
            assert client.get(entry["url"]).status_code == 200, entry["url"]

    def test_the_wasm_is_served_as_wasm(self, client):
        response = client.get("/static/vendor/mediapipe/wasm/vision_wasm_internal.wasm")
        assert response["Content-Type"] == "application/wasm"  # instantiateStreaming refuses anything else


class TestManifest:
    def test_it_installs_the_camera_page(self, client):
        response = client.get("/manifest.webmanifest")
        assert response["Content-Type"] == "application/manifest+json"
        manifest = response.json()
        assert manifest["start_url"] == "/capture/" and manifest["scope"] == "/" and manifest["display"] == "standalone"
        for icon in manifest["icons"]:
            assert client.get(icon["src"]).status_code == 200

    @pytest.mark.django_db
    def test_every_page_links_it_and_registers_the_worker(self, client):
        body = client.get("/").content.decode()
        assert '<link rel="manifest" href="/manifest.webmanifest">' in body
        assert '<script src="/static/js/app.js" defer></script>' in body


@pytest.mark.django_db
class TestPolicy:
    def test_only_the_camera_page_may_compile_webassembly(self, client):
        from tests.factories import make_volunteer

        client.force_login(make_volunteer("maria").user)
        capture = client.get("/capture/")["Content-Security-Policy"]
        script_src = next(d for d in capture.split(";") if d.strip().startswith("script-src")).split()
        assert "'wasm-unsafe-eval'" in script_src and "'self'" in script_src
        assert "'unsafe-eval'" not in script_src and "'unsafe-inline'" not in script_src
        for path in ["/", "/me/", "/sw.js"]:
            assert "wasm-unsafe-eval" not in client.get(path)["Content-Security-Policy"], path
