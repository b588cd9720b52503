"""The release gate: whether a trained candidate may replace the model in service.

``gate_decide`` holds the rules on accuracies; ``training_run_gate`` measures the
model in service on the candidate's test split and records the verdict on the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from collector import storage
from training import ml
from training.hparams import jsonable
from training.models import ModelVersion, TrainingRun, VersionStatus
from training.services.reporter import RunReporter


@dataclass
class GateVerdict:
    passed: bool
    decisions: list[tuple[str, str]]


def gate_decide(*, candidate: dict[str, float], service: float | None, service_version: int | None) -> GateVerdict:
    """The release rules on accuracies (0..1); margins are in accuracy points (percent)."""
    variant = settings.TRAINING_GATE_VARIANT
    margin, max_drop = settings.TRAINING_GATE_MARGIN, settings.TRAINING_INT8_MAX_DROP
    decisions: list[tuple[str, str]] = []
    passed = True
    ours = candidate[variant]
    if service is None:
        decisions.append(("gate_no_model_in_service", f"No model in service: the candidate's {variant} accuracy "
                                                      f"{ours:.2%} is not compared."))
    elif (ours - service) * 100 >= -margin - 1e-9:
        decisions.append(("gate_accuracy_ok", f"{variant} accuracy {ours:.2%} vs v{service_version} in service "
                                              f"{service:.2%} on the same test split (margin {margin:g} points)."))
    else:
        passed = False
        decisions.append(("gate_accuracy_worse", f"Held back: {variant} accuracy {ours:.2%} is more than {margin:g} "
                                                 f"points below v{service_version} in service ({service:.2%}) on the "
                                                 "same test split (TRAINING_GATE_MARGIN)."))
    if "int8" in candidate and "float32" in candidate:
        drop = (candidate["float32"] - candidate["int8"]) * 100
        if drop <= max_drop + 1e-9:
            decisions.append(("gate_int8_ok", f"int8 {candidate['int8']:.2%} is within {max_drop:g} points of float32 "
                                              f"{candidate['float32']:.2%} (drop {drop:.2f})."))
        else:
            passed = False
            decisions.append(("gate_int8_drop", f"Held back: int8 {candidate['int8']:.2%} is {drop:.2f} points below "
                                                f"float32 {candidate['float32']:.2%}, more than {max_drop:g} "
                                                "(TRAINING_INT8_MAX_DROP)."))
    else:
        decisions.append(("gate_int8_not_checked", "int8 or float32 was not exported; the int8 rule does not apply."))
    return GateVerdict(passed, decisions)


def training_run_gate(*, run: TrainingRun, result: ml.TrainResult, test: list[ml.Example], folder: Path,
                      reporter: RunReporter) -> bool:
    """Gate ``result`` against the model in service (re-evaluated on ``test``); record and log each decision."""
    candidate = {name: vr.accuracy for name, vr in result.variants.items()}
    current = ModelVersion.objects.filter(in_service=True, status=VersionStatus.PUBLISHED).first()
    service_acc, service_version, gate_info = None, None, {"candidate": candidate, "variant": settings.TRAINING_GATE_VARIANT,
                                                          "margin": settings.TRAINING_GATE_MARGIN,
                                                          "int8_max_drop": settings.TRAINING_INT8_MAX_DROP}
    if current is not None:
        file = (current.files.filter(variant=settings.TRAINING_GATE_VARIANT).first()
                or current.files.filter(variant="float32").first() or current.files.first())
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / f"v{current.version}-{file.variant}.tflite"
        with storage.open_file(file.model_key) as handle:
            local.write_bytes(handle.read())
        evaluation = ml.evaluate_tflite(path=local, examples=test, labels=list(current.labels),
                                        input_spec=ml.InputSpec(**file.input_spec))
        service_acc, service_version = evaluation.accuracy, current.version
        gate_info["service"] = {
            "version": current.version, "variant": file.variant, "accuracy": evaluation.accuracy,
            # The model in service on today's labels: challenges read this recall (labels it lacks count 0).
            "per_class": jsonable(_per_class_on(evaluation, current.labels, run.labels)),
        }
        reporter.log(f"v{current.version} in service ({file.variant}) re-evaluated on the new test split: "
                     f"{evaluation.accuracy:.4f}")
    verdict = gate_decide(candidate=candidate, service=service_acc, service_version=service_version)
    gate_info["passed"] = verdict.passed
    run.gate = jsonable(gate_info)
    for decision, detail in verdict.decisions:
        reporter.decide(decision, detail)
    if not verdict.passed:
        reporter.decide("held_back", "The candidate was not published; the model in service stays.")
    return verdict.passed


def _per_class_on(evaluation: ml.VariantResult, model_labels: list[str], run_labels: list[str]) -> dict:
    per_class = dict(evaluation.per_class)
    for slug in run_labels:  # a label the old model never learnt has recall 0 on today's split
        per_class.setdefault(slug, {"precision": 0.0, "recall": 0.0, "support": 0})
    return per_class

