"""The release rules, on accuracies as the evaluation of exported files reports them."""

from pathlib import Path

from training.ml.types import VariantResult
from training.services.gate import correct_per_photo, gate_decide, paired_comparison


class TestGateDecide:
    def test_it_passes_the_first_model_with_a_good_int8(self, settings):
        verdict = gate_decide(candidate={"float32": 0.80, "int8": 0.795}, service=None, service_version=None)
        assert verdict.passed
        assert [d for d, _ in verdict.decisions] == ["gate_no_model_in_service", "gate_int8_ok"]

    def test_it_holds_back_a_candidate_worse_than_the_margin(self, settings):
        settings.TRAINING_GATE_MARGIN = 1.0
        verdict = gate_decide(candidate={"float32": 0.78, "int8": 0.78}, service=0.80, service_version=3)
        assert not verdict.passed
        codes = dict(verdict.decisions)
        assert "gate_accuracy_worse" in codes and "v3" in codes["gate_accuracy_worse"]

    def test_it_accepts_a_candidate_within_the_margin(self, settings):
        settings.TRAINING_GATE_MARGIN = 2.5
        verdict = gate_decide(candidate={"float32": 0.78, "int8": 0.78}, service=0.80, service_version=3)
        assert verdict.passed

    def test_it_holds_back_an_int8_that_drops_too_much(self, settings):
        settings.TRAINING_INT8_MAX_DROP = 1.0
        verdict = gate_decide(candidate={"float32": 0.90, "int8": 0.885}, service=0.5, service_version=1)
        assert not verdict.passed
        assert "gate_int8_drop" in dict(verdict.decisions)
        assert "TRAINING_INT8_MAX_DROP" in dict(verdict.decisions)["gate_int8_drop"]

    def test_it_compares_the_configured_variant(self, settings):
        settings.TRAINING_GATE_VARIANT = "int8"
        settings.TRAINING_INT8_MAX_DROP = 5.0
        verdict = gate_decide(candidate={"float32": 0.90, "int8": 0.86}, service=0.88, service_version=1)
        assert not verdict.passed  # int8 0.86 is 2 points under 0.88


# --- the paired rules: photo by photo on the same test split -------------------------------------------


def _result(variant: str, predictions: list[int], truth: list[int]) -> VariantResult:
    accuracy = sum(p == t for p, t in zip(predictions, truth)) / len(truth)
    return VariantResult(variant=variant, path=Path("/nonexistent"), size_bytes=1, sha256="0" * 64, accuracy=accuracy,
                         per_class={}, confusion=[], latency_ms=1.0, predictions=predictions)


def _decide(results: dict[str, VariantResult], truth: list[int], **kwargs):
    return gate_decide(candidate={n: r.accuracy for n, r in results.items()},
                       correct={n: correct_per_photo(predictions=r.predictions, truth=truth) for n, r in results.items()},
                       **kwargs)


class TestPairedInt8Rule:
    truth = [i % 3 for i in range(60)]  # a young installation: 60 test photos, one photo is 1.7 points

    def _with_wrong(self, wrong: list[int]) -> list[int]:
        return [(t + 1) % 3 if i in wrong else t for i, t in enumerate(self.truth)]

    def test_it_does_not_hold_back_a_model_for_one_photo_on_a_small_split(self, settings):
        settings.TRAINING_INT8_MAX_DROP, settings.TRAINING_GATE_ALPHA = 1.0, 0.05
        float32 = _result("float32", self._with_wrong(list(range(20))), self.truth)
        int8 = _result("int8", self._with_wrong(list(range(21))), self.truth)  # one photo more wrong: 1.7 points
        verdict = _decide({"float32": float32, "int8": int8}, self.truth, service=None, service_version=None)
        assert verdict.passed
        detail = dict(verdict.decisions)["gate_int8_ok"]
        assert "int8 65.0 % is 1.7 points below float32 66.7 %; allowed drop 1" in detail
        assert "60 test photos: 1 right before and wrong now, 0 the other way" in detail
        assert "p = 0.500" in detail and "within chance" in detail

    def test_it_holds_back_an_int8_that_loses_many_photos_consistently(self, settings):
        settings.TRAINING_INT8_MAX_DROP, settings.TRAINING_GATE_ALPHA = 1.0, 0.05
        float32 = _result("float32", self._with_wrong(list(range(10))), self.truth)
        int8 = _result("int8", self._with_wrong(list(range(16))), self.truth)  # six more wrong, none better
        verdict = _decide({"float32": float32, "int8": int8}, self.truth, service=None, service_version=None)
        assert not verdict.passed
        detail = dict(verdict.decisions)["gate_int8_drop"]
        assert detail.startswith("Held back: int8 73.3 % is 10.0 points below float32 83.3 %")
        assert "p = 0.016" in detail and "< 0.05" in detail  # 0.5 ** 6

    def test_a_drop_made_of_swaps_is_chance(self, settings):
        # int8 gets 8 photos wrong that float32 got right and 5 right that float32 got wrong: 3 photos net (5 points).
        settings.TRAINING_INT8_MAX_DROP, settings.TRAINING_GATE_ALPHA = 1.0, 0.05
        float32 = _result("float32", self._with_wrong(list(range(40, 45))), self.truth)
        int8 = _result("int8", self._with_wrong(list(range(8))), self.truth)
        verdict = _decide({"float32": float32, "int8": int8}, self.truth, service=None, service_version=None)
        assert verdict.passed
        assert "8 right before and wrong now, 5 the other way" in dict(verdict.decisions)["gate_int8_ok"]

    def test_the_level_is_configurable(self, settings):
        settings.TRAINING_INT8_MAX_DROP = 1.0
        float32 = _result("float32", self._with_wrong([]), self.truth)
        int8 = _result("int8", self._with_wrong([0, 1, 2]), self.truth)  # p = 0.125
        settings.TRAINING_GATE_ALPHA = 0.05
        assert _decide({"float32": float32, "int8": int8}, self.truth, service=None, service_version=None).passed
        settings.TRAINING_GATE_ALPHA = 0.2
        assert not _decide({"float32": float32, "int8": int8}, self.truth, service=None, service_version=None).passed

    def test_an_int8_above_float32_reads_as_a_sentence(self, settings):
        verdict = gate_decide(candidate={"float32": 0.610, "int8": 0.636}, service=None, service_version=None)
        assert dict(verdict.decisions)["gate_int8_ok"].startswith(
            "int8 63.6 % is 2.6 points above float32 61.0 %; allowed drop 1")


class TestPairedServiceRule:
    truth = [i % 3 for i in range(60)]

    def test_one_photo_worse_than_the_model_in_service_is_chance(self, settings):
        settings.TRAINING_GATE_MARGIN, settings.TRAINING_GATE_ALPHA = 1.0, 0.05
        ours = _result("float32", [(t + 1) % 3 if i < 11 else t for i, t in enumerate(self.truth)], self.truth)
        service = [i >= 10 for i in range(60)]
        verdict = _decide({"float32": ours}, self.truth, service=sum(service) / 60, service_version=4,
                          service_correct=service)
        assert verdict.passed
        assert "v4 in service" in dict(verdict.decisions)["gate_accuracy_ok"]

    def test_many_photos_worse_than_the_model_in_service_hold_it_back(self, settings):
        settings.TRAINING_GATE_MARGIN, settings.TRAINING_GATE_ALPHA = 1.0, 0.05
        ours = _result("float32", [(t + 1) % 3 if i < 20 else t for i, t in enumerate(self.truth)], self.truth)
        service = [i >= 10 for i in range(60)]
        verdict = _decide({"float32": ours}, self.truth, service=sum(service) / 60, service_version=4,
                          service_correct=service)
        assert not verdict.passed
        assert "10 right before and wrong now, 0 the other way" in dict(verdict.decisions)["gate_accuracy_worse"]

    def test_answers_in_another_label_order_are_compared_by_name(self):
        assert correct_per_photo(predictions=[0, 1], truth=[1, 0], file_labels=["a", "b"],
                                 truth_labels=["b", "a"]) == [True, True]
        assert paired_comparison(reference=[True, False], other=[False, False]).p_value == 0.5


class TestInServiceLabelOrder:
    def test_the_truth_is_put_in_the_old_files_label_order_and_unknown_labels_count_wrong(self):
        from training.ml.types import Example
        from training.services.gate import examples_in_label_order

        today, old = ["apple", "bee", "cat"], ["apple", "cat"]  # "bee" is new since the model in service
        examples = [Example(key=str(i), path=Path(f"/x/{i}"), label_index=i) for i in range(3)]
        assert [e.label_index for e in examples_in_label_order(examples, today, old)] == [0, -1, 1]
