"""Web workers' memory under the worst upload the limits allow against phones' photos, in one run.

    .venv/bin/python bench/upload_memory.py [--clients 8] [--workers 4] [--uploads 2]

(Encoding the HEIC photos takes a minute or more; they are kept in the system's temporary folder,
crowdlens-bench-memory-photos/, for the next run.)

Each case gets a fresh gunicorn (deploy/gunicorn.conf.py: gthread, 2 threads a worker; bench/upload.py's
Server: its own SQLite file, media and var folders) and --clients threads that each send --uploads photos
as fast as they are answered:

- phone (the baseline): 12 MP photos as phones send them, half JPEG, half HEIC (iPhones' default);
- worst: a HEIC of 49.9 MP (8160x6120, under PHOTO_MAX_PIXELS) that is a few kilobytes of flat colour:
  HEIC cannot be decoded at a reduced scale (JPEG can), and every byte of it becomes pixels. It is the
  costliest image the limits let through: PNG and WebP stop at 16 MP (PHOTO_MAX_PIXELS_PNG_WEBP), a 50 MP
  JPEG decodes at 1/8;
- worst, unbounded (for comparison): the same with PHOTO_DECODE_MEMORY_MB raised out of the way.

A client answered 503 (a decode that waited PHOTO_DECODE_WAIT_SECONDS for room) sends the photo again after
Retry-After, as phones do; the retries are counted. Memory is the sum of the workers' RSS, sampled every 20 ms from /proc, from after a warm-up upload per
worker: its growth at the peak, and what is still held 3 s after the last answer (memory returned).
Target: worst at most 1.5x the phone case's growth, and the memory returned afterwards.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.upload import Server, phone_photo, rss_kib, unique, worker_pids  # noqa: E402
from tests.collector.samples import flat_blocks  # noqa: E402

WORST_SIZE = (8160, 6120)  # 49.9 MP


def heic(image: Image.Image) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    image.save(out, format="HEIF", quality=60)
    return out.getvalue()


def unique_heic(data: bytes, n: int) -> bytes:
    """The same HEIC with a top-level 'free' box appended: new bytes (no dedupe), the same decoding work."""
    tag = f"bench-{n}-{time.time_ns()}".encode()
    return data + (8 + len(tag)).to_bytes(4, "big") + b"free" + tag



def cached(path: Path, make) -> bytes:
    if not path.exists():
        path.write_bytes(make())
    return path.read_bytes()


class TotalRss(threading.Thread):
    """The workers' summed RSS every 20 ms; the peak, and the peak of each worker."""

    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master, self.peak, self.per_worker = master, 0, {}
        self.stop_event = threading.Event()

    def now(self) -> int:
        return sum(rss_kib(pid) for pid in worker_pids(self.master))

    def run(self):
        while not self.stop_event.is_set():
            total = 0
            for pid in worker_pids(self.master):
                rss = rss_kib(pid)
                total += rss
                self.per_worker[pid] = max(self.per_worker.get(pid, 0), rss)
            self.peak = max(self.peak, total)
            time.sleep(0.02)


def run_case(tmp: Path, name: str, workers: int, clients: int, photos: list[tuple[str, bytes]], env: dict) -> dict:
    os.environ.update(env)
    try:
        server = Server(tmp, workers, name)
    finally:
        for key in env:
            os.environ.pop(key, None)
    try:
        tokens = []
        for i in range(clients):
            r = requests.post(server.base + "/api/v1/volunteers/", json={"display_name": f"m{i}", "consent_training": True},
                              timeout=60)
            r.raise_for_status()
            tokens.append(r.json()["token"])
        url = server.base + "/api/v1/photos/"
        warm = phone_photo((640, 480), 1)
        for i in range(3 * workers):  # every worker imports what an upload needs before the baseline is taken
            requests.post(url, headers={"Authorization": f"Token {tokens[0]}"}, data={"label": "mug"},
                          files={"image": ("w.jpg", unique(warm, -1 - i), "image/jpeg")}, timeout=300).raise_for_status()
        time.sleep(1)
        sampler = TotalRss(server.process.pid)
        idle = sampler.now()
        idle_per_worker = {pid: rss_kib(pid) for pid in worker_pids(server.process.pid)}
        sampler.start()
        queue, lock, statuses, latencies = list(photos), threading.Lock(), [], []

        retries = []

        def client(token):
            session = requests.Session()
            while True:
                with lock:
                    if not queue:
                        return
                    filename, data = queue.pop(0)
                started = time.perf_counter()
                for _attempt in range(10):
                    r = session.post(url, headers={"Authorization": f"Token {token}"}, data={"label": "mug"},
                                     files={"image": (filename, data, "application/octet-stream")}, timeout=600)
                    if r.status_code != 503:
                        break
                    with lock:
                        retries.append(r.json()["error"]["code"])
                    time.sleep(int(r.headers.get("Retry-After", "5")))
                with lock:
                    statuses.append(r.status_code if r.status_code == 201 else (r.status_code, r.text[:200]))
                    latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(t,)) for t in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        time.sleep(3)
        after = sampler.now()
        sampler.stop_event.set()
        sampler.join()
        growth_per_worker = [sampler.per_worker.get(pid, 0) - rss for pid, rss in idle_per_worker.items()]
        return {"n": len(photos), "ok": statuses.count(201), "errors": [s for s in statuses if s != 201],
                "idle": idle / 1024, "peak": sampler.peak / 1024, "growth": (sampler.peak - idle) / 1024,
                "held": (after - idle) / 1024, "worker_growth_max": max(growth_per_worker) / 1024,
                "worker_growth_sum": sum(growth_per_worker) / 1024, "wall": wall, "p_max": max(latencies),
                "retries": len(retries)}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (2 threads each)")
    parser.add_argument("--uploads", type=int, default=2, help="photos each client sends")
    args = parser.parse_args()
    count = args.clients * args.uploads

    print(f"cpus={os.cpu_count()} clients={args.clients} gunicorn workers={args.workers} x 2 threads, "
          f"{args.uploads} uploads per client; making the photos...", flush=True)
    cache = Path(tempfile.gettempdir()) / "crowdlens-bench-memory-photos"
    cache.mkdir(exist_ok=True)
    jpeg = cached(cache / "phone-12mp.jpg", lambda: phone_photo((4032, 3024), 7))
    phone_heic = cached(cache / "phone-12mp.heic", lambda: heic(Image.open(io.BytesIO(jpeg))))
    worst = cached(cache / "worst-50mp.heic", lambda: heic(flat_blocks(WORST_SIZE)))
    print(f"  12 MP JPEG {len(jpeg) / 1e6:.1f} MB, 12 MP HEIC {len(phone_heic) / 1e6:.1f} MB, "
          f"worst: {WORST_SIZE[0]}x{WORST_SIZE[1]} HEIC ({WORST_SIZE[0] * WORST_SIZE[1] / 1e6:.1f} MP) "
          f"{len(worst) / 1e3:.0f} KB", flush=True)
    phone = [("IMG.jpg", unique(jpeg, i)) if i % 2 == 0 else ("IMG.heic", unique_heic(phone_heic, i))
             for i in range(count)]
    worst_photos = [("IMG.heic", unique_heic(worst, i)) for i in range(count)]
    cases = [("phone", phone, {}), ("worst", worst_photos, {}),
             ("worst-unbounded", worst_photos, {"PHOTO_DECODE_MEMORY_MB": "100000"})]
    results = {}
    with tempfile.TemporaryDirectory(prefix="crowdlens-bench-memory-") as tmp_name:
        for name, photos, env in cases:
            r = results[name] = run_case(Path(tmp_name), name, args.workers, args.clients, photos, env)
            print(f"{name:<16} n={r['n']:<3} ok={r['ok']:<3} 503-retries={r['retries']:<3} {r['wall']:6.1f} s "
                  f"(slowest {r['p_max']:5.1f} s)  "
                  f"workers' RSS idle {r['idle']:5.0f} MiB  peak {r['peak']:5.0f} MiB  growth {r['growth']:5.0f} MiB  "
                  f"held after {r['held']:+5.0f} MiB  (largest worker +{r['worker_growth_max']:.0f}, "
                  f"workers' own peaks summed +{r['worker_growth_sum']:.0f})", flush=True)
            if r["errors"]:
                print(f"  not accepted: {r['errors'][:3]}", flush=True)
    phone, worst = results["phone"], results["worst"]
    ratio = worst["growth"] / phone["growth"]
    print(f"\nworst / phone peak growth: {ratio:.2f} (target <= 1.5): {'OK' if ratio <= 1.5 else 'ABOVE TARGET'}")
    print(f"unbounded worst / phone: {results['worst-unbounded']['growth'] / phone['growth']:.2f}")
    returned = all(r["held"] < 0.25 * max(r["growth"], 1) + 32 for r in results.values())
    print(f"memory returned afterwards (held < 25% of the growth + 32 MiB): {'yes' if returned else 'NO'}")


if __name__ == "__main__":
    main()
