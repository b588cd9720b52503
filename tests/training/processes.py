"""Commands run as separate processes, as the scheduler, a training worker or a second host runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path

from django.conf import settings as django_settings

BASE = Path(django_settings.BASE_DIR)


def subprocess_env(db: Path, folder: Path, **extra) -> dict:
    """The environment of a `manage.py` process on the file SQLite database ``db``."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.training.subprocess_settings",
           "DATABASE_URL": f"sqlite:///{db}", "CROWDLENS_VAR_DIR": str(folder), "MEDIA_ROOT": str(folder / "media"),
           "TIME_ZONE": "UTC", "PYTHONUNBUFFERED": "1"}
    env.pop("S3_BUCKET", None)
    env.update(extra)
    return env


def database_url(settings_dict: dict) -> str:
    """DATABASE_URL of a PostgreSQL database Django is connected to (the test database, for a process)."""
    return (f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD'] or ''}@"
            f"{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}")


def read_until(proc: subprocess.Popen, text: str, *, timeout: float) -> tuple[bool, str]:
    """Read ``proc``'s output line by line until a line holds ``text``: (whether it came, what was read).

    The process is killed when the line has not come within ``timeout`` seconds (the read then ends)."""
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if text in line:
                return True, "".join(lines)
        return False, "".join(lines)
    finally:
        killer.cancel()


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchall()
