"""The camera page as an offline-first phone app, in Debian's chromium at 390 px (issue 19).

Service worker, offline reload, the IndexedDB outbox (three photos taken offline survive a
reload and arrive exactly once each), removing a photo from the queue, the quota message, the
on-device model's guess against LiteRT's on the same file, all under the page's real CSP."""

import hashlib
import io

import pytest
from PIL import Image

from collector.models import Photo
from tests.axe import assert_accessible
from tests.factories import image_bytes, make_label
from tests.hardening.test_csp_browser import watch_violations
from tests.pages.conftest import screenshot
from tests.pages.test_browser import _sign_up
from tests.training.conftest import classes_result  # noqa: F401 (session fixture: a real tiny model)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _photo(seed: int) -> dict:
    return {"name": f"IMG_{seed:04d}.jpg", "mimeType": "image/jpeg", "buffer": image_bytes(size=(800, 600), seed=seed)}


def _worker_ready(page) -> None:
    """The service worker is installed and activated (its precache complete) and controls the page. A page
    that was loading while the worker activated may miss its clients.claim(): it is controlled from a
    later load, as on a phone (a loaded machine may need more than one)."""
    page.wait_for_function("() => navigator.serviceWorker.getRegistration()"
                           ".then(r => !!(r && r.active && r.active.state === 'activated'))", timeout=60_000)
    for _ in range(4):
        if page.evaluate("() => !!navigator.serviceWorker.controller"):
            return
        page.reload()
        page.wait_for_timeout(500)
    page.wait_for_function("() => !!navigator.serviceWorker.controller")


def _take(page, seed: int, label: str = "mug") -> None:
    page.get_by_label("What does the photo show?").select_option(label)
    page.get_by_label("Photo", exact=True).set_input_files(_photo(seed))
    page.get_by_role("button", name="Upload").click()


def _queued(page) -> list[str]:
    return page.locator("#outbox-list li").all_inner_texts()


class TestInstallableAndOffline:
    def test_the_worker_installs_and_the_camera_page_opens_offline(self, phone):
        make_label("mug")
        violations = watch_violations(phone)
        _sign_up(phone, "maria")
        manifest = phone.evaluate("() => fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
        assert manifest["start_url"] == "/capture/" and manifest["display"] == "standalone"
        assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}
        _worker_ready(phone)
        cached = phone.evaluate("() => caches.keys()")
        assert any(name.startswith("crowdlens-precache") for name in cached) and "crowdlens-pages" in cached

        phone.context.set_offline(True)
        phone.reload()
        assert phone.locator("h1").inner_text() == "Take a photo"
        assert phone.get_by_label("What does the photo show?").is_visible()
        # The page's scripts came from the worker's cache too: the queue works offline.
        _take(phone, 1)
        expect_text(phone, "#upload-status", "kept on this phone")
        screenshot(phone, "capture-offline-queued")
        phone.context.set_offline(False)
        phone.locator("#outbox").wait_for(state="hidden", timeout=30_000)
        assert Photo.objects.count() == 1
        assert violations == [] and phone.js_errors == []
        assert phone.foreign_requests == []

    def test_three_photos_taken_offline_wait_survive_a_reload_and_arrive_once_each(self, phone):
        make_label("mug")
        make_label("keys")
        violations = watch_violations(phone)
        _sign_up(phone, "maria")
        _worker_ready(phone)
        keys_sent = []
        phone.context.on("request", lambda r: keys_sent.append(r.headers.get("idempotency-key"))
                         if r.url.endswith("/api/v1/photos/") and r.method == "POST" else None)
        phone.context.set_offline(True)
        for n, (seed, label) in enumerate([(11, "mug"), (12, "keys"), (13, "mug")], start=1):
            _take(phone, seed, label)
            phone.wait_for_function("n => document.querySelectorAll('#outbox-list li').length === n", arg=n)
        assert phone.locator("#outbox-count").inner_text() == "3 photos wait to be sent."
        assert all("waiting for a connection" in row for row in _queued(phone))

        phone.reload()  # offline: the page comes from the worker, the photos from IndexedDB
        phone.wait_for_function("() => document.querySelectorAll('#outbox-list li').length === 3")
        assert [row.split(",")[0] for row in _queued(phone)] == ["Mug", "Keys", "Mug"]
        assert not Photo.objects.exists()
        assert_accessible(phone, "camera page with three photos queued, offline, at 390 px")

        phone.context.set_offline(False)  # the `online` event (and Background Sync) send them
        phone.locator("#outbox").wait_for(state="hidden", timeout=30_000)
        photos = list(Photo.objects.order_by("pk"))
        assert [p.label.slug for p in photos] == ["mug", "keys", "mug"]
        assert len({p.idempotency_key for p in photos}) == 3
        assert {p.idempotency_key for p in photos} == {k for k in keys_sent if k}
        phone.reload()  # nothing left to send twice
        phone.wait_for_load_state("networkidle")
        assert Photo.objects.count() == 3
        assert violations == [] and phone.js_errors == []

    def test_a_photo_can_be_removed_from_the_queue(self, phone):
        make_label("mug")
        _sign_up(phone, "maria")
        _worker_ready(phone)
        phone.context.set_offline(True)
        _take(phone, 21)
        phone.locator("#outbox-list li").wait_for()
        phone.get_by_role("button", name="Remove the photo of Mug").click()
        phone.locator("#outbox").wait_for(state="hidden")
        expect_text(phone, "#upload-status", "Removed the photo of Mug")
        phone.context.set_offline(False)
        phone.reload()
        phone.wait_for_load_state("networkidle")
        assert not Photo.objects.exists()

    def test_the_hourly_quota_says_when_it_resets_and_the_photo_waits(self, phone, settings):
        settings.PHOTO_UPLOAD_RATE = "1/hour"
        make_label("mug")
        _sign_up(phone, "maria")
        _take(phone, 31)
        phone.locator("#result").wait_for(state="visible")
        _take(phone, 32)
        error = phone.locator("#upload-status .error")
        error.wait_for()
        text = error.inner_text()
        assert text.startswith("You have sent as many photos as an hour allows. You can send again at ")
        assert "this photo waits on your phone" in text and "server is busy" not in text
        assert "You can send again at" in _queued(phone)[0]
        assert Photo.objects.count() == 1

    def test_a_file_that_is_no_photo_says_what_to_do(self, phone):
        make_label("mug")
        _sign_up(phone, "maria")
        phone.get_by_label("What does the photo show?").select_option("mug")
        phone.get_by_label("Photo", exact=True).set_input_files(
            {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"these are not the bytes of a photo" * 20})
        phone.get_by_role("button", name="Upload").click()
        error = phone.locator("#upload-status .error")
        error.wait_for()
        assert "Take the photo again with the camera" in error.inner_text()
        assert not Photo.objects.exists()


def expect_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => { const e = document.querySelector(s); return e && e.textContent.includes(t) }",
                           arg=[selector, text])


class TestTheModelOnThePhone:
    """A real model (tests/training/conftest.py's tiny classes, trained once per session) published through
    training.services; MediaPipe in chromium runs the int8 file the manifest names, LiteRT the same file."""

    def test_the_phone_guesses_as_litert_does_and_sends_its_guess(self, phone, classes_result, settings, tmp_path):
        from django.test import Client

        from training import ml
        from tests.training.conftest import CLASSES, class_image, publish

        version = publish(classes_result)
        for slug in CLASSES:
            make_label(slug)
        api = Client()
        manifest = api.get("/api/v1/models/latest/").json()
        model_bytes = b"".join(api.get(manifest["download_url"]).streaming_content)
        assert hashlib.sha256(model_bytes).hexdigest() == manifest["sha256"]

        fetched = []
        phone.context.on("request", lambda r: fetched.append((r.url, r.headers.get("if-none-match"))))
        violations = watch_violations(phone)
        _sign_up(phone, "maria")
        phone.wait_for_function("() => document.getElementById('capture-form').dataset.modelVersion", timeout=60_000)
        assert phone.locator("#capture-form").get_attribute("data-model-version") == str(version.version)

        size = manifest["input"]["width"]
        for slug, seed, side in [("red-disc", 501, size), ("green-bar", 502, size), ("blue-square", 503, size),
                                 ("red-disc", 504, 3 * size)]:
            # PNG: both sides read the same pixels (JPEG decoders may differ in chroma upsampling).
            # At the input size no resampling happens, so the scores must be LiteRT's; three times
            # larger the two resize differently (MediaPipe's bilinear has no antialiasing), and the
            # answer must still be LiteRT's.
            buffer = io.BytesIO()
            Image.open(io.BytesIO(class_image(slug, seed, size=side))).save(buffer, "PNG")
            photo = buffer.getvalue()
            path = tmp_path / f"{slug}-{side}.png"
            path.write_bytes(photo)
            scores = ml.classify_image(model_content=model_bytes, image_path=path,
                                       input_spec=ml.InputSpec(**manifest["input"]))
            best = max(range(len(scores)), key=scores.__getitem__)
            phone.get_by_label("What does the photo show?").select_option(slug)
            phone.get_by_label("Photo", exact=True).set_input_files({"name": path.name, "mimeType": "image/png", "buffer": photo})
            phone.wait_for_function("name => { const li = document.querySelector('#guess-list li');"
                                    " return li && document.getElementById('id_image').files[0].name === name }", arg=path.name)
            top = phone.locator("#guess-list li").first
            guessed, score = top.get_attribute("data-label"), float(top.get_attribute("data-score"))
            assert guessed == manifest["labels"][best], (slug, side, guessed, scores)
            if side == size:
                assert abs(score - scores[best]) <= 0.02, (slug, score, scores)
            name = phone.locator(f"#id_target option[value={guessed}]").inner_text()
            expect_text(phone, "#upload-status", f"The model thinks: {name} {round(score * 100)} %")
        screenshot(phone, "capture-model-guess")
        assert_accessible(phone, "camera page with the model's guesses at 390 px")

        phone.get_by_role("button", name="Upload").click()
        phone.locator("#result").wait_for(state="visible")
        stored = Photo.objects.get()
        assert stored.predicted_label == guessed and stored.model_version == version.version
        assert stored.predicted_confidence == pytest.approx(score, abs=1e-3)

        # The second visit asks with If-None-Match, gets 304 and downloads nothing.
        downloads = [url for url, _ in fetched if "/download/" in url]
        assert len(downloads) == 1
        fetched.clear()
        phone.reload()
        phone.wait_for_function("() => document.getElementById('capture-form').dataset.modelVersion", timeout=60_000)
        asked = [etag for url, etag in fetched if "/api/v1/models/latest/" in url]
        assert asked and asked[0], fetched
        assert not [url for url, _ in fetched if "/download/" in url]
        assert violations == [] and phone.js_errors == []


class TestAModelFileThatIsNotTheManifests:
    def test_a_file_whose_sha256_differs_is_never_kept_or_run(self, phone, classes_result):  # noqa: F811
        from tests.training.conftest import CLASSES, publish

        publish(classes_result)
        for slug in CLASSES:
            make_label(slug)

        def tampered(route):
            body = bytearray(route.fetch().body())
            body[len(body) // 2] ^= 0xFF  # one byte changed on the way
            route.fulfill(status=200, body=bytes(body), headers={"Content-Type": "application/octet-stream"})

        phone.context.route("**/download/**", tampered)
        _sign_up(phone, "maria")
        phone.wait_for_function("() => document.getElementById('capture-form').dataset.modelVersion", timeout=60_000)
        assert phone.locator("#capture-form").get_attribute("data-model-version") == "failed"
        assert phone.evaluate("""() => new Promise(resolve => { const open = indexedDB.open('crowdlens');
            open.onsuccess = () => { const get = open.result.transaction('model').objectStore('model').get('current');
                                     get.onsuccess = () => resolve(get.result === undefined); }; })""")
        phone.get_by_label("Photo", exact=True).set_input_files(_photo(51))
        phone.wait_for_timeout(1000)
        assert phone.locator("#guesses").is_hidden()


def _photo_arrives(page, *, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if Photo.objects.exists():
            return True
        page.wait_for_timeout(100)
    return Photo.objects.exists()


class TestBackgroundSync:
    def test_the_worker_sends_the_queue_with_no_page_open(self, phone):
        """Chromium's Background Sync: when the connection returns, the browser wakes the service worker,
        whose `sync` handler sends what waits, though the camera page was closed."""
        make_label("mug")
        _sign_up(phone, "maria")
        _worker_ready(phone)
        phone.context.set_offline(True)
        _take(phone, 41)
        phone.locator("#outbox-list li").wait_for()
        context = phone.context
        blank = context.new_page()  # about:blank: runs none of our scripts
        phone.close()  # no camera page open any more: nothing but the worker can send it
        blank.wait_for_timeout(1000)
        assert not Photo.objects.exists()  # still offline: it waits
        context.set_offline(False)
        if not _photo_arrives(blank, seconds=3):
            # Chromium fires the sync when it sees the connection back, or later after a failed try
            # (its back-off is minutes); DevTools' dispatchSyncEvent fires the same handler now.
            cdp = context.new_cdp_session(blank)
            registrations = []
            cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
            cdp.send("ServiceWorker.enable")
            blank.wait_for_timeout(500)
            registration = next(r for r in registrations if not r["isDeleted"])
            cdp.send("ServiceWorker.dispatchSyncEvent", {"origin": registration["scopeURL"].rstrip("/"),
                                                         "registrationId": registration["registrationId"],
                                                         "tag": "crowdlens-outbox", "lastChance": False})
            assert _photo_arrives(blank, seconds=30)
        assert Photo.objects.get().label.slug == "mug"
        blank.goto("/capture/")  # the queue is empty: nothing is sent a second time
        blank.wait_for_load_state("networkidle")
        assert blank.locator("#outbox").is_hidden()
        assert Photo.objects.count() == 1
