"""The real pipeline on tiny generated photos: train, export every variant, evaluate the written files."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.training.ml.conftest import SIZE, tiny_hparams
from tests.training.images import make_examples
from training.ml import MemoryFeatureStore, Stopped, evaluate_tflite, preprocess_for_inference, train_and_export
from training.ml.data import load_rgb
from training.ml.features import decode, embed, features_cache_id
from training.ml.model import POOLED

pytestmark = pytest.mark.slow
# For tests about what a run caches or repeats, not what it learns: an epoch of each phase.
FEW_EPOCHS = {"epochs_head": 1, "epochs_fine_tune": 1}


def run_file(path, spec, examples) -> list[int]:
    """What a phone does with the downloaded file and the manifest's input spec."""
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    predictions = []
    for example in examples:
        interpreter.set_tensor(inp["index"], preprocess_for_inference(np.asarray(load_rgb(example.path)), spec))
        interpreter.invoke()
        predictions.append(int(np.argmax(interpreter.get_tensor(out["index"])[0])))
    return predictions


class TestTrainAndExport:
    def test_it_writes_and_evaluates_every_variant(self, first_run, photos):
        result, _, out = first_run
        assert set(result.variants) == {"float32", "float16", "dynamic", "int8"}
        for variant, vr in result.variants.items():
            assert vr.path == out / f"model-{variant}.tflite" and vr.path.is_file()
            assert vr.size_bytes == vr.path.stat().st_size
            assert vr.sha256 == hashlib.sha256(vr.path.read_bytes()).hexdigest()
            assert len(vr.predictions) == len(photos.test)
            assert np.asarray(vr.confusion).shape == (3, 3) and np.asarray(vr.confusion).sum() == len(photos.test)
            assert set(vr.per_class) == set(photos.labels)
            assert all(vr.per_class[label]["support"] == 6 for label in photos.labels)
            correct = sum(p == e.label_index for p, e in zip(vr.predictions, photos.test))
            assert vr.accuracy == pytest.approx(correct / len(photos.test))
            assert vr.latency_ms > 0

    def test_it_learns_the_classes(self, first_run):
        result, _, _ = first_run
        # Three colours and shapes, random backbone weights: far above chance (1/3) once trained.
        assert result.variants["float32"].accuracy >= 0.8
        assert result.variants["int8"].accuracy >= 0.7

    def test_it_shrinks_the_quantized_files(self, first_run):
        sizes = {v: r.size_bytes for v, r in first_run[0].variants.items()}
        assert sizes["float16"] < 0.6 * sizes["float32"]
        assert sizes["dynamic"] < 0.45 * sizes["float32"]
        assert sizes["int8"] < 0.45 * sizes["float32"]

    def test_it_makes_int8_take_raw_uint8_pixels(self, first_run):
        result, _, _ = first_run
        spec = result.input_specs["int8"]
        assert (spec.dtype, spec.mean, spec.std, spec.resize) == ("uint8", [0.0] * 3, [1.0] * 3, "center_crop")
        interpreter = Interpreter(model_path=str(result.variants["int8"].path))
        detail = interpreter.get_input_details()[0]
        assert detail["dtype"] == np.uint8
        assert list(detail["shape"]) == [1, SIZE, SIZE, 3]
        assert detail["quantization"] == (1.0, 0)  # raw pixels, no rescaling left to the phone
        for variant in ("float32", "float16", "dynamic"):
            spec = result.input_specs[variant]
            assert (spec.dtype, spec.mean, spec.std) == ("float32", [127.5] * 3, [127.5] * 3)
            assert Interpreter(model_path=str(result.variants[variant].path)).get_input_details()[0]["dtype"] == np.float32

    def test_it_records_what_the_file_predicts_on_a_phone(self, first_run, photos):
        result, _, _ = first_run
        for variant, vr in result.variants.items():
            assert run_file(vr.path, result.input_specs[variant], photos.test) == vr.predictions, variant

    def test_evaluate_tflite_gives_the_recorded_predictions(self, first_run, photos):
        result, _, _ = first_run
        for variant, vr in result.variants.items():
            again = evaluate_tflite(path=vr.path, examples=photos.test, labels=photos.labels, input_spec=result.input_specs[variant])
            assert again.predictions == vr.predictions
            assert again.accuracy == vr.accuracy and again.confusion == vr.confusion and again.sha256 == vr.sha256

    def test_evaluate_tflite_counts_labels_the_file_does_not_know_as_wrong(self, first_run, photos):
        result, _, _ = first_run
        vr = result.variants["float32"]
        unknown = [dataclasses.replace(e, label_index=-1) for e in photos.test[:3]]
        mixed = evaluate_tflite(path=vr.path, examples=photos.test + unknown, labels=photos.labels,
                                input_spec=result.input_specs["float32"])
        correct = sum(p == e.label_index for p, e in zip(vr.predictions, photos.test))
        assert mixed.accuracy == pytest.approx(correct / (len(photos.test) + 3))
        assert mixed.confusion == vr.confusion

    def test_it_records_strategy_history_and_phases(self, first_run, photos):
        result, _, _ = first_run
        assert result.strategy == "fine_tune"
        assert result.labels == photos.labels
        assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(result.history)
        assert len(result.history["loss"]) >= 2 and len(result.history["val_loss"]) == len(result.history["loss"])
        assert {"features", "train_head", "fine_tune", "export", "evaluate"} <= set(result.phase_seconds)
        assert result.feature_stats == {"computed": len(photos.train) + len(photos.val), "reused": 0}


class TestFeatureCache:
    def test_it_reuses_cached_features_and_computes_only_new_photos(self, first_run, photos, tmp_path):
        _, store, _ = first_run
        rows_before = len(store.rows)
        new = make_examples(tmp_path / "new", 2, seed=9)  # 6 photos that arrived since the first run
        result = train_and_export(train=photos.train + new, val=photos.val, test=photos.test, labels=photos.labels,
                                  hparams=tiny_hparams(variants=("float32",), **FEW_EPOCHS), feature_store=store,
                                  out_dir=tmp_path / "out", log=lambda m: None)
        assert result.feature_stats == {"computed": len(new), "reused": len(photos.train) + len(photos.val)}
        assert len(store.rows) == rows_before + len(new)

    def test_it_does_not_mix_features_of_another_backbone(self, first_run, photos, tmp_path):
        _, store, _ = first_run
        other = tiny_hparams(variants=("float32",), backbone=dataclasses.replace(tiny_hparams().backbone, alpha=0.5),
                             **FEW_EPOCHS)
        result = train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels,
                                  hparams=other, feature_store=store, out_dir=tmp_path / "out", log=lambda m: None)
        assert result.feature_stats == {"computed": len(photos.train) + len(photos.val), "reused": 0}


class TestModelFeatures:
    """What the nightly label audit reads: the pooled features of the night's trained network, of every photo."""

    def test_it_stores_the_fine_tuned_networks_features_of_every_photo(self, first_run, photos, tmp_path):
        result, store, _ = first_run
        every = [e.key for e in (*photos.train, *photos.val, *photos.test)]
        assert ":trained=" in result.model_features, "named by the trained network's weights"
        assert "model_features" in result.phase_seconds
        held = {k: decode(b) for k, b in store.get_many(every, result.model_features).items()}
        assert set(held) == set(every)
        # Not the frozen backbone's: the fine-tuned top blocks changed what the classifier reads.
        frozen_store = MemoryFeatureStore()
        embed(paths=[e.path for e in photos.test], keys=[e.key for e in photos.test],
              backbone=tiny_hparams().backbone, feature_store=frozen_store)
        frozen_id = features_cache_id(tiny_hparams().backbone, POOLED, augmented=0, hparams=None)
        frozen = {k: decode(b) for k, b in frozen_store.get_many([e.key for e in photos.test], frozen_id).items()}
        assert all(held[k].shape == frozen[k].shape for k in frozen)
        assert not all(np.allclose(held[k], frozen[k], atol=1e-2) for k in frozen)


class TestStrategy:
    def test_it_trains_only_a_head_when_a_class_has_few_photos(self, photos, tmp_path):
        store = MemoryFeatureStore()
        result = train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels,
                                  hparams=tiny_hparams(fine_tune_min_per_class=1000, epochs_head=60, learning_rate_head=1e-2,
                                                       variants=("float32",)),
                                  feature_store=store, out_dir=tmp_path, log=lambda m: None, model_features=True)
        # A head on frozen features: on the last activation's or on several layers', as the cross-validation chose.
        assert result.strategy in ("head_only", "several_layers") and result.strategy == result.choice["features"]
        assert "fine_tune" not in result.phase_seconds
        assert result.variants["float32"].accuracy >= 0.8
        # A head-only night left the backbone frozen: its network's features are the embeddings, of every photo.
        every = [e.key for e in (*photos.train, *photos.val, *photos.test)]
        assert result.model_features == features_cache_id(tiny_hparams().backbone, POOLED, augmented=0, hparams=None)
        assert store.present(every, result.model_features) == set(every)


def operator_names(path) -> set[str]:
    """The builtin operators a .tflite file's graph holds (read from the file, before any delegate)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    by_code = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = [model.OperatorCodes(graph.Operators(i).OpcodeIndex()) for i in range(graph.OperatorsLength())]
    return {by_code[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())] for c in codes}


class TestPruning:
    def test_it_ships_sparse_weights_without_pruning_wrappers(self, photos, tmp_path):
        result = train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels,
                                  hparams=tiny_hparams(prune_sparsity=0.6, variants=("float32",)),
                                  feature_store=MemoryFeatureStore(), out_dir=tmp_path, log=lambda m: None)
        assert "prune" in result.phase_seconds
        interpreter = Interpreter(model_path=str(result.variants["float32"].path))
        interpreter.allocate_tensors()
        classifier = [t for t in interpreter.get_tensor_details() if list(t["shape"]) == [3, 1280]]
        assert classifier, "the classifier's weights are in the file"
        weights = interpreter.get_tensor(classifier[0]["index"])
        assert np.mean(weights == 0) >= 0.55
        # The last 1x1 convolution (fine-tuned, then pruned) is sparse too: BatchNorm folding keeps zeros.
        conv = [t for t in interpreter.get_tensor_details() if list(t["shape"]) == [1280, 1, 1, 112]]
        assert conv and np.mean(interpreter.get_tensor(conv[0]["index"]) == 0) >= 0.55
        # Stripped wrappers leave the plain network: no mask multiplications or variable reads in the graph
        # (the file's intermediate names are stripped on export, so this looks at the operators).
        ops = operator_names(result.variants["float32"].path)
        assert ops == {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
        assert result.variants["float32"].accuracy >= 0.6


class TestStop:
    def test_it_stops_when_asked(self, photos, tmp_path):
        with pytest.raises(Stopped):
            train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels,
                             hparams=tiny_hparams(), feature_store=MemoryFeatureStore(), out_dir=tmp_path,
                             log=lambda m: None, should_stop=lambda: True)
        assert not list(tmp_path.glob("*.tflite"))


class TestSeeds:
    def test_it_repeats_a_run_exactly(self, photos, tmp_path):
        def once(folder):
            return train_and_export(train=photos.train, val=photos.val, test=photos.test, labels=photos.labels,
                                    hparams=tiny_hparams(variants=("float32",), mixup_alpha=0.4, **FEW_EPOCHS),
                                    feature_store=MemoryFeatureStore(),
                                    out_dir=tmp_path / folder, log=lambda m: None)

        first, second = once("a"), once("b")
        assert first.history == second.history
        assert first.variants["float32"].predictions == second.variants["float32"].predictions
        assert first.variants["float32"].sha256 == second.variants["float32"].sha256
