"""Settings for bench/upload.py only: the real settings plus a URLconf with the baseline endpoint.

Never used in production: config.settings knows nothing of it, and this module
refuses to load unless CROWDLENS_BENCH_BASELINE=1 is set.
"""

import os

from django.core.exceptions import ImproperlyConfigured

if os.environ.get("CROWDLENS_BENCH_BASELINE") != "1":
    raise ImproperlyConfigured("bench.upload_settings is for bench/upload.py only (set CROWDLENS_BENCH_BASELINE=1)")

from config.settings import *  # noqa: E402,F403

ROOT_URLCONF = "bench.upload_urls"
