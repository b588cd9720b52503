"""The release rules, on accuracies as the evaluation of exported files reports them."""

from training.services.gate import gate_decide


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
