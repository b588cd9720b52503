"""Cold start of the web process: time from process start to the first answered API request, before and after.

    .venv/bin/python bench/startup.py [--rounds 5] [--before e016fdf]

"after" is this working tree; "before" is the tree of ``--before`` (default: main just before the web process
stopped importing matplotlib when loading the URL conf), extracted with ``git archive`` into a temporary
folder (no worktree, nothing in the repository changes). Each starts ``manage.py runserver --noreload`` on a
free loopback port with the same interpreter, settings and a migrated SQLite file of its own, and polls
``GET /api/v1/models/latest/`` every 20 ms until it is answered (404 ``no_model``: the full URL conf, DRF and
the database). Rounds alternate between the two trees so that load from elsewhere hits both alike; the
migrations and the first, cache-warming start of each tree are not counted. Printed: every round, the
median per tree and the ratio before/after (above 1: the change starts faster).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "tensorflow", "ai_edge_litert", "tf_keras")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def env_for(tree: Path, folder: Path) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "SECRET_KEY": "bench-startup",
           "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "MEDIA_ROOT": str(folder / "media"),
           "CROWDLENS_VAR_DIR": str(folder), "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("S3_BUCKET", "REDIS_URL"):
        env.pop(name, None)
    return env


def start_and_time(tree: Path, env: dict, timeout: float = 180.0) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/models/latest/"
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
                            cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - began < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"{tree}: the server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=5)
            except urllib.error.HTTPError as answered:
                body = json.loads(answered.read())
                if answered.code == 404 and body["error"]["code"] == "no_model":
                    return time.perf_counter() - began
                raise SystemExit(f"{tree}: unexpected answer {answered.code} {body}") from None
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.02)
                continue
            raise SystemExit(f"{tree}: a model is published in a fresh database?")
        raise SystemExit(f"{tree}: no answer within {timeout:.0f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def heavy_modules_after_setup(tree: Path, env: dict) -> list[str]:
    """What loading the URL conf imports of HEAVY, in that tree (why one starts slower than the other)."""
    code = ("import sys, django; django.setup(); from django.urls import get_resolver; get_resolver().url_patterns; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default="e016fdf", help="git revision measured as the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crowdlens-startup-") as tmp:
        tmp_path = Path(tmp)
        trees = {"before": extract(args.before, tmp_path / "before-tree"), "after": ROOT}
        envs = {}
        for name, tree in trees.items():
            folder = tmp_path / f"{name}-var"
            folder.mkdir()
            envs[name] = env_for(tree, folder)
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=tree, env=envs[name],
                           check=True)
            loaded = heavy_modules_after_setup(tree, envs[name])
            print(f"{name:6} ({args.before if name == 'before' else 'working tree'}): URL conf loads "
                  f"{', '.join(loaded) or 'none of ' + ', '.join(HEAVY)}")
            start_and_time(tree, envs[name])  # warm the OS file cache for both alike; not counted
        times: dict[str, list[float]] = {name: [] for name in trees}
        print(f"cpus={os.cpu_count()} load average {os.getloadavg()[0]:.1f}; seconds from process start to the "
              "first answered GET /api/v1/models/latest/ (manage.py runserver --noreload)")
        for round_ in range(1, args.rounds + 1):
            order = list(trees) if round_ % 2 else list(reversed(trees))
            for name in order:
                times[name].append(start_and_time(trees[name], envs[name]))
            print(f"  round {round_}: before {times['before'][-1]:6.2f} s   after {times['after'][-1]:6.2f} s")
        before, after = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"median: before {before:.2f} s, after {after:.2f} s; before/after {before / after:.2f}")


if __name__ == "__main__":
    main()
