"""Base weights that cannot be had fail loudly, naming the setting: never random weights instead."""

from __future__ import annotations

import pytest

from tests.training.ml.conftest import tiny_hparams
from training.ml import BackboneConfig, MemoryFeatureStore, WeightsUnavailable, train_and_export


@pytest.fixture
def offline_imagenet(monkeypatch, tmp_path):
    """An empty Keras cache and a download address nothing listens on: what a machine without internet sees."""
    import tf_keras.src.applications.mobilenet_v2 as mobilenet_v2

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(mobilenet_v2, "BASE_WEIGHT_PATH", "http://127.0.0.1:9/")


class TestBaseWeights:
    def test_it_refuses_imagenet_weights_it_cannot_download(self, offline_imagenet, photos, tmp_path):
        hparams = tiny_hparams(backbone=BackboneConfig(alpha=0.35, input_size=96, base_weights="imagenet"))
        with pytest.raises(WeightsUnavailable, match="TRAINING_BASE_WEIGHTS=imagenet"):
            train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels, hparams=hparams,
                             feature_store=MemoryFeatureStore(), out_dir=tmp_path / "out", log=lambda m: None)
        assert not (tmp_path / "out").exists()

    def test_it_refuses_a_missing_weights_file(self, photos, tmp_path):
        missing = tmp_path / "nowhere.h5"
        hparams = tiny_hparams(backbone=BackboneConfig(alpha=0.35, input_size=96, base_weights=str(missing)))
        store = MemoryFeatureStore()
        with pytest.raises(WeightsUnavailable, match="TRAINING_BASE_WEIGHTS=.*nowhere.h5"):
            train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels, hparams=hparams,
                             feature_store=store, out_dir=tmp_path / "out", log=lambda m: None)
        assert store.rows == {} and not (tmp_path / "out").exists()

    def test_it_refuses_a_file_that_is_not_mobilenet_weights(self, photos, tmp_path):
        bogus = tmp_path / "weights.h5"
        bogus.write_bytes(b"not an HDF5 file")
        hparams = tiny_hparams(backbone=BackboneConfig(alpha=0.35, input_size=96, base_weights=str(bogus)))
        with pytest.raises(WeightsUnavailable, match="TRAINING_BASE_WEIGHTS="):
            train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels, hparams=hparams,
                             feature_store=MemoryFeatureStore(), out_dir=tmp_path / "out", log=lambda m: None)

    def test_it_loads_a_local_weights_file(self, tmp_path):
        from training.ml.model import build_backbone

        source = build_backbone(BackboneConfig(alpha=0.35, input_size=96, base_weights="none"))
        path = tmp_path / "mine.h5"
        source.save_weights(str(path))
        loaded = build_backbone(BackboneConfig(alpha=0.35, input_size=96, base_weights=str(path)))
        for a, b in zip(source.get_weights(), loaded.get_weights()):
            assert (a == b).all()

    def test_cache_identity_follows_the_weights_file(self, tmp_path):
        one, two = tmp_path / "one.h5", tmp_path / "two.h5"
        one.write_bytes(b"one")
        two.write_bytes(b"two")
        ids = {BackboneConfig(base_weights=str(p)).cache_id() for p in (one, two)}
        assert len(ids) == 2
        assert BackboneConfig(base_weights="none").cache_id() != BackboneConfig(base_weights="none", input_size=96).cache_id()
        assert BackboneConfig(base_weights="none").cache_id() != BackboneConfig(base_weights="none", alpha=0.5).cache_id()
