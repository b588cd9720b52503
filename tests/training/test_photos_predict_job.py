"""One scheduled job predicts photos for both readers (the review queue, the stumped bonus), every
PHOTOS_PREDICT_EVERY_MINUTES; an installation that still sets the old REVIEW_GUESSES_EVERY_MINUTES is told."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
JOBS = ("import django, json; django.setup(); from training.jobs import scheduled_jobs; "
        "print(json.dumps([job for job in scheduled_jobs() if 'predict' in job['id'] or 'guess' in job['id']]))")


def test_one_job_predicts_and_the_old_setting_only_warns():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PHOTOS_PREDICT_EVERY_MINUTES": "7",
           "REVIEW_GUESSES_EVERY_MINUTES": "30"}
    done = subprocess.run([sys.executable, "-c", JOBS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        {"id": "photos_predict", "command": ["photos_predict"], "hour": "*", "minute": "*/7"}]
    assert "REVIEW_GUESSES_EVERY_MINUTES is no longer read" in done.stderr
    assert "PHOTOS_PREDICT_EVERY_MINUTES" in done.stderr, "it names the setting to use instead"
