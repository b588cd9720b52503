"""The feature cache table as ``training.ml.FeatureStore``: read by selectors (embeddings), written by runs.

Not a service: it only adapts the FeatureCache table to the interface training.ml expects,
so both the reads (selectors) and the writes (services) use it.
"""

from __future__ import annotations

from training.models import FeatureCache


class DbFeatureStore:
    """training.ml.FeatureStore on the FeatureCache table."""

    chunk = 500  # SQLite's limit on query variables

    def get_many(self, keys: list[str], cache_id: str) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), self.chunk):
            rows = FeatureCache.objects.filter(cache_id=cache_id, sha256__in=unique[i:i + self.chunk])
            found.update({row.sha256: bytes(row.data) for row in rows.only("sha256", "data")})
        return found

    def present(self, keys: list[str], cache_id: str) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), self.chunk):
            found.update(FeatureCache.objects.filter(cache_id=cache_id, sha256__in=unique[i:i + self.chunk])
                         .values_list("sha256", flat=True))
        return found

    def put_many(self, items: dict[str, bytes], cache_id: str) -> None:
        rows = [FeatureCache(sha256=k, cache_id=cache_id, data=v) for k, v in items.items()]
        for i in range(0, len(rows), self.chunk):
            FeatureCache.objects.bulk_create(rows[i:i + self.chunk], ignore_conflicts=True)

