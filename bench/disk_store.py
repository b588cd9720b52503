"""A FeatureStore on disk for repeated benchmark runs (one file per cache id and photo), importing no TensorFlow."""

from __future__ import annotations

import hashlib
from pathlib import Path


class DiskFeatureStore:
    """For repeated experiments only (--feature-cache): one file per (cache id, photo)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str, cache_id: str) -> Path:
        return self.root / hashlib.sha256(cache_id.encode()).hexdigest()[:16] / f"{key}.npy"

    def get_many(self, keys, cache_id):
        found = {}
        for key in keys:
            path = self._path(key, cache_id)
            if path.is_file():
                found[key] = path.read_bytes()
        return found

    def put_many(self, items, cache_id):
        for key, blob in items.items():
            path = self._path(key, cache_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)

    def present(self, keys, cache_id):
        return {key for key in keys if self._path(key, cache_id).is_file()}
