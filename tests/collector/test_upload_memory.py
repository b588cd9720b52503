"""What an upload may cost in memory is bounded whatever its pixels (collector.lib.images, .decode_budget).

Generated images: a PNG of a few kilobytes and tens of megapixels (the bomb any volunteer can send), phone
photos of 12 MP (JPEG and HEIC) and 48 MP (JPEG). The decodes run in real processes where memory is measured.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings as django_settings

from collector.lib.decode_budget import BudgetTimeout, DecodeBudget
from collector.models import Photo
from tests.collector.asserts import assert_error
from tests.collector.samples import flat_blocks
from tests.factories import client_for, make_label, make_volunteer, upload


def blocks(size: tuple[int, int], fmt: str, mode: str = "RGB", **save) -> bytes:
    """A picture of flat coloured blocks: megapixels in a file of kilobytes (a decompression bomb's shape)."""
    image = flat_blocks(size)
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


@pytest.fixture
def budget_file(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR / "decode-budget.lock"


@pytest.mark.django_db
class TestPixelLimits:
    def test_a_tiny_png_of_too_many_pixels_is_refused_before_it_is_decoded(self, budget_file):
        bomb = blocks((5000, 4000), "PNG")  # 20 MP in a few kilobytes
        assert len(bomb) < 200_000
        response = upload(client_for(make_volunteer().user), bomb, label=make_label("mug").slug, filename="x.png")
        error = assert_error(response, 413, "too_many_pixels")
        assert "the limit for PNG images is 16000000 pixels" in error["message"]
        assert Photo.objects.count() == 0

    def test_a_png_under_its_limit_goes_through(self, budget_file):
        png = blocks((4000, 3000), "PNG", mode="RGBA")
        response = upload(client_for(make_volunteer().user), png, label=make_label("mug").slug, filename="x.png")
        assert response.status_code == 201, response.content
        assert (response.json()["width"], response.json()["height"]) == (4000, 3000)

    @pytest.mark.parametrize("size, fmt, save", [
        ((4032, 3024), "JPEG", {"quality": 85}),      # 12 MP: every phone
        ((8064, 6048), "JPEG", {"quality": 85}),      # 48 MP: phones' full-resolution mode
        ((4032, 3024), "HEIF", {"quality": 50}),      # 12 MP HEIC: iPhones' default
    ], ids=["12MP-jpeg", "48MP-jpeg", "12MP-heic"])
    def test_phone_photos_go_through(self, budget_file, size, fmt, save):
        data = blocks(size, fmt, **save)
        name = "p.heic" if fmt == "HEIF" else "p.jpg"
        response = upload(client_for(make_volunteer().user), data, label=make_label("mug").slug, filename=name)
        assert response.status_code == 201, response.content
        assert (response.json()["width"], response.json()["height"]) == size


@pytest.mark.django_db
class TestDecodeBudget:
    def test_a_large_decode_waits_for_room_and_a_small_one_does_not(self, settings, budget_file):
        """With the host's budget taken (other workers decoding), a large decode waits and then answers 503; a
        phone's JPEG (decoded at 1/8: a few MB) goes through meanwhile, and the large one once there is room."""
        settings.PHOTO_DECODE_MEMORY_MB = 64
        settings.PHOTO_DECODE_WAIT_SECONDS = 1
        label = make_label("mug")
        client = client_for(make_volunteer().user)
        png = blocks((3000, 3000), "PNG")  # 9 MP: 69 MB estimated, more than the whole budget: it runs alone
        other_worker = DecodeBudget(budget_file, 64)
        with other_worker.hold(10):
            started = time.monotonic()
            response = upload(client, png, label=label.slug, filename="x.png")
            assert_error(response, 503, "unavailable")
            assert response["Retry-After"] and time.monotonic() - started >= 1
            assert upload(client, blocks((4032, 3024), "JPEG"), label=label.slug).status_code == 201
        assert upload(client, png, label=label.slug, filename="x.png").status_code == 201
        assert DecodeBudget(budget_file, 64).in_use_mb() == 0

    def test_threads_of_one_process_count_apart(self, tmp_path):
        budget = DecodeBudget(tmp_path / "b.lock", 100, wait_seconds=0.3)
        with budget.hold(70):
            assert budget.in_use_mb() == 70
            errors = []
            thread = threading.Thread(target=lambda: _hold_or_record(budget, 40, errors))
            thread.start()
            thread.join()
            assert errors == ["timeout"]
            with budget.hold(30):
                assert budget.in_use_mb() == 100
        assert budget.in_use_mb() == 0

    def test_a_worker_killed_mid_decode_leaves_nothing_held(self, tmp_path):
        path = tmp_path / "b.lock"
        ready = multiprocessing.get_context("fork").Event()
        child = multiprocessing.get_context("fork").Process(target=_hold_forever, args=(path, ready))
        child.start()
        try:
            assert ready.wait(30)
            assert DecodeBudget(path, 100).in_use_mb() == 100
            with pytest.raises(BudgetTimeout):
                with DecodeBudget(path, 100, wait_seconds=0.2).hold(1):
                    pass
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.join()
        with DecodeBudget(path, 100, wait_seconds=1).hold(100):
            pass


def _hold_or_record(budget, cost, errors):
    try:
        with budget.hold(cost):
            errors.append("held")
    except BudgetTimeout:
        errors.append("timeout")


def _hold_forever(path, ready):
    with DecodeBudget(path, 100).hold(100):
        ready.set()
        time.sleep(600)


MEASURE = """
import io, json, sys
from collector.lib import images
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmHWM"].split()[0]) * 1024, int(fields["VmRSS"].split()[0]) * 1024
data = sys.stdin.buffer.read()
before = rss()[1]
images.process_upload(io.BytesIO(data), max_pixels=50_000_000, training_short_side=256, thumbnail_size=480,
                      max_pixels_full_decode=16_000_000)
peak, after = rss()
print(json.dumps({"peak": peak - before, "held": after - before}))
"""


def decode_memory(data: bytes) -> dict:
    """Peak and kept memory of one upload's decode, in a fresh process (what a web worker's RSS shows)."""
    done = subprocess.run([sys.executable, "-c", MEASURE], input=data, capture_output=True, timeout=120,
                          cwd=django_settings.BASE_DIR)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


class TestDecodeMemory:
    def test_a_png_at_its_limit_holds_one_decoded_copy_and_gives_it_back(self):
        """16 MP RGBA decodes to 61 MiB of pixels; the derivatives need 0.2 MP. The image is reduced at once
        (no converted full-size copies beside it), and the memory goes back to the system afterwards."""
        pixels = 4000 * 4000 * 4
        measured = decode_memory(blocks((4000, 4000), "PNG", mode="RGBA"))
        assert measured["peak"] < 1.5 * pixels, measured
        assert measured["held"] < 0.25 * pixels, measured

    def test_a_48_megapixel_jpeg_is_decoded_at_a_fraction_of_its_size(self):
        measured = decode_memory(blocks((8064, 6048), "JPEG", quality=85))
        assert measured["peak"] < 8064 * 6048 * 4 / 16, measured  # decoded at 1/8 scale: 1/64 of its pixels
