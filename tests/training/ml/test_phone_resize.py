"""A phone that hands MediaPipe Tasks its whole camera frame lets MediaPipe resize it: how, and what int8 learns of it.

MediaPipe's resize is not the manifest's (antialiased, centre-aligned bilinear): a probe model whose scores are its
own input pixels shows exactly what MediaPipe feeds a model, and `data.resize_unfiltered` reproduces it; the
night's int8 export converts `int8_calibration_draws` calibrations (draw 0 as before, later ones through such views:
`HParams.int8_calibration` "phone") and keeps the file closest to the float model on such views.
How much that changes the phone's answers is measured on the flowers by bench/train.py (bench/README.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from tests.training.ml.conftest import SIZE, tiny_hparams
from training.ml import HParams, InputSpec, ModelInfo, tflite_metadata
from training.ml.calibration import FIDELITY_RESIZES, calibration_draws, calibration_pixels, fidelity_pixels
from training.ml.data import PHONE_RESIZES, clean_view, load_rgb, phone_view, resize_unfiltered

PROBE = 8  # the probe model's input side


@pytest.fixture(scope="module")
def mediapipe_resize():
    """What MediaPipe Tasks' ImageClassifier hands a PROBE x PROBE model for an image: the model's scores are its
    input pixels (/ 255), one category each, read back by index."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions

    from training.ml.model import tf_setup

    tf = tf_setup()
    module = tf.Module()
    module.probe = tf.function(lambda x: tf.reshape(x, [1, PROBE * PROBE * 3]) / 255.0,
                               input_signature=[tf.TensorSpec([1, PROBE, PROBE, 3], tf.float32, name="input")])
    flat = tf.lite.TFLiteConverter.from_concrete_functions([module.probe.get_concrete_function()], module).convert()
    spec = InputSpec(height=PROBE, width=PROBE, resize="stretch", dtype="float32", mean=[0.0] * 3, std=[1.0] * 3)
    flat = tflite_metadata.write(flat, labels=[f"p{i}" for i in range(PROBE * PROBE * 3)], input_spec=spec,
                                 info=ModelInfo())
    options = ImageClassifierOptions(base_options=BaseOptions(model_asset_buffer=flat), max_results=-1)
    with ImageClassifier.create_from_options(options) as classifier:
        def resize(pixels: np.ndarray) -> np.ndarray:
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels, dtype=np.uint8))
            tensor = np.zeros(PROBE * PROBE * 3)
            for category in classifier.classify(image).classifications[0].categories:
                tensor[category.index] = category.score * 255.0
            return tensor.reshape(PROBE, PROBE, 3)

        yield resize


@pytest.mark.slow
class TestMediaPipesOwnResize:
    @pytest.mark.parametrize("side", [20, 13, 5], ids=["shrinks 2.5x", "shrinks 1.6x", "enlarges 1.6x"])
    def test_resize_unfiltered_is_what_mediapipe_feeds_the_model(self, mediapipe_resize, side):
        pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
        fed = mediapipe_resize(pixels)
        ours = resize_unfiltered(Image.fromarray(pixels), PROBE).astype(np.float64)
        manifest = np.asarray(Image.fromarray(pixels).resize((PROBE, PROBE), Image.Resampling.BILINEAR), np.float64)
        assert np.abs(fed - ours).max() <= 1.01  # rounding to whole levels only
        # Why it matters: the manifest's resize is another image (centre-aligned, filtered), many levels apart.
        assert np.abs(fed - manifest).mean() > 10

    def test_a_frame_of_the_input_size_is_fed_as_it_is(self, mediapipe_resize):
        pixels = np.random.default_rng(0).integers(0, 256, (PROBE, PROBE, 3), dtype=np.uint8)
        assert np.abs(mediapipe_resize(pixels) - pixels).max() < 0.01


class TestInt8Calibration:
    def test_draw_0_is_the_calibration_before_issue_17(self, photos):
        hparams = tiny_hparams(int8_calibration_samples=8)
        rng = np.random.default_rng(hparams.seed)  # the draw every int8 file had before: the manifest's view
        drawn = [photos.train[i] for i in rng.permutation(len(photos.train))[:8]]
        for calibration in ("phone", "clean"):
            views = calibration_pixels(photos.train, dataclasses.replace(hparams, int8_calibration=calibration))
            assert len(views) == 8
            assert all(np.array_equal(view, clean_view(load_rgb(example.path), SIZE))
                       for view, example in zip(views, drawn, strict=True))

    def test_later_draws_take_other_photos_in_turn_through_the_phone_s_resizes(self, photos):
        hparams = tiny_hparams(int8_calibration_samples=8)
        views = calibration_pixels(photos.train, hparams, draw=1)
        rng = np.random.default_rng([hparams.seed, 1])
        drawn = [photos.train[i] for i in rng.permutation(len(photos.train))[:8]]
        for k, (view, example) in enumerate(zip(views, drawn, strict=True)):
            assert view.shape == (SIZE, SIZE, 3) and view.dtype == np.uint8
            assert np.array_equal(view, phone_view(load_rgb(example.path), SIZE, PHONE_RESIZES[(k + 1) % len(PHONE_RESIZES)]))
        first = calibration_pixels(photos.train, hparams, draw=0)
        assert not all(np.array_equal(a, b) for a, b in zip(first, views, strict=True))
        clean = calibration_pixels(photos.train, dataclasses.replace(hparams, int8_calibration="clean"), draw=1)
        assert all(np.array_equal(view, clean_view(load_rgb(example.path), SIZE))
                   for view, example in zip(clean, drawn, strict=True))

    def test_the_night_converts_every_draw_and_none_without_int8(self, photos):
        """What the night hands convert_int8_closest: its default number of draws, in order (the tests' tiny runs
        convert one; the choice among several is tested in test_compact.py)."""
        night = dataclasses.replace(tiny_hparams(int8_calibration_samples=4),
                                    int8_calibration_draws=HParams().int8_calibration_draws)
        draws = calibration_draws(photos.train, night)
        assert len(draws) == HParams().int8_calibration_draws == 3
        for draw, views in enumerate(draws):
            assert all(np.array_equal(a, b) for a, b in
                       zip(views, calibration_pixels(photos.train, night, draw=draw), strict=True))
        assert calibration_draws(photos.train, dataclasses.replace(night, variants=("float32",))) == []

    def test_an_unknown_calibration_is_refused(self, photos):
        with pytest.raises(ValueError, match="int8_calibration"):
            calibration_pixels(photos.train, tiny_hparams(int8_calibration="rainbow"))

    def test_closeness_is_checked_on_the_manifest_s_view_and_mediapipe_s_resizes(self, photos):
        views = fidelity_pixels(photos.val, SIZE, limit=2, seed=3)
        assert len(views) == 2 * len(FIDELITY_RESIZES) and FIDELITY_RESIZES[0] == "manifest"
        image = load_rgb(photos.val[np.random.default_rng(3).permutation(len(photos.val))[0]].path)
        assert [np.array_equal(v, phone_view(image, SIZE, how)) for v, how in zip(views, FIDELITY_RESIZES)] == [True] * 3
