"""Uploads through nginx to one and to two web hosts, and the throttle's cost per request.

    .venv/bin/python bench/nginx_upload.py [--clients 4] [--uploads 24] [--rounds 3] [--requests 200]

Starts the deployment layout of docs/deploy.md with deploy/localcluster.py
(PostgreSQL and Redis must run on 127.0.0.1: a fresh database and Redis db 13;
moto's S3 server; gunicorn "hosts" with deploy/gunicorn.conf.py; Debian's
nginx with the site from deploy/nginx/, over TLS).

1. Uploads: two nginx side by side, one in front of one web host and one in
   front of two; --clients threads upload distinct ~1 MP phone-like JPEGs in
   rounds that alternate between the two, so load from elsewhere on the
   machine hits both alike. Printed: photos/s and p50/p95 per layout, and the
   two-host/one-host ratio.
2. Throttle: the anonymous sign-up endpoint, POST /api/v1/volunteers/ with an
   empty body (the throttle runs, then validation answers 400: the cheapest
   throttled request, so the throttle's share is at its largest), sent
   straight to two web hosts alike but for their settings: the real ones
   (SIGNUP_RATE high enough never to refuse, counters in Redis) and
   bench/nothrottle_settings.py (every rate None). Rounds alternate. Printed:
   requests/s and gunicorn CPU per request (utime+stime of the host's
   processes, from /proc: meaningful on a shared machine), and the ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.localcluster import LocalCluster, free_port, wait_for  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def photo(seed: int, size=(1200, 900)) -> bytes:
    rng = random.Random(seed)
    noise = Image.effect_noise((size[0] // 4, size[1] // 4), 40 + rng.randrange(20)).resize(size)
    gradient = Image.linear_gradient("L").rotate(rng.randrange(360)).resize(size)
    image = Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


def group_cpu_seconds(pgid: int) -> float:
    """utime+stime of every live process in a process group (a gunicorn host: master and workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_clients(clients: int, jobs: list, send) -> tuple[float, list[float], list[int]]:
    """Send every job with ``clients`` threads; (seconds, latencies, statuses)."""
    lock = threading.Lock()
    queue = list(jobs)
    latencies: list[float] = []
    statuses: list[int] = []

    def worker():
        session = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                job = queue.pop()
            start = time.perf_counter()
            status = send(session, job)
            with lock:
                latencies.append(time.perf_counter() - start)
                statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--uploads", type=int, default=24, help="uploads per round and layout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="throttle requests per round and host")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crowdlens-bench-nginx-") as tmp, \
            LocalCluster(Path(tmp), web_hosts=2, env={"PHOTO_UPLOAD_RATE": "1000000/hour",
                                                      "SIGNUP_RATE": "1000000/hour"}) as cluster:
        cluster.start_web()  # nginx in front of both hosts
        one_host = cluster.start_nginx("nginx-one", upstream_ports=cluster.web_ports[:1])
        two_hosts = cluster.url("")
        verify = str(cluster.ca_file)
        labels = cluster.root / "labels.txt"
        labels.write_text("mug\n")
        cluster.manage("labels_import", str(labels))
        signup = requests.post(f"{two_hosts}/api/v1/volunteers/", verify=verify, timeout=60,
                               json={"display_name": "bench", "consent_training": True})
        signup.raise_for_status()
        token = signup.json()["token"]
        print(f"cpus={os.cpu_count()} clients={args.clients} gunicorn workers={cluster.gunicorn_workers} x 2 threads "
              f"per host; PostgreSQL, Redis, moto S3, nginx over TLS")

        seed = [0]
        figures: dict[str, dict[str, list]] = {"one host": {"n": [], "s": [], "lat": []},
                                               "two hosts": {"n": [], "s": [], "lat": []}}
        print("making photos...", flush=True)
        pool = [photo(i) for i in range(args.uploads * args.rounds * 2)]

        def send_upload(base):
            def send(session, data):
                r = session.post(f"{base}/api/v1/photos/", verify=verify, timeout=120,
                                 headers={"Authorization": f"Token {token}"},
                                 files={"image": ("p.jpg", data, "image/jpeg")}, data={"label": "mug"})
                if r.status_code != 201:
                    print(f"upload answered {r.status_code}: {r.text[:300]}", flush=True)
                return r.status_code
            return send

        for round_ in range(args.rounds):
            order = [("one host", one_host), ("two hosts", two_hosts)]
            for name, base in (order if round_ % 2 == 0 else order[::-1]):
                jobs = pool[seed[0]:seed[0] + args.uploads]
                seed[0] += args.uploads
                seconds, latencies, statuses = run_clients(args.clients, jobs, send_upload(base))
                assert set(statuses) == {201}, statuses
                figures[name]["n"].append(len(jobs))
                figures[name]["s"].append(seconds)
                figures[name]["lat"] += latencies
        rates = {}
        for name, f in figures.items():
            rates[name] = sum(f["n"]) / sum(f["s"])
            print(f"uploads via nginx to {name:9}: n={sum(f['n']):4}  {rates[name]:6.2f} photos/s  "
                  f"p50 {1000 * statistics.median(f['lat']):6.0f} ms  p95 {1000 * pct(f['lat'], 0.95):6.0f} ms")
        print(f"two hosts / one host: throughput {rates['two hosts'] / rates['one host']:.2f}")

        # --- the throttle's cost
        plain_port = free_port()
        plain = cluster.start_web_host(0, name="web-nothrottle", port=plain_port, CROWDLENS_BENCH_BASELINE="1",
                                       DJANGO_SETTINGS_MODULE="bench.nothrottle_settings")
        wait_for(lambda: requests.get(f"http://127.0.0.1:{plain_port}/healthz", headers={"Host": "localhost"},
                                      timeout=5).status_code == 200, timeout=120, what="the unthrottled host")
        hosts = {"throttled": (f"http://127.0.0.1:{cluster.web_ports[1]}", cluster.processes["web1"].pid),
                 "no throttle": (f"http://127.0.0.1:{plain_port}", plain.pid)}

        def send_signup(base):
            def send(session, _):
                # Straight to gunicorn, as nginx would forward it (the site redirects plain http to https).
                return session.post(f"{base}/api/v1/volunteers/", json={}, timeout=60, allow_redirects=False,
                                    headers={"Host": "localhost", "X-Forwarded-Proto": "https"}).status_code
            return send

        for base, _ in hosts.values():  # warm both (imports, connections) outside the figures
            run_clients(args.clients, range(20), send_signup(base))
        totals = {name: {"n": 0, "s": 0.0, "cpu": 0.0, "lat": []} for name in hosts}
        for round_ in range(args.rounds):
            names = list(hosts) if round_ % 2 == 0 else list(hosts)[::-1]
            for name in names:
                base, pgid = hosts[name]
                cpu_before = group_cpu_seconds(pgid)
                seconds, latencies, statuses = run_clients(args.clients, range(args.requests), send_signup(base))
                assert set(statuses) == {400}, set(statuses)
                totals[name]["cpu"] += group_cpu_seconds(pgid) - cpu_before
                totals[name]["n"] += args.requests
                totals[name]["s"] += seconds
                totals[name]["lat"] += latencies
        for name, t in totals.items():
            print(f"POST /api/v1/volunteers/ (400) {name:11}: n={t['n']:5}  {t['n'] / t['s']:7.1f} req/s  "
                  f"p50 {1000 * statistics.median(t['lat']):5.1f} ms  CPU {1000 * t['cpu'] / t['n']:5.2f} ms/request")
        thr, base_ = totals["throttled"], totals["no throttle"]
        print(f"throttled / no throttle: throughput {(thr['n'] / thr['s']) / (base_['n'] / base_['s']):.2f}, "
              f"CPU per request {(thr['cpu'] / thr['n']) / (base_['cpu'] / base_['n']):.2f}, "
              f"throttle cost {1000 * (thr['cpu'] / thr['n'] - base_['cpu'] / base_['n']):.2f} ms CPU per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
