"""Run as a process of its own (one "worker"): N token requests under the production settings; prints the statuses."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402

client = Client()
statuses = [client.post("/api/v1/auth/token/", {"username": "nobody", "password": "wrong-password"},
                        content_type="application/json").status_code for _ in range(int(sys.argv[1]))]
print(" ".join(map(str, statuses)))
