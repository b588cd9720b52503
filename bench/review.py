"""Review benchmark: photos decided per minute on the review queue page against the photo-by-photo flow.

A real server (``manage.py runserver``, its own SQLite file and media folder under a temporary directory)
and Debian's chromium through Playwright, as in the browser tests. Each round seeds N pending photos and
lets a scripted reviewer decide all of them by keyboard, with the same plan in both flows: approve most,
reject every tenth with a reason.

- review queue (``/admin/collector/photo/review/``): one key per photo (``a``; ``r`` + digit to reject),
  decisions posted in the background, the next page of photos swapped in without a page load;
- baseline, the photo page flow that existed before it: open the oldest pending photo's page, press ``a``
  (or a reason's digit) on its review panel, which posts and loads the next pending photo's page.

The time counted is from the first key to the last decision stored (the database is polled), so neither
flow gets credit for work still in flight. Human thinking time is not modelled: the figures are the
ceiling the page sets on a reviewer who has already decided.

    .venv/bin/python bench/review.py                 # 50 photos per flow, 2 rounds
    .venv/bin/python bench/review.py --photos 100 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from deploy.localcluster import wait_for  # noqa: E402
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
REVIEWER, PASSWORD = "bench-reviewer", "bench-review-pass-1"
REASON_KEYS = "12345"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(workdir: Path) -> dict:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}", "MEDIA_ROOT": str(workdir / "media"),
           "CROWDLENS_VAR_DIR": str(workdir), "DEBUG": "true", "SECRET_KEY": "bench-only-secret",
           "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"}
    os.environ.update(env)
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are plain synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from collector.services import reviewers_group_sync

    get_user_model().objects.create_user(REVIEWER, password=PASSWORD)
    reviewers_group_sync(add_usernames=[REVIEWER])
    return env


def seed(n: int, round_no: int) -> list[int]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from collector import services
    from tests.factories import image_bytes, make_label, make_volunteer

    labels = [make_label("daisy"), make_label("tulip"), make_label("rose")]
    volunteer = make_volunteer(f"bench-volunteer-{round_no}-{time.time_ns()}")
    ids = []
    for i in range(n):
        data = image_bytes(size=(800, 600), seed=round_no * 100_000 + i)
        ids.append(services.photo_create(user=volunteer.user, image_file=SimpleUploadedFile("p.jpg", data),
                                         label_slug=labels[i % 3].slug).photo.pk)
    return ids


def wait_decided(ids: list[int], timeout: float = 120) -> None:
    from collector.models import Photo, PhotoStatus

    deadline = time.monotonic() + timeout
    while Photo.objects.filter(pk__in=ids, status=PhotoStatus.PENDING).exists():
        if time.monotonic() > deadline:
            raise SystemExit("photos left pending: the flow did not finish")
        time.sleep(0.02)


def check(ids: list[int]) -> None:
    from collector.models import Photo, PhotoReview, PhotoStatus

    statuses = dict(Photo.objects.filter(pk__in=ids).values_list("pk", "status"))
    for i, photo_id in enumerate(ids):
        want = PhotoStatus.REJECTED if i % 10 == 9 else PhotoStatus.APPROVED
        assert statuses[photo_id] == want, (photo_id, statuses[photo_id], want)
    assert PhotoReview.objects.filter(photo_id__in=ids).count() == len(ids), "a photo was decided twice"


def queue_flow(page, ids: list[int]) -> float:
    plan = {photo_id: REASON_KEYS[(i // 10) % 5] for i, photo_id in enumerate(ids) if i % 10 == 9}
    page.goto("/admin/collector/photo/review/")
    started = time.perf_counter()
    for _ in ids:
        handle = page.wait_for_function("""() => { const a = document.activeElement;
            return a && a.classList.contains('review-card') && a.dataset.state === 'pending'
                ? a.dataset.photoId : null }""")
        photo_id = int(handle.json_value())
        if photo_id in plan:
            page.keyboard.press("r")
            page.keyboard.press(plan[photo_id])
        else:
            page.keyboard.press("a")
    wait_decided(ids)
    return time.perf_counter() - started


def page_flow(page, ids: list[int]) -> float:
    plan = {photo_id: REASON_KEYS[(i // 10) % 5] for i, photo_id in enumerate(ids) if i % 10 == 9}
    page.goto(f"/admin/collector/photo/{ids[0]}/change/")
    started = time.perf_counter()
    for expected in ids:
        page.wait_for_selector("#approve-button")
        photo_id = int(page.url.rstrip("/").split("/")[-2])
        assert photo_id == expected, (photo_id, expected)
        with page.expect_navigation():
            page.keyboard.press(plan.get(photo_id, "a"))
    wait_decided(ids)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: run deploy/ensure-test-tools.sh")
    workdir = Path(tempfile.mkdtemp(prefix="crowdlens-bench-review-"))
    env = setup(workdir)
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from playwright.sync_api import sync_playwright

    from tests.pages.conftest import CHROMIUM_ARGS

    results = {"queue": [], "pages": []}
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.2).close() or True,
                 timeout=10, what="the bench's web server")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=f"http://127.0.0.1:{port}")
            context.set_default_timeout(30_000)
            page = context.new_page()
            page.goto("/admin/login/")
            page.get_by_label("Username").fill(REVIEWER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/admin/")
            for round_no in range(args.rounds):
                # Alternate which flow goes first, so warm-up and machine load hit both alike.
                order = [("queue", queue_flow), ("pages", page_flow)]
                for name, flow in order if round_no % 2 == 0 else order[::-1]:
                    ids = seed(args.photos, round_no * 2 + len(results[name]))
                    seconds = flow(page, ids)
                    check(ids)
                    results[name].append(args.photos / seconds * 60)
                    print(f"round {round_no + 1} {name:6} {args.photos} photos in {seconds:6.1f} s: "
                          f"{results[name][-1]:6.0f} reviews/minute")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    queue, pages = max(results["queue"]), max(results["pages"])
    print(f"best of {args.rounds}: review queue {queue:.0f} reviews/minute, photo pages (baseline) {pages:.0f} "
          f"reviews/minute; ratio {queue / pages:.2f}")


if __name__ == "__main__":
    main()
