"""Test settings: the real settings, with test-only defaults for required variables.

Everything else (DATABASE_URL for PostgreSQL in CI, ...) still comes from the
environment exactly as in production.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only

import tempfile  # noqa: E402

STATIC_ROOT = Path(tempfile.mkdtemp(prefix="crowdlens-static-"))  # noqa: F405
