"""Settings for commands the tests start as subprocesses on a file database (DATABASE_URL from the test)."""

import json
import os

from tests.settings import *  # noqa: F401,F403

SCHEDULER_JOBS = json.loads(os.environ.get("TEST_SCHEDULER_JOBS", "[]"))
