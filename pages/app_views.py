"""The installable app: the service worker at /sw.js and the web app manifest (issue 19, docs/pages.md).

The worker is rendered here rather than served from static/ because a worker's scope is its own
folder: at /sw.js it covers every page. It lists the files it precaches with a revision (a hash of
each file's bytes), so Workbox refetches exactly the files that changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

from django.contrib.staticfiles import finders
from django.http import JsonResponse
from django.shortcuts import render
from django.templatetags.static import static


# Files the service worker precaches (static/vendor/ comes from npm through deploy/frontend.sh):
# the capture page's shell and the model's runtime (the SIMD build every current browser runs).
APP_SHELL = [
    "css/site.css", "js/app.js", "js/outbox.js", "js/model.js", "js/capture.js", "icons/icon-192.png",
    "vendor/mediapipe/vision_bundle.mjs", "vendor/mediapipe/wasm/vision_wasm_internal.js",
    "vendor/mediapipe/wasm/vision_wasm_internal.wasm",
]


@functools.lru_cache(maxsize=64)
def _revision(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _precache_entries() -> list[dict]:
    entries = []
    for name in APP_SHELL:
        found = finders.find(name)
        if not found:  # static/vendor/ not installed (deploy/frontend.sh): the worker still keeps the rest
            continue
        stat = os.stat(found)
        entries.append({"url": static(name), "revision": _revision(found, stat.st_mtime_ns, stat.st_size)})
    return entries


def service_worker(request):
    """/sw.js: at the site's root so that its scope covers every page; never cached by HTTP (the
    browser checks it for updates; Workbox's revisions say which files changed)."""
    response = render(request, "pages/sw.js", {
        "precache": json.dumps(_precache_entries()),
        "workbox_base": static("vendor/workbox/"),
        "runtime_base": static("vendor/mediapipe/"),
        "outbox_js": static("js/outbox.js"),
    }, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


def web_manifest(request):
    """The web app manifest: what "Add to Home Screen" installs (opens on the camera page)."""
    response = JsonResponse({
        "name": "Crowdlens", "short_name": "Crowdlens",
        "description": "Photograph everyday objects in unexpected places and help train a model that runs on phones.",
        "id": "/", "start_url": "/capture/", "scope": "/", "display": "standalone",
        "background_color": "#ffffff", "theme_color": "#0b57a4",
        "icons": [{"src": static(f"icons/icon-{size}.png"), "sizes": f"{size}x{size}", "type": "image/png",
                   "purpose": "any"} for size in (192, 512)],
    }, content_type="application/manifest+json")
    response["Cache-Control"] = "no-cache"
    return response
