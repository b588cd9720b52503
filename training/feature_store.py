"""The feature cache table as ``training.ml.FeatureStore``: read by selectors (embeddings), written by runs.

Not a service: it only adapts the FeatureCache table to the interface training.ml expects,
so both the reads (selectors) and the writes (services) use it.
"""

from __future__ import annotations

from training.models import FeatureCache


class DbFeatureStore:
    """training.ml.FeatureStore on the FeatureCache table."""

    chunk = 500  # SQLite's limit on query variables

    def _rows(self, keys: list[str], cache_id: str):
        """The stored rows of ``keys``, one query per ``chunk`` distinct keys."""
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), self.chunk):
            yield FeatureCache.objects.filter(cache_id=cache_id, sha256__in=unique[i:i + self.chunk])

    def get_many(self, keys: list[str], cache_id: str) -> dict[str, bytes]:
        return {row.sha256: bytes(row.data) for rows in self._rows(keys, cache_id)
                for row in rows.only("sha256", "data")}

    def present(self, keys: list[str], cache_id: str) -> set[str]:
        return {sha256 for rows in self._rows(keys, cache_id) for sha256 in rows.values_list("sha256", flat=True)}

    def put_many(self, items: dict[str, bytes], cache_id: str) -> None:
        rows = [FeatureCache(sha256=k, cache_id=cache_id, data=v) for k, v in items.items()]
        for i in range(0, len(rows), self.chunk):
            FeatureCache.objects.bulk_create(rows[i:i + self.chunk], ignore_conflicts=True)

