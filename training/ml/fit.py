"""The head that fits the data it has, and accuracy figures that say how sure they are.

Everything here works on cached pooled features (numpy arrays), never on images, so it costs
seconds where training a network costs minutes:

- `wilson`: the Wilson score interval of an accuracy measured on n photos (one photo of 23 is
  4 points; the interval says so).
- `choose_head`: a multinomial logistic regression on pooled backbone features (the Teachable
  Machine / frozen-feature recipe), trained on every photo's clean view and its cached augmented
  views, with balanced class weights. Which features (the candidates: the last activation alone, or
  it and several intermediate layers' pooled activations) and its L2 strength are chosen together by
  stratified k-fold cross-validation; the k-fold is then repeated on other fold draws at the choice,
  and all the out-of-fold answers estimate the accuracy. Runs to convergence (L-BFGS until its
  tolerance, not a fixed epoch count).
- `Estimate.of_cross_validation`: that estimate's 95 % interval, wide enough for both the photos'
  binomial noise (Wilson) and the variance from which photos trained each fold (the corrected
  repeated k-fold t interval of Bouckaert and Frank, 2004).
- `fit_head`: the chosen head as Dense weights (standardisation folded in) for the exported file.
- `variant_choice`: the smallest exported file shown, photo by photo, to be within the allowed drop
  of float32; else the next larger one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

CONFIDENCE = 0.95
Z_TWO_SIDED = 1.959964  # 95 % two-sided
Z_ONE_SIDED = 1.644854  # 95 % one-sided
# L2 strengths tried (sklearn's C: larger = weaker regularisation), on standardised features.
# The files a phone may get by default, smallest first after float32 (the reference): the order.
# `dynamic` is left out: float activations with int8 weights, which GPU delegates do not run.
DEFAULT_CANDIDATES = ("int8", "float16")
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)


def wilson(correct: float, n: int, z: float = Z_TWO_SIDED) -> tuple[float, float]:
    """Wilson score interval of ``correct`` successes in ``n`` trials (0..1); (0, 1) for n = 0. ``correct``
    may be a mean over repeats (not a whole number)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def photos_for_lower_bound(accuracy: float, threshold: float, *, n: int, low: float | None = None,
                           limit: int = 100_000) -> int | None:
    """How many photos a model measuring ``accuracy`` needs for its interval's lower bound to exceed
    ``threshold``; None when the accuracy itself is not above it (more of the same photos cannot help).

    ``low``: the lower bound reported now on ``n`` photos, when it is below Wilson's (the repeated k-fold's
    interval, widened by the folds' spread): the distance below the accuracy is kept in the same proportion
    to Wilson's as the photos grow, as both shrink about as one over the square root of the photos."""
    if accuracy <= threshold:
        return None
    size = max(1, n)
    wilson_gap = accuracy - wilson(round(accuracy * size), size)[0]
    widen = max(1.0, (accuracy - low) / wilson_gap) if low is not None and wilson_gap > 0 else 1.0
    while size < limit:
        if accuracy - widen * (accuracy - wilson(round(accuracy * size), size)[0]) > threshold:
            return size
        size = int(size * 1.1) + 1
    return None


@dataclass
class Estimate:
    """An accuracy with its 95 % interval and what it rests on."""

    method: str  # "cross_validation" | "test_split"
    why: str
    accuracy: float
    low: float
    high: float
    photos: int
    correct: int
    folds: int = 0
    repeats: int = 0  # k-fold repeats on other fold draws (cross-validation only)
    fold_sd: float = 0.0  # spread (standard deviation) of the folds' accuracies
    interval: str = "wilson"  # how low/high were computed

    @classmethod
    def of(cls, *, method: str, why: str, correct: int, photos: int, folds: int = 0) -> "Estimate":
        low, high = wilson(correct, photos)
        return cls(method=method, why=why, accuracy=correct / photos if photos else 0.0, low=low, high=high,
                   photos=photos, correct=correct, folds=folds)

    @classmethod
    def of_cross_validation(cls, *, why: str, correct: float, photos: int, folds: int,
                            fold_accuracies: list[float], repeats: int) -> "Estimate":
        """The repeated k-fold estimate: ``correct`` is the mean number of photos right per repeat; the interval
        is the union of the Wilson interval on the photos and the corrected repeated k-fold t interval
        (Bouckaert and Frank 2004, after Nadeau and Bengio 2003): mean fold accuracy +- t(J-1) sqrt((1/J + 1/(k-1))
        s^2), s the spread of the J = k x repeats folds' accuracies. Wilson alone counts each photo's answer as
        independent luck of one fixed model; but the folds' models differ by which photos trained them, which at
        10-30 photos a label moves the estimate as much again (bench/README.md, "Interval calibration"). The
        union keeps Wilson where the folds happen to agree and stays inside [0, 1]."""
        from scipy.stats import t as student

        accuracy = correct / photos if photos else 0.0
        low, high = wilson(correct, photos)
        spread = float(np.std(fold_accuracies, ddof=1)) if len(fold_accuracies) > 1 else 0.0
        if len(fold_accuracies) > 1 and folds > 1:
            half = float(student.ppf(0.5 + CONFIDENCE / 2, len(fold_accuracies) - 1)) * math.sqrt(
                (1 / len(fold_accuracies) + 1 / (folds - 1)) * spread ** 2)
            low, high = max(0.0, min(low, accuracy - half)), min(1.0, max(high, accuracy + half))
        return cls(method="cross_validation", why=why, accuracy=accuracy, low=low, high=high, photos=photos,
                   correct=int(round(correct)), folds=folds, repeats=repeats, fold_sd=spread,
                   interval="wilson+corrected_t")

    def sentence(self) -> str:
        how = (f"{self.folds}-fold cross-validation over all {self.photos} photos"
               + (f", repeated on {self.repeats} fold draws" if self.repeats > 1 else "")
               if self.method == "cross_validation" else f"{self.photos} test photos")
        return (f"{self.accuracy * 100:.1f} % (95 % interval {self.low * 100:.1f}-{self.high * 100:.1f} %, "
                f"{how})")

    def as_dict(self) -> dict:
        return {"method": self.method, "why": self.why, "accuracy": self.accuracy, "low": self.low, "high": self.high,
                "photos": self.photos, "correct": self.correct, "folds": self.folds, "confidence": CONFIDENCE,
                "repeats": self.repeats, "fold_sd": self.fold_sd, "interval": self.interval}


@dataclass
class HeadChoice:
    candidate: str  # which features (a key of the candidates given)
    c: float
    scores: dict[str, dict[float, float]]  # candidate -> C -> cross-validated accuracy on clean views (first draw)
    folds: int
    out_of_fold: np.ndarray  # each photo's prediction at the choice by the fold model that never saw it (first draw)
    log_loss: dict[str, dict[float, float]]  # candidate -> C -> cross-validated log loss, what chose them
    repeats: int = 1
    correct: float = 0.0  # photos right out of fold at the choice, mean over the repeats
    fold_accuracies: list[float] = field(default_factory=list)  # every fold of every repeat, at the choice


def _folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    k = max(2, min(k, smallest))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _rows(clean: np.ndarray, views: np.ndarray | None, y: np.ndarray, index: np.ndarray):
    """Training rows of the photos ``index``: the clean view and every augmented view, each photo weighing one."""
    parts, labels, weights = [clean[index]], [y[index]], [np.ones(len(index))]
    if views is not None and views.shape[1] > 0:
        v = views.shape[1]
        parts.append(views[index].reshape(len(index) * v, -1))
        labels.append(np.repeat(y[index], v))
        weights.append(np.full(len(index) * v, 1.0))
    x = np.concatenate(parts)
    rows_y = np.concatenate(labels)
    w = np.concatenate(weights) / (1 + (views.shape[1] if views is not None else 0))
    return x, rows_y, w


def _balanced(y: np.ndarray, w: np.ndarray, n_classes: int) -> np.ndarray:
    """Row weights times balanced class weights (total / (classes x class total)), as Keras training did."""
    totals = np.bincount(y, weights=w, minlength=n_classes)
    present = np.count_nonzero(totals)
    factor = np.where(totals > 0, w.sum() / (present * np.maximum(totals, 1e-12)), 0.0)
    return w * factor[y]


def _fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float, n_classes: int, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=1000, tol=1e-3, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the weakest strengths: summarised by the score
        model.fit(scaler.transform(x), y, sample_weight=_balanced(y, w, n_classes))
    return scaler, model


def _probabilities(fitted, x: np.ndarray, n_classes: int) -> np.ndarray:
    scaler, model = fitted
    probabilities = np.zeros((len(x), n_classes))
    probabilities[:, model.classes_] = model.predict_proba(scaler.transform(x))
    return probabilities


def _fold_predictions(clean, views, y, n_classes, *, splits, configs, should_stop) -> dict[tuple, np.ndarray]:
    """Out-of-fold probabilities of every photo (clean view) for each (columns, C) config: its fold's model
    never saw it. ``configs``: key -> (columns of the features, C)."""
    predicted = {key: np.zeros((len(y), n_classes)) for key in configs}
    for train_part, held_part in splits:
        if should_stop():
            from .types import Stopped

            raise Stopped("stopped while cross-validating")
        x, rows_y, w = _rows(clean, views, y, train_part)
        for key, (columns, c) in configs.items():
            fitted = _fit(x[:, columns], rows_y, w, c, n_classes, 0)
            predicted[key][held_part] = _probabilities(fitted, clean[held_part][:, columns], n_classes)
    return predicted


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())


def choose_head(*, clean: np.ndarray, views: np.ndarray | None, y: np.ndarray, n_classes: int, seed: int,
                folds: int = 5, grid: tuple[float, ...] = C_GRID, candidates: dict[str, object] | None = None,
                repeats: int = 1, should_stop=lambda: False) -> HeadChoice:
    """Choose the features and C by stratified k-fold CV over all the photos given (log loss on held-out clean
    views), then repeat the k-fold on ``repeats - 1`` other fold draws at the choice.

    ``candidates``: name -> the columns of ``clean``/``views`` that candidate reads (a slice or index array), the
    simplest first (a tie goes to the earlier one, then to the stronger regularisation); default: every column.
    ``out_of_fold`` is every photo's prediction at the choice by the first draw's fold model that never saw it.
    The estimate (``correct``, ``fold_accuracies``) is not nested (the first draw's folds also chose), so it is
    optimistic by the choice among a few strongly correlated configurations: a fraction of a point, well inside
    the interval (measured in bench/README.md, "Interval calibration"); the other draws did not choose."""
    candidates = candidates or {"head": slice(None)}
    configs = {(name, c): (columns, c) for name, columns in candidates.items() for c in grid}
    splits = _folds(y, folds, seed)
    k = len(splits)
    probabilities = _fold_predictions(clean, views, y, n_classes, splits=splits, configs=configs,
                                      should_stop=should_stop)
    scores = {name: {c: float((probabilities[(name, c)].argmax(1) == y).mean()) for c in grid} for name in candidates}
    # Chosen by the held-out log loss, a proper score: smoother than accuracy on a few dozen photos, where
    # several configurations tie on accuracy and one photo decides.
    losses = {name: {c: _log_loss(probabilities[(name, c)], y) for c in grid} for name in candidates}
    low = min(v for per in losses.values() for v in per.values())
    name, c = next((name, c) for name in candidates for c in sorted(grid)
                   if losses[name][c] <= low + 1e-12)  # ties: the simpler features, the stronger regularisation
    answers = [probabilities[(name, c)].argmax(1)]
    fold_accuracies = [float((answers[0][held] == y[held]).mean()) for _, held in splits]
    for repeat in range(1, max(1, repeats)):
        more = _folds(y, folds, seed + 7919 * repeat)
        predicted = _fold_predictions(clean, views, y, n_classes, splits=more, configs={0: (candidates[name], c)},
                                      should_stop=should_stop)[0].argmax(1)
        answers.append(predicted)
        fold_accuracies += [float((predicted[held] == y[held]).mean()) for _, held in more]
    correct = float(np.mean([(a == y).sum() for a in answers]))
    return HeadChoice(candidate=name, c=c, scores=scores, folds=k, out_of_fold=answers[0], log_loss=losses,
                      repeats=len(answers), correct=correct, fold_accuracies=fold_accuracies)


def fit_head(*, clean: np.ndarray, views: np.ndarray | None, y: np.ndarray, n_classes: int, c: float,
             seed: int, columns=slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """The head on all the photos given, reading ``columns`` of the features, as (kernel D x classes, bias) of a
    softmax Dense layer on them: the standardisation is folded in, so the exported file needs nothing else."""
    x, rows_y, w = _rows(clean, views, y, np.arange(len(y)))
    scaler, model = _fit(x[:, columns], rows_y, w, c, n_classes, seed)
    coef = np.zeros((n_classes, model.coef_.shape[1]))
    intercept = np.full(n_classes, -1e4)  # a class without photos is never the answer
    coef[model.classes_] = model.coef_ if len(model.classes_) > 2 else np.vstack([-model.coef_, model.coef_]) / 2
    intercept[model.classes_] = model.intercept_ if len(model.classes_) > 2 else np.array([-1, 1]) * model.intercept_ / 2
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    kernel = (coef / scale).T
    bias = intercept - (coef * (scaler.mean_ / scale)).sum(1)
    return kernel.astype(np.float32), bias.astype(np.float32)


@dataclass
class VariantEvidence:
    variant: str
    photos: int
    worse: int  # right in float32, wrong in this file
    better: int

    @property
    def drop_upper(self) -> float:
        """One-sided 95 % upper bound of the accuracy drop against float32 (0..1): the paired difference
        (worse - better) / n plus 1.645 standard errors, the standard error being sqrt(worse + better + 1) / n
        (the + 1 keeps a handful of photos with no disagreement from "showing" anything)."""
        if self.photos == 0:
            return 1.0
        return (self.worse - self.better + Z_ONE_SIDED * math.sqrt(self.worse + self.better + 1)) / self.photos


def variant_choice(*, correct: dict[str, list[bool]], sizes: dict[str, int], max_drop_points: float,
                   reference: str = "float32") -> tuple[str, str, dict[str, VariantEvidence]]:
    """(variant, why, evidence): the smallest file whose drop against ``reference`` is shown, on the photos
    compared, to be within ``max_drop_points``; ``reference`` when none is (or only it was exported)."""
    if reference not in correct:
        smallest = min(sizes, key=sizes.get)
        return smallest, f"{reference} was not exported: the smallest file, {smallest}, by default.", {}
    base = correct[reference]
    evidence = {}
    for name, answers in correct.items():
        if name == reference:
            continue
        evidence[name] = VariantEvidence(name, len(base), worse=sum(b and not a for a, b in zip(answers, base)),
                                         better=sum(a and not b for a, b in zip(answers, base)))
    refused = []
    for name in sorted((v for v in DEFAULT_CANDIDATES if v in evidence), key=lambda v: sizes.get(v, 0)):
        e = evidence[name]
        line = (f"{name} ({sizes[name]:,} B): {e.worse} photos wrong that {reference} got right, {e.better} the "
                f"other way, on {e.photos} photos; the drop is at most {e.drop_upper * 100:.1f} points (95 %)")
        if e.drop_upper * 100 <= max_drop_points + 1e-9:
            return name, (f"{line}, within the allowed {max_drop_points:g} (TRAINING_INT8_MAX_DROP): the smallest file "
                          "shown to answer like float32." + ("" if not refused else " Not " + "; not ".join(refused) + ".")), evidence
        refused.append(f"{line}, not shown within {max_drop_points:g}")
    return reference, ("No smaller file is shown to answer like float32 on these photos: "
                       + ("; ".join(refused) if refused else "none was exported") + f". {reference} by default."), evidence


def variant_estimates(*, estimate: dict, evidence: dict[str, list[bool]], test_accuracy: dict[str, float],
                      test_photos: int) -> dict[str, dict]:
    """Each variant's accuracy as the run reports it, with its 95 % interval and the photos it rests on.

    After a test split: the file's own test accuracy and its Wilson interval. After cross-validation (the
    file trained on every photo, so no photo is unseen): the cross-validated estimate, less the variant's
    measured drop against float32 on the compared photos (0 for float32), the interval shifted alike."""
    out = {}
    for name, accuracy in test_accuracy.items():
        if estimate.get("method") == "cross_validation" and "float32" in evidence and name in evidence:
            n = max(1, len(evidence[name]))
            drop = (sum(evidence["float32"]) - sum(evidence[name])) / n
            out[name] = {"accuracy": max(0.0, estimate["accuracy"] - drop),
                         "interval": [max(0.0, estimate["low"] - drop), min(1.0, max(0.0, estimate["high"] - drop))],
                         "photos": estimate["photos"], "method": "cross_validation", "folds": estimate.get("folds", 0)}
        else:
            low, high = wilson(round(accuracy * test_photos), test_photos)
            out[name] = {"accuracy": accuracy, "interval": [low, high], "photos": test_photos, "method": "test_split"}
    return out
