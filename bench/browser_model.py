"""The model on the phone (issue 19): MediaPipe in Debian's chromium at 390 px against LiteRT on the same file.

A real server (``manage.py runserver``, its own SQLite file and media under a temporary directory), a real
model: a head on the shared ImageNet MobileNetV2 (alpha 0.35) trained on flowers from ../shared/data (never
needed by tests), published through training.services as a night does. The camera page then runs the
published int8 file in the browser as a volunteer would:

- cold: a new browser profile opens /capture/ and picks a photo; time from the navigation to the first guess
  on screen, and every byte the profile fetched (the page, scripts, MediaPipe's runtime, the model, and the
  service worker's precache, which fetches the runtime a second time on a first visit);
- warm: the same profile comes back (service worker, model kept in IndexedDB, manifest answered 304);
- per photo: time from picking a photo to its guess on screen, over the held-out flowers;
- agreement: the browser's top label against LiteRT's on the same file, prepared as the manifest says.
  Baseline for the per-photo time: LiteRT in this Python process on the same photos (one thread).

    .venv/bin/python bench/browser_model.py                     # 60 training, 40 held-out flowers per class
    .venv/bin/python bench/browser_model.py --train 30 --held-out 20
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from deploy.localcluster import wait_for  # noqa: E402
SHARED = ROOT.parent / "shared" / "data"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
VOLUNTEER, PASSWORD = "bench-phone", "a-long-benchmark-secret-7"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photos(per_class_train: int, held_out: int) -> tuple[list[str], list, list, list[Path]]:
    from training.ml import Example

    labels = sorted(p.name for p in (SHARED / "flowers").iterdir() if p.is_dir())
    train, val, test = [], [], []
    for index, label in enumerate(labels):
        files = sorted((SHARED / "flowers" / label).glob("*.jpg"), key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
        for n, path in enumerate(files[: per_class_train + 5 + held_out]):
            example = Example(key=hashlib.sha256(path.read_bytes()).hexdigest(), path=path, label_index=index)
            (train if n < per_class_train else val if n < per_class_train + 5 else test).append(example)
    return labels, train, val, test


def setup(workdir: Path) -> dict:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}", "MEDIA_ROOT": str(workdir / "media"),
           "CROWDLENS_VAR_DIR": str(workdir), "DEBUG": "true", "SECRET_KEY": "bench-only-secret",
           "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"}
    os.environ.update(env)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API keeps a loop in this thread
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from tests.factories import make_volunteer

    make_volunteer(VOLUNTEER, password=PASSWORD)
    return env


def train_and_publish(labels, train, val, test, out: Path):
    from training import ml
    from tests.factories import make_label
    from tests.training.conftest import publish

    hparams = ml.HParams(backbone=ml.BackboneConfig(alpha=0.35, input_size=128, base_weights=str(WEIGHTS)),
                         fine_tune_min_per_class=10**6, augment=False, augment_views=0, epochs_head=30,
                         variants=("float32", "int8"))
    started = time.perf_counter()
    result = ml.train_and_export(train=train, val=val, test=test, labels=labels, hparams=hparams,
                                 feature_store=ml.MemoryFeatureStore(), out_dir=out, log=lambda message: None)
    print(f"trained in {time.perf_counter() - started:.0f} s: int8 top-1 {result.variants['int8'].accuracy:.3f} "
          f"on {len(test)} held-out flowers (LiteRT)")
    for label in labels:
        make_label(label)
    return publish((result, test)), result


class ServerLog:
    """What the server sent, from runserver's request log ("GET /path HTTP/1.1" 200 12345): the body bytes
    of every answer, whoever asked (the page, its service worker); a 304 or an answer from a cache on the
    phone sends none. Counted from the server's side because a browser-side count cannot tell a service
    worker's cached answer from a network one reliably."""

    LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) (?P<size>\d+)')

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def since_mark(self, settle: float = 1.0) -> tuple[int, int, list[str]]:
        time.sleep(settle)  # the server writes a line once it has answered
        with self.path.open() as handle:
            handle.seek(self.offset)
            lines = [m for m in map(self.LINE.search, handle.read().splitlines()) if m]
        big = [f"{m['path']} {m['status']} {int(m['size']) // 1000} kB" for m in lines if int(m["size"]) > 100_000]
        return sum(int(m["size"]) for m in lines), len(lines), big


def pick(page, path: Path) -> float:
    started = time.perf_counter()
    page.get_by_label("Photo", exact=True).set_input_files(str(path))
    page.wait_for_function("name => { const li = document.querySelector('#guess-list li');"
                           " return li && document.getElementById('id_image').files[0].name === name }",
                           arg=path.name, polling=5)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=60, help="training flowers per class")
    parser.add_argument("--held-out", type=int, default=40, help="held-out flowers per class (agreement, timing)")
    args = parser.parse_args()
    if not WEIGHTS.exists() or not Path(CHROMIUM).exists():
        raise SystemExit(f"needs {WEIGHTS} and {CHROMIUM} (deploy/ensure-test-tools.sh)")
    if not (ROOT / "static" / "vendor" / "mediapipe" / "vision_bundle.mjs").exists():
        raise SystemExit("static/vendor/ is missing: run deploy/frontend.sh")
    workdir = Path(tempfile.mkdtemp(prefix="crowdlens-bench-browser-model-"))
    env = setup(workdir)
    labels, train, val, test = photos(args.train, args.held_out)
    version, result = train_and_publish(labels, train, val, test, workdir / "export")

    from django.conf import settings

    from training import ml

    model_file = version.files.get(variant=settings.TRAINING_DEFAULT_VARIANT)
    model_bytes = Path(result.variants[model_file.variant].path).read_bytes()
    spec = ml.InputSpec(**model_file.input_spec)
    litert, litert_seconds = [], 0.0
    for example in test:
        started = time.perf_counter()
        scores = ml.classify_image(model_content=model_bytes, image_path=example.path, input_spec=spec)
        litert_seconds += time.perf_counter() - started
        litert.append(version.labels[max(range(len(scores)), key=scores.__getitem__)])

    port = free_port()
    log_path = workdir / "server.log"
    log_file = log_path.open("w")
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=ROOT, env={**env, "LOG_LEVEL": "INFO"}, stdout=log_file, stderr=subprocess.STDOUT)
    log = ServerLog(log_path)
    from playwright.sync_api import sync_playwright

    from tests.pages.conftest import CHROMIUM_ARGS, PHONE

    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.2).close() or True,
                 timeout=10, what="the bench's web server")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                          base_url=f"http://127.0.0.1:{port}")
            context.set_default_timeout(120_000)
            # Signed in without a page load (the sign-in page would warm the caches): a session cookie.
            from django.test import Client

            client = Client()
            client.login(username=VOLUNTEER, password=PASSWORD)
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                                  "url": f"http://127.0.0.1:{port}"}])
            page = context.new_page()
            log.mark()
            started = time.perf_counter()
            page.goto("/capture/")
            cold = time.perf_counter() - started + pick(page, test[0].path)
            page.wait_for_function("() => navigator.serviceWorker.getRegistration()"
                                   ".then(r => !!(r && r.active && r.active.state === 'activated'))")
            page.wait_for_load_state("networkidle")
            first_bytes, first_requests, first_big = log.since_mark()

            log.mark()
            started = time.perf_counter()
            page.goto("/capture/")
            warm = time.perf_counter() - started + pick(page, test[1].path)
            page.wait_for_load_state("networkidle")
            second_bytes, second_requests, second_big = log.since_mark()
            browser_top, seconds = [], []
            for example in test:
                seconds.append(pick(page, example.path))
                browser_top.append(page.locator("#guess-list li").first.get_attribute("data-label"))
            browser.close()
    finally:
        server.terminate()
        server.wait()
        log_file.close()

    agree = sum(a == b for a, b in zip(browser_top, litert))
    truth = [labels[e.label_index] for e in test]
    per_photo = statistics.median(seconds) * 1000
    litert_ms = 1000 * litert_seconds / len(test)
    print(f"device: Debian chromium, 390 px phone viewport, {os.cpu_count()} CPUs (shared); model v{version.version} "
          f"{model_file.variant}, {model_file.size_bytes} bytes, input {spec.width} px")
    print(f"time to first guess: cold {cold:.2f} s, warm {warm:.2f} s (warm/cold {warm / cold:.2f})")
    print(f"bytes fetched: first visit {first_bytes / 1e6:.2f} MB in {first_requests} requests, "
          f"second visit {second_bytes / 1e3:.1f} kB in {second_requests} requests "
          f"(second/first {second_bytes / first_bytes:.4f}); over 100 kB: first {first_big}, second {second_big}")
    print(f"per photo, pick to guess on screen: median {per_photo:.0f} ms (p90 {sorted(seconds)[int(0.9 * len(seconds))] * 1000:.0f} ms); "
          f"LiteRT in Python, classify_image incl. decoding: {litert_ms:.0f} ms (browser/LiteRT {per_photo / litert_ms:.2f})")
    print(f"agreement with LiteRT (top label): {agree}/{len(test)} = {agree / len(test):.3f} (target >= 0.97); "
          f"top-1 vs truth: browser {sum(a == t for a, t in zip(browser_top, truth)) / len(test):.3f}, "
          f"LiteRT {sum(a == t for a, t in zip(litert, truth)) / len(test):.3f}")


if __name__ == "__main__":
    main()
