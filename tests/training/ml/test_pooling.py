"""The head on several layers' pooled features, at two scales: what the night caches is what the file computes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.ml.conftest import SIZE, tiny_hparams
from tests.training.ml.test_tflite_metadata import classifier, mp_image
from training.ml import BackboneConfig, export
from training.ml.data import clean_view, load_rgb, normalize, preprocess_for_inference
from training.ml.model import Head, Pooling, bottom_model, build_backbone



def test_the_night_reads_the_scales_below_the_input_size_only():
    hparams = tiny_hparams(feature_scales=(128, 32, 24), head_layers=("block_13_expand_relu",))
    assert Pooling.of(hparams) == Pooling(layers=("block_13_expand_relu",), scales=(SIZE, 32, 24))
    assert Pooling.of(tiny_hparams(feature_scales=(128,), head_layers=())).plain  # nothing smaller: one pass


@pytest.mark.slow
def test_the_file_computes_the_head_on_several_layers_at_two_scales(photos):
    """The features the night caches (bottom_model of the Pooling) and the head on them, against the exported
    files run as a phone runs them: LiteRT with the manifest's preprocessing, and MediaPipe Tasks."""
    from ai_edge_litert.interpreter import Interpreter

    base = build_backbone(BackboneConfig(alpha=0.35, input_size=SIZE, base_weights="none"))
    pooling = Pooling(layers=("block_13_expand_relu", "block_16_project_BN"), scales=(SIZE, 32))
    pixels = np.stack([clean_view(load_rgb(e.path), SIZE) for e in photos.test])
    features = bottom_model(base, pooling).predict(normalize(pixels), verbose=0)
    last = base.output.shape[-1]
    layers = sum(base.get_layer(name).output.shape[-1] for name in pooling.layers)
    assert features.shape == (len(pixels), last + layers)
    # The last activation's columns come first, and are what the plain pooled head reads at each scale.
    plain = bottom_model(base, Pooling(scales=pooling.scales)).predict(normalize(pixels), verbose=0)
    np.testing.assert_allclose(features[:, :last], plain, rtol=1e-4, atol=1e-5)

    rng = np.random.default_rng(3)
    kernel = (rng.normal(size=(features.shape[1], 3)) / features.std(0).mean() / 10).astype(np.float32)
    bias = np.zeros(3, np.float32)
    head = Head(3, dropout=0.5, weight_decay=0.0, seed=1, pooling=pooling)
    head.set_weights(kernel, bias)
    logits = features @ kernel + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)

    flat = export.convert(base, head, variant="float32", size=SIZE, labels=photos.labels)
    interpreter = Interpreter(model_content=flat)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    spec = export.input_spec_for("float32", SIZE)
    for example, want in zip(photos.test, expected):
        interpreter.set_tensor(inp["index"], preprocess_for_inference(np.asarray(load_rgb(example.path)), spec))
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(out["index"])[0], want, atol=2e-4)

    # The full-integer file: raw pixels in, the resize and both scales inside; MediaPipe Tasks loads it.
    int8 = export.convert(base, head, variant="int8", size=SIZE, calibration_pixels=list(pixels), labels=photos.labels)
    with classifier(int8) as clf:
        categories = clf.classify(mp_image(pixels[0])).classifications[0].categories
    assert {c.category_name for c in categories} == set(photos.labels)
