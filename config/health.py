"""Health checks for load balancers, orchestrators and `make run`'s wait loop.

- ``/healthz`` (readiness): 200 only when the database, the cache (throttle
  counters, shared by all workers) and the file storage (local folder or S3)
  each answer, and the upload spool (FILE_UPLOAD_TEMP_DIR, else the system's
  temporary folder) and a local storage folder each have room for one largest
  upload (REQUEST_MAX_BYTES); otherwise 503 with a body naming which failed
  ("database", "cache", "storage", "spool"). A host that cannot reach one of
  them, or whose disk could not take the next upload, should get no traffic.
- ``/healthz/live`` (liveness): 200 as long as the process serves requests;
  touches nothing, so a database outage does not get every web process
  restarted.

The answer names the failing part but not the error (the path is public);
the error itself goes to the log.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger("crowdlens.health")


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache():
    key, value = "healthz-probe", uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    if cache.get(key) != value:
        raise RuntimeError("the cache did not return what was just written")


def _writable_with_room(location) -> None:
    """The folder (or the nearest existing parent it would be created under) is writable and has room for
    one largest upload: a request no larger than REQUEST_MAX_BYTES could be written there whole."""
    folder = Path(location)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise RuntimeError(f"{folder} is not a writable folder")
    free = shutil.disk_usage(folder).free
    if free < settings.REQUEST_MAX_BYTES:
        raise RuntimeError(f"{folder} has {free} bytes free, less than one largest upload ({settings.REQUEST_MAX_BYTES})")


def upload_spool_dir() -> str:
    """Where uploads are spooled while they arrive (Django's upload handler, the chunked-body spool)."""
    return settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir()


def _spool():
    folder = upload_spool_dir()
    if not os.path.isdir(folder):  # Django writes into it and creates nothing
        raise RuntimeError(f"the upload spool {folder} does not exist")
    _writable_with_room(folder)


def _storage():
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):
        # exists() on a local path never fails: ask whether uploads could be written.
        _writable_with_room(storage.location)
        return
    # S3: one HEAD request on the bucket. Not exists() on a key: a HEAD of a key in a bucket that
    # does not exist answers 404 too, which exists() reads as "no such key", so a deleted or
    # misnamed bucket would pass. HeadBucket needs s3:ListBucket, which storage_sweep needs anyway.
    storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)


CHECKS = {"database": _database, "cache": _cache, "storage": _storage, "spool": _spool}


def readiness(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception:  # any failure of a dependency makes the host unready; the log says what
            logger.exception("Health check %s failed", name)
            results[name] = "failed"
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed, "checks": results}, status=503)
    return JsonResponse({"status": "ok", "checks": results})


def liveness(request):
    return JsonResponse({"status": "ok"})
