"""A night's features live on disk and come back a batch at a time."""

from __future__ import annotations

import numpy as np
import pytest

from training.ml import MemoryFeatureStore, data
from training.ml.feature_array import FeatureArray
from training.ml.features import encode


def test_rows_round_trip_at_every_position_a_photo_holds(tmp_path):
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(3, 4, 4, 2)).astype(np.float16) for _ in range(2))
    with FeatureArray(3, directory=tmp_path) as features:
        features.put([0, 2], a)  # the same photo twice in the night's list
        features.put([1], b)
        assert features.shape == (3, 3, 4, 4, 2)
        np.testing.assert_array_equal(features.read([2, 1, 0]), np.stack([a, b, a]).astype(np.float32))
        np.testing.assert_array_equal(features.read_views(np.array([1, 0]), np.array([2, 1])),
                                      np.stack([b[2], a[1]]).astype(np.float32))
        folder = next(tmp_path.iterdir())
        assert (folder / "rows.f16").stat().st_size == 3 * 3 * 4 * 4 * 2 * 2
    assert list(tmp_path.iterdir()) == []  # the scratch file goes with it


def test_a_row_of_another_shape_is_refused(tmp_path):
    with FeatureArray(2, directory=tmp_path) as features:
        features.put([0], np.zeros((2, 3), np.float16))
        with pytest.raises(ValueError, match="expected"):
            features.put([1], np.zeros((2, 4), np.float16))


def test_training_batches_read_the_same_numbers_as_from_memory(tmp_path):
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(10, 3, 5)).astype(np.float16).astype(np.float32)
    labels = np.arange(10) % 2
    with FeatureArray(10, directory=tmp_path) as on_disk:
        for i, row in enumerate(rows):
            on_disk.put([i], row)
        for training in (False, True):
            kwargs = dict(batch_size=4, training=training, seed=3)
            disk = [tuple(t.numpy() for t in batch) for batch in data.feature_dataset(on_disk, labels, **kwargs)]
            memory = [tuple(t.numpy() for t in batch) for batch in data.feature_dataset(rows, labels, **kwargs)]
            assert len(disk) == len(memory) == 3
            for got, want in zip(disk, memory):
                for x, y in zip(got, want):
                    np.testing.assert_array_equal(x, y)


class CountingStore(MemoryFeatureStore):
    def __init__(self):
        super().__init__()
        self.asked: list[int] = []

    def get_many(self, keys, cache_id):
        self.asked.append(len(keys))
        return super().get_many(keys, cache_id)


def test_the_store_is_read_in_bounded_chunks(tmp_path, monkeypatch):
    from training.ml import BackboneConfig, features as features_module
    from training.ml.model import POOLED

    monkeypatch.setattr(features_module, "STORE_CHUNK", 16)
    backbone = BackboneConfig(alpha=0.35, input_size=32, base_weights="none")
    cache_id = features_module.features_cache_id(backbone, POOLED, augmented=0, hparams=None)
    store = CountingStore()
    keys = [f"photo-{i}" for i in range(100)]
    store.put_many({k: encode(np.full((1, 8), i, np.float32)) for i, k in enumerate(keys)}, cache_id)
    result = features_module.cached_features(keys=keys, paths=[None] * 100, base=None, backbone=backbone, cut=POOLED,
                                             augmented=0, hparams=None, feature_store=store, scratch=tmp_path)
    with result.features as features:
        assert (result.computed, result.reused) == (0, 100)
        assert max(store.asked) == 16 and sum(store.asked) == 100
        np.testing.assert_array_equal(features.read([0, 99])[:, 0, 0], [0, 99])
