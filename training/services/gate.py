"""The release gate: whether a trained candidate may replace the model in service.

``gate_decide`` holds the rules on accuracies; ``training_run_gate`` measures the
model in service on the candidate's test split and records the verdict on the run.

Both rules compare two files photo by photo on the same test split when the
per-photo answers are known: a drop counts only when it is larger than the
allowed margin *and* an exact one-sided McNemar test (a binomial test on the
photos one file got right and the other wrong) says chance at this test-split
size does not explain it (p < TRAINING_GATE_ALPHA). On ~60 test photos one
photo is 1.7 points; a single photo more wrong (p = 0.5) never holds a model back.
"""

from __future__ import annotations

import dataclasses
import math
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


@dataclass(frozen=True)
class PairedComparison:
    """Two files' answers on the same photos: ``worse`` = right in the reference, wrong in the other file."""

    photos: int
    worse: int
    better: int

    @property
    def p_value(self) -> float:
        """Exact one-sided McNemar: P(at least ``worse`` of the discordant photos go against the other file
        if each discordant photo were a fair coin)."""
        n = self.worse + self.better
        if n == 0:
            return 1.0
        return sum(math.comb(n, k) for k in range(self.worse, n + 1)) / 2 ** n

    def sentence(self) -> str:
        return (f"compared photo by photo on {self.photos} test photos: {self.worse} right before and wrong now, "
                f"{self.better} the other way (one-sided exact McNemar p = {self.p_value:.3f})")


def correct_per_photo(*, predictions: list[int], truth: list[int], file_labels: list[str] | None = None,
                      truth_labels: list[str] | None = None) -> list[bool]:
    """Whether each answer was right; with label lists, answers and truth may index different label orders."""
    if file_labels is None or truth_labels is None:
        return [p == t for p, t in zip(predictions, truth)]
    return [0 <= p < len(file_labels) and 0 <= t < len(truth_labels) and file_labels[p] == truth_labels[t]
            for p, t in zip(predictions, truth)]


def examples_in_label_order(examples: list[ml.Example], labels: list[str], other: list[str]) -> list[ml.Example]:
    """``examples`` (label_index into ``labels``) with label_index into ``other``; -1 where ``other`` lacks it."""
    position = {slug: i for i, slug in enumerate(other)}
    return [dataclasses.replace(e, label_index=position.get(labels[e.label_index], -1)) for e in examples]


def paired_comparison(*, reference: list[bool], other: list[bool]) -> PairedComparison | None:
    if not reference or len(reference) != len(other):
        return None
    return PairedComparison(photos=len(reference), worse=sum(r and not o for r, o in zip(reference, other)),
                            better=sum(o and not r for r, o in zip(reference, other)))


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _against(ours: float, theirs: float) -> str:
    points = (ours - theirs) * 100
    if abs(points) < 0.05:
        return "equals"
    return f"is {abs(points):.1f} points {'above' if points > 0 else 'below'}"


def _drop_counts(*, drop_points: float, allowed: float, paired: PairedComparison | None) -> tuple[bool, str]:
    """(held back?, why) for a drop of ``drop_points`` against an allowance of ``allowed`` points."""
    alpha = settings.TRAINING_GATE_ALPHA
    if drop_points <= allowed + 1e-9:
        return False, "within the allowed drop"
    if paired is None:
        return True, "beyond the allowed drop (per-photo answers unknown: no paired test)"
    if paired.p_value < alpha:
        return True, f"beyond the allowed drop and beyond chance: {paired.sentence()} < {alpha:g}"
    return False, (f"beyond the allowed drop but within chance at this test-split size: {paired.sentence()} "
                   f">= {alpha:g}")


def chance_threshold(*, largest_class_share: float) -> tuple[float, str]:
    """(accuracy a model must beat with confidence, what it is): TRAINING_PUBLISH_MIN_ACCURACY when set, else
    the share of the largest class, which a model answering that label to every photo scores."""
    if settings.TRAINING_PUBLISH_MIN_ACCURACY is not None:
        return settings.TRAINING_PUBLISH_MIN_ACCURACY, "TRAINING_PUBLISH_MIN_ACCURACY"
    return largest_class_share, "the largest label's share: what always answering that label scores"


def chance_rule(*, estimate: dict, largest_class_share: float, labels: int) -> tuple[bool, str]:
    """(passes?, sentence): the estimate's 95 % lower bound must exceed the chance threshold; when it does not,
    the sentence says how many more photos would help."""
    threshold, what = chance_threshold(largest_class_share=largest_class_share)
    low, accuracy, photos = estimate.get("low", 0.0), estimate.get("accuracy", 0.0), estimate.get("photos", 0)
    measured = (f"accuracy {_pct(accuracy)}, 95 % interval {_pct(low)}-{_pct(estimate.get('high', 1.0))} on "
                f"{photos} photos")
    if photos and low > threshold:
        return True, f"Better than chance: {measured}; its lower bound is above {_pct(threshold)} ({what})."
    from training.ml.fit import photos_for_lower_bound

    needed = photos_for_lower_bound(accuracy, threshold, n=photos, low=low if photos else None)
    if needed is None:
        more = (f"the model does no better than {_pct(threshold)} ({what}), so more of the same photos will not "
                "show otherwise: check that the labels are right and that the photos show what tells the labels "
                f"apart, and add photos (at least 30 a label)")
    else:
        extra = needed - photos
        more = (f"at this accuracy about {extra} more photos (about {-(-extra // max(1, labels))} a label) would "
                f"show it; more photos usually raise the accuracy too")
    return False, (f"Not shown better than chance: {measured}; its lower bound is not above {_pct(threshold)} "
                   f"({what}). Nothing was published: {more}.")


def gate_decide(*, candidate: dict[str, float], service: float | None, service_version: int | None,
                correct: dict[str, list[bool]] | None = None, service_correct: list[bool] | None = None,
                evidence: dict[str, list[bool]] | None = None, chance: tuple[bool, str] | None = None) -> GateVerdict:
    """The release rules on accuracies (0..1); margins are in accuracy points (percent).

    ``correct``: variant -> whether the candidate's file got each test photo right; ``service_correct``:
    the same for the model in service on the same photos, in the same order. Without them the rules
    compare accuracies alone. ``evidence``: variant -> right/wrong on the photos the variants are compared
    on (more than the test split after cross-validation); the int8 rule uses it when given. ``chance``:
    the verdict of ``chance_rule``; a model not shown better than chance is held back.
    """
    variant = settings.TRAINING_GATE_VARIANT
    margin, max_drop = settings.TRAINING_GATE_MARGIN, settings.TRAINING_INT8_MAX_DROP
    correct = correct or {}
    decisions: list[tuple[str, str]] = []
    passed = True
    if chance is not None:
        passed = chance[0]
        decisions.append(("gate_chance_ok" if chance[0] else "gate_not_better_than_chance", chance[1]))
    ours = candidate[variant]
    if service is None:
        decisions.append(("gate_no_model_in_service", f"No model in service: the candidate's {variant} "
                                                      f"{_pct(ours)} is not compared."))
    else:
        paired = (paired_comparison(reference=service_correct, other=correct[variant])
                  if service_correct is not None and variant in correct else None)
        held, why = _drop_counts(drop_points=(service - ours) * 100, allowed=margin, paired=paired)
        sentence = (f"{variant} {_pct(ours)} {_against(ours, service)} v{service_version} in service "
                    f"{_pct(service)} on the same test split; allowed drop {margin:g} (TRAINING_GATE_MARGIN): {why}.")
        if held:
            passed = False
            decisions.append(("gate_accuracy_worse", f"Held back: {sentence}"))
        else:
            decisions.append(("gate_accuracy_ok", sentence))
    if "int8" in candidate and "float32" in candidate:
        int8, f32 = candidate["int8"], candidate["float32"]
        pairs = evidence if evidence and "float32" in evidence and "int8" in evidence else correct
        if pairs is evidence:
            int8, f32 = sum(evidence["int8"]) / max(1, len(evidence["int8"])), sum(evidence["float32"]) / max(1, len(evidence["float32"]))
        paired = (paired_comparison(reference=pairs["float32"], other=pairs["int8"])
                  if "float32" in pairs and "int8" in pairs else None)
        held, why = _drop_counts(drop_points=(f32 - int8) * 100, allowed=max_drop, paired=paired)
        sentence = (f"int8 {_pct(int8)} {_against(int8, f32)} float32 {_pct(f32)}; allowed drop {max_drop:g} "
                    f"(TRAINING_INT8_MAX_DROP): {why}.")
        if held:
            passed = False
            decisions.append(("gate_int8_drop", f"Held back: {sentence}"))
        else:
            decisions.append(("gate_int8_ok", sentence))
    else:
        decisions.append(("gate_int8_not_checked", "int8 or float32 was not exported; the int8 rule does not apply."))
    return GateVerdict(passed, decisions)


def training_run_gate(*, run: TrainingRun, result: ml.TrainResult, test: list[ml.Example], folder: Path,
                      reporter: RunReporter) -> bool:
    """Gate ``result`` against the model in service (re-evaluated on ``test``); record and log each decision."""
    candidate = {name: vr.accuracy for name, vr in result.variants.items()}
    truth = [example.label_index for example in test]
    correct = {name: correct_per_photo(predictions=vr.predictions, truth=truth) for name, vr in result.variants.items()}
    if result.estimate.get("method") == "cross_validation" and result.out_of_fold:
        # The files trained on the test photos too: the candidate answers each test photo with the
        # cross-validation model that never saw it (the float head the files carry).
        gate_variant = settings.TRAINING_GATE_VARIANT
        correct[gate_variant] = [result.out_of_fold.get(e.key) == e.label_index for e in test]
        candidate[gate_variant] = sum(correct[gate_variant]) / max(1, len(test))
    service_correct = None
    current = ModelVersion.objects.filter(in_service=True, status=VersionStatus.PUBLISHED).first()
    service_acc, service_version, gate_info = None, None, {"candidate": candidate, "variant": settings.TRAINING_GATE_VARIANT,
                                                          "margin": settings.TRAINING_GATE_MARGIN,
                                                          "int8_max_drop": settings.TRAINING_INT8_MAX_DROP,
                                                          "alpha": settings.TRAINING_GATE_ALPHA}
    if current is not None:
        file = (current.files.filter(variant=settings.TRAINING_GATE_VARIANT).first()
                or current.files.filter(variant="float32").first() or current.files.first())
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / f"v{current.version}-{file.variant}.tflite"
        with storage.open_file(file.model_key) as handle:
            local.write_bytes(handle.read())
        # The old file answers in its own label order: the truth must index that order (labels it never
        # learnt become -1, counted wrong), or a new label would shift every later label's index.
        evaluation = ml.evaluate_tflite(path=local, examples=examples_in_label_order(test, list(run.labels),
                                                                                     list(current.labels)),
                                        labels=list(current.labels), input_spec=ml.InputSpec(**file.input_spec))
        service_acc, service_version = evaluation.accuracy, current.version
        service_correct = correct_per_photo(predictions=evaluation.predictions, truth=truth,
                                            file_labels=list(current.labels), truth_labels=list(run.labels))
        gate_info["service"] = {
            "version": current.version, "variant": file.variant, "accuracy": evaluation.accuracy,
            # The model in service on today's labels: challenges read this recall (labels it lacks count 0).
            "per_class": jsonable(_per_class_on(evaluation, current.labels, run.labels)),
        }
        reporter.log(f"v{current.version} in service ({file.variant}) re-evaluated on the new test split: "
                     f"{evaluation.accuracy:.4f}")
    chance = chance_rule(estimate=result.estimate, largest_class_share=result.largest_class_share,
                         labels=len(run.labels)) if result.estimate else None
    verdict = gate_decide(candidate=candidate, service=service_acc, service_version=service_version,
                          correct=correct, service_correct=service_correct, evidence=result.evidence or None,
                          chance=chance)
    gate_info["passed"] = verdict.passed
    run.gate = jsonable(gate_info)
    for decision, detail in verdict.decisions:
        reporter.decide(decision, detail)
    if not verdict.passed:
        reporter.decide("held_back", "The candidate was not published; the model in service stays." if current
                        else "The candidate was not published; no model is in service yet.")
    return verdict.passed


def _per_class_on(evaluation: ml.VariantResult, model_labels: list[str], run_labels: list[str]) -> dict:
    per_class = dict(evaluation.per_class)
    for slug in run_labels:  # a label the old model never learnt has recall 0 on today's split
        per_class.setdefault(slug, {"precision": 0.0, "recall": 0.0, "support": 0})
    return per_class

