"""Preprocessing the phone repeats, augmentation only for training, features cached per photo and backbone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.training.ml.conftest import tiny_hparams
from tests.training.images import make_examples
from training.ml import BackboneConfig, InputSpec, MemoryFeatureStore, embed, preprocess_for_inference
from training.ml import data
from training.ml.features import decode


def photo(tmp_path, width=90, height=60):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


class TestPreprocessForInference:
    def test_it_center_crops_then_resizes(self, tmp_path):
        _, pixels = photo(tmp_path)
        spec = InputSpec(height=30, width=30, resize="center_crop", dtype="uint8", mean=[0] * 3, std=[1] * 3)
        out = preprocess_for_inference(pixels, spec)
        assert out.shape == (1, 30, 30, 3) and out.dtype == np.uint8
        # A 90x60 photo keeps its middle 60x60 square: resizing that square directly gives the same pixels.
        square = np.asarray(Image.fromarray(pixels[:, 15:75]).resize((30, 30), Image.Resampling.BILINEAR))
        assert (out[0] == square).all()

    def test_it_normalizes_float_inputs(self, tmp_path):
        _, pixels = photo(tmp_path)
        raw = preprocess_for_inference(pixels, InputSpec(32, 32, "stretch", "uint8", [0] * 3, [1] * 3))
        spec = InputSpec(32, 32, "stretch", "float32", [127.5] * 3, [127.5] * 3)
        out = preprocess_for_inference(pixels, spec)
        assert out.dtype == np.float32 and out.min() >= -1 and out.max() <= 1
        assert np.allclose(out, (raw.astype(np.float32) - 127.5) / 127.5)

    def test_it_matches_the_view_training_and_evaluation_use(self, tmp_path):
        path, pixels = photo(tmp_path)
        spec = InputSpec(40, 40, "center_crop", "uint8", [0] * 3, [1] * 3)
        assert (preprocess_for_inference(pixels, spec)[0] == data.clean_view(data.load_rgb(path), 40)).all()


class TestAugmentation:
    def test_it_varies_training_views_reproducibly(self, tmp_path):
        path, _ = photo(tmp_path)
        hparams = tiny_hparams()
        views = data.views_for(path, 40, hparams, key="k", augmented=3)
        again = data.views_for(path, 40, hparams, key="k", augmented=3)
        assert views.shape == (3, 40, 40, 3) and (views == again).all()
        clean = data.clean_view(data.load_rgb(path), 40)
        for index, view in enumerate(views):  # augmented views only: training never draws the clean one
            assert not (view == clean).all()
            assert not any((view == other).all() for other in views[index + 1:])

    def test_it_computes_only_the_clean_view_without_augmentation(self, tmp_path):
        path, _ = photo(tmp_path)
        views = data.views_for(path, 40, tiny_hparams(), key="k", augmented=0)
        assert views.shape == (1, 40, 40, 3) and (views[0] == data.clean_view(data.load_rgb(path), 40)).all()

    def test_it_is_never_applied_at_evaluation(self):
        features = np.stack([np.full((5, 2), fill, np.float32) for fill in range(6)])  # photo i: view v = i*10+v
        features = features + np.arange(5, dtype=np.float32)[None, :, None] * 10
        labels = np.arange(6)
        evaluation = [x.numpy() for x, _ in data.feature_dataset(features[:, :1], labels, batch_size=4, training=False, seed=1)]
        assert (np.concatenate(evaluation)[:, 0] == features[:, 0, 0]).all()  # the one (clean) view, in order
        drawn = set()
        for epoch in range(4):
            training = [x.numpy() for x, _, _ in data.feature_dataset(features, labels, batch_size=6, training=True, seed=epoch)]
            drawn |= set((np.concatenate(training)[:, 0] // 10).astype(int).tolist())
        assert len(drawn) > 1 and drawn <= set(range(5))  # training draws among the cached (augmented) views

    @pytest.mark.slow
    def test_it_can_be_switched_off(self, photos, tmp_path):
        from training.ml import train_and_export

        store = MemoryFeatureStore()
        result = train_and_export(train=photos.train[:12], val=photos.val, test=photos.test[:3], labels=photos.labels,
                                  hparams=tiny_hparams(augment=False, epochs_head=1, fine_tune_min_per_class=1000,
                                                       variants=("float32",)),
                                  feature_store=store, out_dir=tmp_path, log=lambda m: None)
        shapes = {data_shape for data_shape in (np.load(__import__("io").BytesIO(v)).shape for v in store.rows.values())}
        # One clean view per photo: the last activation's pooled features and the head layers' (1280 + 192 + 112).
        assert shapes == {(1, 1280 + 192 + 112)}
        assert result.strategy in ("head_only", "several_layers") and "fine_tune" not in result.phase_seconds


class TestEmbed:
    @pytest.mark.slow
    def test_it_caches_pooled_embeddings(self, tmp_path):
        examples = make_examples(tmp_path, 2)
        backbone = BackboneConfig(alpha=0.35, input_size=32, base_weights="none")
        store = MemoryFeatureStore()
        keys, paths = [e.key for e in examples], [e.path for e in examples]
        assert embed(paths=paths, backbone=backbone, feature_store=store, keys=keys) == (len(keys), 0)
        assert len(store.rows) == len(keys)
        vectors = {k: decode(blob)[0] for k, blob in store.get_many(keys, next(iter(store.rows))[0]).items()}
        assert set(vectors) == set(keys) and all(v.shape == (1280,) for v in vectors.values())
        assert len({v.tobytes() for v in vectors.values()}) == len(keys)  # each photo its own

        class KeysOnly(MemoryFeatureStore):
            """The second night asks which photos have one, and reads no stored vector back."""

            def get_many(self, keys, cache_id):
                assert not self.present(keys, cache_id), "stored embeddings were read back"
                return super().get_many(keys, cache_id)

        again = KeysOnly()
        again.rows = dict(store.rows)
        # Stored already: the files (gone now) are not opened, nothing is computed.
        assert embed(paths=[tmp_path / "gone.jpg"] * len(keys), backbone=backbone, feature_store=again,
                     keys=keys) == (0, len(keys))
        new = make_examples(tmp_path / "new", 1, seed=1)[:1]
        assert embed(paths=[*paths, new[0].path], backbone=backbone, feature_store=again,
                     keys=[*keys, new[0].key]) == (1, len(keys))
