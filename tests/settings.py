"""Test settings: the real settings, with test-only defaults for required variables.

Everything else (DATABASE_URL for PostgreSQL in CI, ...) still comes from the
environment exactly as in production.
"""

import os
import sys

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# A developer's `make run` settings file (README's second terminal exports CROWDLENS_ENV_FILE) must not change
# what the test session reads; a process a test starts reads the file the test names in its environment.
if "pytest" in sys.modules:
    os.environ.pop("CROWDLENS_ENV_FILE", None)

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only

import tempfile  # noqa: E402

STATIC_ROOT = Path(tempfile.mkdtemp(prefix="crowdlens-static-"))  # noqa: F405
