"""Settings for bench/nginx_upload.py only: the real settings with every throttle off (its baseline).

Never used in production: config.settings knows nothing of it, and this module
refuses to load unless CROWDLENS_BENCH_BASELINE=1 is set.
"""

import os

from django.core.exceptions import ImproperlyConfigured

if os.environ.get("CROWDLENS_BENCH_BASELINE") != "1":
    raise ImproperlyConfigured("bench.nothrottle_settings is for bench/nginx_upload.py only (set CROWDLENS_BENCH_BASELINE=1)")

from config.settings import *  # noqa: E402,F403

# A rate of None makes DRF's rate throttles allow every request without touching the cache.
PHOTO_UPLOAD_RATE = None
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {k: None for k in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]}}  # noqa: F405
