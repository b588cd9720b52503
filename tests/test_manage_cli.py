"""manage.py as an operator meets it in a second terminal beside `make run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, env_extra: dict, drop=("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DATABASE_URL")):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


class TestSecretKey:
    def test_it_uses_the_key_make_run_wrote_for_every_process(self, tmp_path):
        (tmp_path / "secret_key").write_text("the-installation-key-0123456789\n")
        done = _manage("shell", "--no-imports", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
                       env_extra={"DEBUG": "true", "CROWDLENS_VAR_DIR": str(tmp_path)})
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "the-installation-key-0123456789"

    def test_it_prefers_the_environment(self, tmp_path):
        (tmp_path / "secret_key").write_text("file-key\n")
        done = _manage("shell", "--no-imports", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
                       env_extra={"DEBUG": "true", "SECRET_KEY": "env-key", "CROWDLENS_VAR_DIR": str(tmp_path)})
        assert done.stdout.strip() == "env-key"


class TestConfigurationErrors:
    def test_it_prints_the_reason_in_one_line_without_a_traceback(self, tmp_path):
        done = _manage("check", env_extra={"CROWDLENS_VAR_DIR": str(tmp_path)})
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "SECRET_KEY must be set when DEBUG is off" in lines[0]
        assert "Traceback" not in done.stderr

    def test_a_bad_value_names_its_variable_in_one_line(self, tmp_path):
        done = _manage("check", env_extra={"DEBUG": "true", "CROWDLENS_VAR_DIR": str(tmp_path),
                                           "PHOTO_MAX_BYTES": "lots"})
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "PHOTO_MAX_BYTES" in done.stderr
