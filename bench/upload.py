"""Upload throughput and worker memory: the real POST /api/v1/photos/ against a baseline, in one run.

    .venv/bin/python bench/upload.py [--clients 4] [--workers 2] [--uploads 24] [--sizes 2,12,48]

For each photo size (megapixels) it starts two gunicorn servers side by side
(deploy/gunicorn.conf.py, gthread workers) on free loopback ports, each with
its own SQLite file and media folder: one answers the baseline endpoint, the
other the real one. --clients threads upload distinct phone-like JPEGs as
fast as the server answers, in short rounds that alternate between the two
servers, so load from elsewhere on the machine hits both alike. Fresh servers
per size keep each memory figure its own.

Baseline: /bench/baseline-upload/ (bench/upload_urls.py, loaded only with
CROWDLENS_BENCH_BASELINE=1): the same middleware, token auth and multipart
parsing, then only "store the bytes and decode them fully once with Pillow".

Printed per size and endpoint: photos/s, p50/p95 latency, worker CPU per
photo (utime+stime of the workers from /proc: robust when the machine is
shared, unlike wall time) and worker RSS (sampled every 20 ms: the peak of any
worker, and its growth over the worker before its first upload). Target:
real >= 80 % of baseline photos/s at 12 MP, and the real endpoint's worker
peak flat as the photo size grows.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIZES = {2: (1632, 1224), 12: (4032, 3024), 48: (8000, 6000)}


def phone_photo(size, seed: int) -> bytes:
    """A JPEG that compresses like a phone photo: texture at several scales, not a flat fill."""
    rng = random.Random(seed)
    w, h = size
    fine = Image.effect_noise((w // 2, h // 2), 48 + rng.randrange(16)).resize(size, Image.Resampling.BILINEAR)
    coarse = Image.effect_noise((max(1, w // 64), max(1, h // 64)), 90).resize(size, Image.Resampling.BICUBIC)
    red = Image.blend(fine, coarse, 0.5)
    green = Image.linear_gradient("L").rotate(rng.randrange(360)).resize(size)
    blue = Image.blend(coarse, green, 0.5)
    image = Image.merge("RGB", (red, green, blue))
    exif = Image.Exif()
    exif[0x0112] = rng.choice([1, 6])  # portrait shots arrive sideways, as from a phone
    exif[0x010F] = "BenchPhone"
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def unique(data: bytes, n: int) -> bytes:
    """The same photo with a distinct COM segment: new bytes (no dedupe), same decoding work."""
    tag = f"bench-{n}-{random.random()}".encode()
    return data[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]


def worker_pids(master: int) -> list[int]:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    def __init__(self, tmp: Path, workers: int, name: str):
        self.tmp = tmp / name
        self.tmp.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "S3_", "DJANGO_SETTINGS"))},
            "DJANGO_SETTINGS_MODULE": "bench.upload_settings",
            "CROWDLENS_BENCH_BASELINE": "1",
            "SECRET_KEY": "bench-secret",
            "DATABASE_URL": f"sqlite:///{self.tmp / 'bench.sqlite3'}",
            "MEDIA_ROOT": str(self.tmp / "media"),
            "CROWDLENS_VAR_DIR": str(self.tmp / "var"),
            "PHOTO_UPLOAD_RATE": "1000000/minute",
            "SIGNUP_RATE": "1000000/minute",
            "GUNICORN_BIND": "127.0.0.1:0",
            "GUNICORN_WORKERS": str(workers),
            "LOG_LEVEL": "WARNING",
        }
        run = dict(cwd=ROOT, env=self.env, check=True, capture_output=True)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], **run)
        subprocess.run([sys.executable, "manage.py", "shell", "-c",
                        "from collector.models import Label; Label.objects.get_or_create(slug='mug', defaults={'name': 'Mug'})"],
                       **run)
        self.log = open(self.tmp / "gunicorn.log", "w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--access-logfile", "/dev/null",
             "config.wsgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        self.base = None
        while self.base is None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("gunicorn did not start:\n" + (self.tmp / "gunicorn.log").read_text())
            match = re.search(r"Listening at: (http://[\d.]+:\d+)", (self.tmp / "gunicorn.log").read_text())
            self.base = match.group(1) if match else None
            time.sleep(0.1)
        while len(worker_pids(self.process.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class RssSampler(threading.Thread):
    def __init__(self, master: int):
        super().__init__(daemon=True)
        self.master = master
        self.peak = 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            for pid in worker_pids(self.master):
                self.peak = max(self.peak, rss_kib(pid))
            time.sleep(0.02)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, all threads
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


class Endpoint:
    """One server and its volunteers; runs rounds of uploads and keeps the figures."""

    def __init__(self, server: Server, url_path: str, clients: int, warm_photo: bytes):
        self.server, self.url, self.clients = server, server.base + url_path, clients
        self.tokens = []
        for i in range(clients):
            r = requests.post(server.base + "/api/v1/volunteers/",
                              json={"display_name": f"bench{i}", "consent_training": True}, timeout=30)
            r.raise_for_status()
            self.tokens.append(r.json()["token"])
        self.idle = max((rss_kib(p) for p in worker_pids(server.process.pid)), default=0)
        self.sampler = RssSampler(server.process.pid)  # from before the first upload: the peak includes everything
        self.sampler.start()
        # Warm every worker (lazy imports, first decode) so the timed rounds measure steady state.
        for i in range(2 * len(worker_pids(server.process.pid)) + 2):
            requests.post(self.url, headers={"Authorization": f"Token {self.tokens[0]}"},
                          files={"image": ("w.jpg", unique(warm_photo, -1 - i), "image/jpeg")}, data={"label": "mug"},
                          timeout=300)
        self.latencies, self.wall, self.cpu, self.errors = [], 0.0, 0.0, []

    def round(self, photos: list[bytes]) -> None:
        queue = list(photos)
        lock = threading.Lock()

        def client(token):
            session = requests.Session()
            while True:
                with lock:
                    if not queue:
                        return
                    data = queue.pop()
                started = time.perf_counter()
                r = session.post(self.url, headers={"Authorization": f"Token {token}"},
                                 files={"image": ("IMG.jpg", data, "image/jpeg")}, data={"label": "mug"}, timeout=300)
                elapsed = time.perf_counter() - started
                with lock:
                    if r.status_code == 201:
                        self.latencies.append(elapsed)
                    else:
                        self.errors.append((r.status_code, r.text[:200]))

        pids = worker_pids(self.server.process.pid)
        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(token,)) for token in self.tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.wall += time.perf_counter() - started
        self.cpu += cpu_seconds(pids) - cpu_before
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} uploads failed, first: {self.errors[0]}")

    def figures(self) -> dict:
        self.sampler.stop_event.set()
        self.sampler.join()
        latencies = sorted(self.latencies)
        return {
            "photos_s": len(latencies) / self.wall,
            "cpu_ms": self.cpu / len(latencies) * 1000,
            "p50": statistics.median(latencies),
            "p95": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))],
            "idle_mib": self.idle / 1024,
            "peak_mib": self.sampler.peak / 1024,
            "n": len(latencies),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--uploads", type=int, default=24, help="uploads per run at 12 MP (scaled for other sizes)")
    parser.add_argument("--sizes", default="2,12,48", help="megapixel classes to run: any of 2,12,48")
    parser.add_argument("--rounds", type=int, default=4, help="alternating baseline/real rounds per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"cpus={os.cpu_count()} clients={args.clients} gunicorn workers={args.workers} (gthread, "
          f"deploy/gunicorn.conf.py) SQLite, local files", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="crowdlens-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for mp in sizes:
            count = max(args.clients * 2, int(args.uploads * 12 / mp)) if mp < 12 else max(args.clients, args.uploads * 12 // mp)
            bases = [phone_photo(SIZES[mp], seed) for seed in range(4 if mp < 48 else 2)]
            photos = [unique(bases[i % len(bases)], i) for i in range(count)]
            mean_mb = statistics.mean(len(p) for p in photos) / 1e6
            servers = {name: Server(tmp, args.workers, f"{name}-{mp}") for name in ("baseline", "real")}
            try:
                endpoints = {
                    "baseline": Endpoint(servers["baseline"], "/bench/baseline-upload/", args.clients, bases[0]),
                    "real": Endpoint(servers["real"], "/api/v1/photos/", args.clients, bases[0]),
                }
                # Alternate short rounds so that load from elsewhere on the machine hits both alike.
                per_round = max(args.clients, len(photos) // args.rounds)
                for start in range(0, len(photos), per_round):
                    for name in ("baseline", "real") if (start // per_round) % 2 == 0 else ("real", "baseline"):
                        endpoints[name].round(photos[start:start + per_round])
                for name in ("baseline", "real"):
                    results[(mp, name)] = r = endpoints[name].figures()
                    print(f"{mp:>3} MP ({SIZES[mp][0]}x{SIZES[mp][1]}, {mean_mb:.1f} MB) {name:<8} n={r['n']:<3} "
                          f"{r['photos_s']:6.2f} photos/s  p50 {r['p50'] * 1000:6.0f} ms  p95 {r['p95'] * 1000:6.0f} ms  "
                          f"worker CPU {r['cpu_ms']:5.0f} ms/photo  "
                          f"worker RSS before {r['idle_mib']:4.0f} MiB peak {r['peak_mib']:4.0f} MiB "
                          f"(+{r['peak_mib'] - r['idle_mib']:.0f})", flush=True)
            finally:
                for server in servers.values():
                    server.stop()
            real, base = results[(mp, "real")], results[(mp, "baseline")]
            print(f"{mp:>3} MP real/baseline: throughput {real['photos_s'] / base['photos_s']:.2f}, "
                  f"capacity (baseline CPU per photo / real CPU per photo) {base['cpu_ms'] / real['cpu_ms']:.2f}",
                  flush=True)

    if 12 in sizes:
        real, base = results[(12, "real")], results[(12, "baseline")]
        ratio = real["photos_s"] / base["photos_s"]
        capacity = base["cpu_ms"] / real["cpu_ms"]
        print(f"\n12 MP: real endpoint reaches {ratio:.0%} of baseline throughput, {capacity:.0%} of its capacity "
              f"(CPU per photo) (target >= 80%): {'OK' if min(ratio, capacity) >= 0.8 else 'BELOW TARGET'}")
    peaks = {mp: results[(mp, "real")]["peak_mib"] for mp in sizes}
    print("real endpoint worker peak RSS by size: " + ", ".join(f"{mp} MP {peak:.0f} MiB" for mp, peak in peaks.items()))
    base_peaks = {mp: results[(mp, "baseline")]["peak_mib"] for mp in sizes}
    print("baseline worker peak RSS by size:      " + ", ".join(f"{mp} MP {peak:.0f} MiB" for mp, peak in base_peaks.items()))


if __name__ == "__main__":
    main()
