"""`make run` (deploy/run-local.sh) as an operator meets it: another address, then Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_ctrl_c_stops_both_processes_and_exits_0_and_site_url_follows_run_address(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SITE_URL", "REDIS_URL",
                        "CROWDLENS_ENV_FILE")}
    env.update(CROWDLENS_VAR_DIR=str(tmp_path), RUN_ADDRESS=f"127.0.0.1:{port}", LOG_LEVEL="WARNING")
    log = (tmp_path / "run.log").open("w+")
    # Its own process group, as a terminal's foreground job is: Ctrl-C signals the whole group.
    process = subprocess.Popen(["bash", str(ROOT / "deploy" / "run-local.sh")], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _answers(f"http://127.0.0.1:{port}/healthz/live"):
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 0, (tmp_path / "run.log").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = (tmp_path / "run.log").read_text()
    assert f"SITE_URL=http://127.0.0.1:{port}" in output  # what a second terminal must export too
    settings_file = tmp_path / "crowdlens.env"  # created on the first start, in the var folder, for the operator
    assert f"export CROWDLENS_ENV_FILE={settings_file}" in output
    assert "TRAINING_BASE_WEIGHTS=" in settings_file.read_text()
    assert "Stopping Crowdlens" in output
    assert not _answers(f"http://127.0.0.1:{port}/healthz/live")  # the web server went with it
