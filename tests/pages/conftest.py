"""Browser fixtures: Debian's chromium driven by Playwright's Python API.

Playwright's own browser download cannot work here, so the system chromium
is launched by its path (deploy/ensure-test-tools.sh installs it). Pages are
served by pytest-django's live_server (a real threaded HTTP server on a free
port, transactional database).

Playwright's sync API keeps an asyncio loop running in the test thread, and
Django refuses ORM calls from a thread with a running loop. The browser is
therefore started per test module (stopped before other modules run) and
DJANGO_ALLOW_ASYNC_UNSAFE is set only while that module runs: the ORM calls
in these tests are plain synchronous calls from the test thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(__file__).resolve().parent.parent / "_artifacts"


@pytest.fixture(scope="module")
def chromium(django_db_setup):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run deploy/ensure-test-tools.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        # The pages' service worker (/sw.js) fetches too: without this, set_offline() and context.route()
        # leave its requests alone (Playwright's Chromium default), and "offline" would not be offline.
        env.setenv("PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS", "1")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def new_phone(chromium, live_server):
    """Make a fresh phone-sized browser context (own cookies) on the live server; closed after the test."""
    contexts = []

    def make():
        context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=1,
                                       base_url=live_server.url, locale="en-US")
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        errors, foreign = [], []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: None if r.url.startswith((live_server.url, "data:", "blob:")) else foreign.append(r.url))
        page.js_errors = errors
        page.foreign_requests = foreign  # anything fetched from another host (a CDN, fonts, ...)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def phone(new_phone):
    return new_phone()


def screenshot(page, name: str) -> Path:
    """A full-page PNG in tests/_artifacts/ (gitignored) to look at after the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
