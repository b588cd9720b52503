"""The web process starts and answers the API without loading the heavy libraries (matplotlib, TensorFlow, LiteRT).

They cost seconds of every cold start; only a training run (its own process) and an admin
drawing a chart need them. A fresh interpreter is the only honest place to look: in the test
process, other tests have long imported them. Timing is measured by bench/startup.py, not here.
"""

import json
import os
import subprocess
import sys

from django.conf import settings

HEAVY = ("matplotlib", "tensorflow", "ai_edge_litert", "tf_keras")

PROBE = """
import json, sys
import django
django.setup()
from django.test.utils import setup_test_environment
from django.db import connection
setup_test_environment()
connection.creation.create_test_db(verbosity=0)
from django.urls import get_resolver
get_resolver().url_patterns  # the whole URL conf, the admin's with it
from django.test import Client
client = Client()
latest = client.get("/api/v1/models/latest/")
health = client.get("/healthz")
print(json.dumps({"latest": [latest.status_code, latest.json()["error"]["code"]], "health": health.status_code,
                  "heavy": [name for name in %r if name in sys.modules]}))
""" % (HEAVY,)


def test_serving_an_api_request_loads_no_chart_or_ml_library():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(settings.BASE_DIR)}
    env.pop("DATABASE_URL", None)  # in-memory SQLite: the probe makes its own database
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["latest"] == [404, "no_model"] and report["health"] == 200  # it did serve the requests
    assert report["heavy"] == []
