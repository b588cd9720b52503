"""Cached features of one night on disk, read back batch by batch: memory that does not grow with the collection.

A night used to hold every photo's cached features in RAM twice (a numpy array, then a
TensorFlow constant made from it): about 2 x 130 KB per photo at 224 px, 26 GB at 100k photos.
Here each photo's views are one fixed-size row of float16 (the precision the FeatureStore keeps,
so nothing is lost) in a scratch file; training reads the rows of one batch at a time with
``os.pread``. Reads go through the page cache, which the kernel may evict, not through a
memory map, whose touched pages would count against the process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


class FeatureArray:
    """N rows of V x feature-shape float16 in a file; the shape is learned from the first row written."""

    def __init__(self, n: int, *, directory: Path | None = None):
        self.n = n
        self.views: int | None = None
        self.feature_shape: tuple[int, ...] | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="features-", dir=directory))
        self._fd: int | None = None

    # --- writing --------------------------------------------------------------------------
    def _open(self, row: np.ndarray) -> None:
        self.views, self.feature_shape = int(row.shape[0]), tuple(int(d) for d in row.shape[1:])
        self._view_bytes = int(np.prod(self.feature_shape)) * 2
        self._row_bytes = self.views * self._view_bytes
        self._fd = os.open(self._folder / "rows.f16", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._fd, self.n * self._row_bytes)

    def put(self, positions: list[int], row: np.ndarray) -> None:
        """Write one photo's views (V x feature shape) at every position it holds in the night's list."""
        if self._fd is None:
            self._open(row)
        if tuple(row.shape) != (self.views, *self.feature_shape):
            raise ValueError(f"row of shape {row.shape}, expected {(self.views, *self.feature_shape)}")
        blob = np.ascontiguousarray(row, dtype=np.float16).tobytes()
        for position in positions:
            os.pwrite(self._fd, blob, position * self._row_bytes)

    # --- reading --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, self.views or 1, *(self.feature_shape or ()))

    def read_views(self, indices: np.ndarray, views: np.ndarray) -> np.ndarray:
        """float32 (len(indices), *feature_shape): view ``views[j]`` of photo ``indices[j]``."""
        out = np.empty((len(indices), *self.feature_shape), dtype=np.float16)
        for j, (index, view) in enumerate(zip(np.asarray(indices).tolist(), np.asarray(views).tolist())):
            offset = index * self._row_bytes + view * self._view_bytes
            out[j] = np.frombuffer(os.pread(self._fd, self._view_bytes, offset), dtype=np.float16).reshape(
                self.feature_shape)
        return out.astype(np.float32)

    def read(self, indices: list[int] | np.ndarray) -> np.ndarray:
        """float32 (len(indices), V, *feature_shape): every view of the given photos."""
        rows = [np.frombuffer(os.pread(self._fd, self._row_bytes, i * self._row_bytes), dtype=np.float16)
                for i in np.asarray(indices).tolist()]
        return np.stack(rows).reshape((len(rows), self.views, *self.feature_shape)).astype(np.float32)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class InMemoryFeatures:
    """The same reading interface over an N x V x ... numpy array (tests, small experiments)."""

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array, dtype=np.float32)
        self.n, self.views, self.feature_shape = self.array.shape[0], self.array.shape[1], tuple(self.array.shape[2:])

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def read_views(self, indices: np.ndarray, views: np.ndarray) -> np.ndarray:
        return self.array[np.asarray(indices), np.asarray(views)]

    def read(self, indices) -> np.ndarray:
        return self.array[np.asarray(indices)]

    def close(self) -> None:
        pass
