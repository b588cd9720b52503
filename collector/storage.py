"""Photo and model files in the configured storage (local folder or S3).

Keys are generated here, never taken from a client's file name. Storage
failures surface as StorageUnavailable (503) so the caller can leave the
database untouched.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable

from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.utils import timezone

from config.domain_errors import StorageUnavailable

logger = logging.getLogger(__name__)


def _storage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


STORAGE_ERRORS = _storage_errors()


def new_photo_prefix() -> str:
    """photos/2026/11/25/<32 random hex>: unguessable, date-sharded."""
    return f"photos/{timezone.now():%Y/%m/%d}/{secrets.token_hex(16)}"


def save(key: str, content: bytes | File) -> str:
    """Write the bytes under exactly this key; raise StorageUnavailable on failure."""
    payload = ContentFile(content) if isinstance(content, bytes) else content
    try:
        saved = default_storage.save(key, payload)
    except STORAGE_ERRORS as exc:
        logger.warning("Storage write failed for %s: %s", key, exc)
        if not is_remote():
            # A local disk that filled up mid-write keeps the part written under the key (Django's
            # FileSystemStorage writes in place); S3 stores an object whole or not at all.
            delete_quietly([key])
        raise StorageUnavailable() from exc
    if saved != key:  # FileSystemStorage renames on collision; keys must be exact
        delete_quietly([saved])
        raise StorageUnavailable()
    return saved


def open_file(key: str):
    try:
        return default_storage.open(key, "rb")
    except FileNotFoundError:
        raise
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable() from exc


def exists(key: str) -> bool:
    try:
        return default_storage.exists(key)
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable() from exc


def delete_quietly(keys: Iterable[str]) -> list[str]:
    """Delete what can be deleted; return the keys that could not be (logged, for a later sweep)."""
    failed = []
    for key in keys:
        if not key:
            continue
        try:
            default_storage.delete(key)
        except STORAGE_ERRORS as exc:
            logger.warning("Could not delete %s from storage: %s", key, exc)
            failed.append(key)
    return failed


def url_for(key: str, *, expire: int | None = None) -> str:
    """A presigned URL on S3; on local storage, the caller serves the file itself."""
    if expire is not None:
        try:
            return default_storage.url(key, expire=expire)
        except TypeError:
            pass
    return default_storage.url(key)


def is_remote() -> bool:
    return default_storage.__class__.__module__.startswith("storages.")
