"""The settings file (`CROWDLENS_ENV_FILE`): what an operator edits so that the next run uses it, no restart.

`make run` points every process at var/crowdlens.env; the scheduler starts each admin-requested run as a new
`manage.py` process, which reads the file afresh. These tests edit the file between two commands the scheduler's
own `run_command` starts, with the parent (this test process, standing in for the scheduler) never restarted.
"""

from __future__ import annotations

import html
import os
import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env
from config.scheduler import run_command

PRINT_SETTING = "from django.conf import settings; print('VALUE', settings.{name})"


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    """A settings file this process and the commands it starts read, with the real config.settings."""
    path = tmp_path / "crowdlens.env"
    path.write_text("")
    monkeypatch.setenv("CROWDLENS_ENV_FILE", str(path))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings")
    monkeypatch.setenv("DEBUG", "true")
    monkeypatch.setenv("CROWDLENS_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("TRAINING_BASE_WEIGHTS", raising=False)
    return path


def printed(name: str) -> tuple[int, str]:
    code, tail = run_command(["shell", "--no-imports", "-c", PRINT_SETTING.format(name=name)], label="test")
    values = [line.removeprefix("VALUE ") for line in tail.splitlines() if line.startswith("VALUE ")]
    return code, values[0] if values else tail


class TestTheNextCommandReadsTheFileAfresh:
    def test_an_edit_reaches_the_next_command_without_restarting_its_parent(self, env_file):
        env_file.write_text("TRAINING_BASE_WEIGHTS=/srv/weights/first.h5\n")
        assert printed("TRAINING_BASE_WEIGHTS") == (0, "/srv/weights/first.h5")
        env_file.write_text("# the operator's edit\nTRAINING_BASE_WEIGHTS=/srv/weights/second.h5\n")
        assert printed("TRAINING_BASE_WEIGHTS") == (0, "/srv/weights/second.h5")
        assert "TRAINING_BASE_WEIGHTS" not in os.environ  # read, never copied into the environment

    def test_a_bad_value_in_the_file_stops_the_command_naming_the_variable_and_the_file(self, env_file):
        env_file.write_text("TRAINING_INPUT_SIZE=large\n")
        code, output = printed("TRAINING_INPUT_SIZE")
        assert code == 2
        assert "TRAINING_INPUT_SIZE must be an integer, got 'large'" in output and str(env_file) in output
        assert "Traceback" not in output


class TestTheFile:
    """What the readers see, in this process (the commands above read it the same way)."""

    def test_it_wins_over_the_environment_and_the_default(self, env_file, monkeypatch):
        monkeypatch.setenv("TRAINING_SEED", "7")
        monkeypatch.setenv("TRAINING_ALPHA", "0.5")
        env_file.write_text("TRAINING_SEED=99\n")
        found = {row.name: row for row in env.current("TRAINING_")}
        assert (found["TRAINING_SEED"].value, found["TRAINING_SEED"].source) == ("99", "settings file")
        assert (found["TRAINING_ALPHA"].value, found["TRAINING_ALPHA"].source) == ("0.5", "environment")
        assert (found["TRAINING_NIGHTLY_AT"].value, found["TRAINING_NIGHTLY_AT"].source) == ("02:00", "default")

    def test_a_line_that_is_not_a_setting_is_an_error_naming_the_line(self, env_file):
        env_file.write_text("# weights\nexport TRAINING_SEED=3\n")
        with pytest.raises(ImproperlyConfigured, match=rf"^{re.escape(str(env_file))}, line 2: expected NAME=value"):
            env.env_file_values()

    def test_a_missing_file_is_an_error(self, env_file):
        env_file.unlink()
        with pytest.raises(ImproperlyConfigured, match="CROWDLENS_ENV_FILE=.*cannot read the settings file"):
            env.env_file_values()


class TestTheFormat:
    """systemd's EnvironmentFile= lines, so one file serves `make run` and the systemd units alike."""

    def test_it_reads_what_systemd_reads(self):
        text = ('# comment\n; comment too\n\n  TRAINING_SEED = 5  \nA="two words \\"quoted\\""\n'
                "B='lit\\eral'\nC=one \\\ntwo\nEMPTY=\n")
        assert env.parse_env_file(text, "f") == {"TRAINING_SEED": "5", "A": 'two words "quoted"', "B": "lit\\eral",
                                                "C": "one two", "EMPTY": ""}

    def test_it_refuses_what_is_not_a_setting(self):
        for line in ("just words", "export A=1", "1A=2", "A B=3"):
            with pytest.raises(ImproperlyConfigured, match=r"^f, line 1: expected NAME=value"):
                env.parse_env_file(line + "\n", "f")


@pytest.mark.django_db
class TestTheStartARunPage:
    def page(self, client) -> str:
        body = client.get("/admin/training/trainingrun/request/").content.decode()
        return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))

    def test_it_shows_the_file_as_it_reads_now(self, admin_client, env_file):
        env_file.write_text("TRAINING_BASE_WEIGHTS=/srv/weights/first.h5\n")
        page = self.page(admin_client)
        assert f"reads the settings file {env_file} when it starts" in page
        assert "TRAINING_BASE_WEIGHTS /srv/weights/first.h5 settings file" in page
        env_file.write_text("TRAINING_BASE_WEIGHTS=/srv/weights/second.h5\nTRAINING_ROLLOUT_SALT=s3cret\n")
        page = self.page(admin_client)
        assert "TRAINING_BASE_WEIGHTS /srv/weights/second.h5 settings file" in page
        assert "TRAINING_ROLLOUT_SALT set (hidden)" in page and "s3cret" not in page

    def test_it_warns_of_a_value_the_run_would_refuse(self, admin_client, env_file):
        env_file.write_text("TRAINING_INPUT_SIZE=large\n")
        page = self.page(admin_client)
        assert f"TRAINING_INPUT_SIZE must be an integer, got 'large' (in {env_file})" in page
        assert "The run would stop at its start on the value above: fix the file first." in page

    def test_without_a_file_it_says_the_scheduler_s_environment_applies(self, admin_client, monkeypatch):
        monkeypatch.delenv("CROWDLENS_ENV_FILE", raising=False)
        monkeypatch.setenv("TRAINING_SEED", "11")
        page = self.page(admin_client)
        assert "No settings file" in page and "changes only when the scheduler restarts" in page
        assert "TRAINING_SEED 11 environment" in page
