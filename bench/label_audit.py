"""Benchmark of the nightly label audit on real photos (../shared/data, never needed by tests).

    .venv/bin/python bench/label_audit.py              # flowers at 5 % and 10 % flipped, then 100k synthetic
    .venv/bin/python bench/label_audit.py --skip-100k

What it does, on the flowers (5 classes, 3,468 photos, 128 px) with the shared MobileNetV2 alpha 0.35 weights:
1. Pooled backbone features of every photo through training.ml.embed (the night's own feature cache code;
   cached in /tmp between runs, outside the repository).
2. Flips 5 % and then 10 % of the labels to another class (fixed seeds), and runs
   training.ml.label_audit.audit, the function `manage.py label_audit` runs, on the features and the noisy
   labels. Prints precision among the first k photos it sends back (k = the number flipped) and recall
   among all it sends back, against the issue's targets (5 %: precision >= 0.6, recall >= 0.8; 10 %:
   precision >= 0.75), and beside a baseline measured in the same run: cleanlab's default
   find_label_issues on the probabilities of a plain k-fold logistic regression (sklearn defaults, raw
   features), the "quick logistic regression on frozen features" of the issue.
3. Wall time and peak memory (ru_maxrss of a fresh child process that only loads the features and audits)
   at 3,468 photos and on a synthetic 100,000-photo feature store (1,280-dimensional clustered features,
   10 labels, 5 % flipped).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")
WEIGHTS = DATA / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
CACHE = Path("/tmp/crowdlens-bench-label-audit-features.npz")


def flower_features() -> tuple[np.ndarray, np.ndarray, list[str]]:
    if CACHE.exists():
        saved = np.load(CACHE)
        return saved["features"], saved["labels"], list(saved["classes"])
    from training import ml
    from training.ml.features import decode, features_cache_id
    from training.ml.model import POOLED

    classes = sorted(p.name for p in (DATA / "flowers").iterdir() if p.is_dir())
    paths, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((DATA / "flowers" / name).glob("*.jpg")):
            paths.append(path)
            labels.append(index)
    backbone = ml.BackboneConfig(alpha=0.35, input_size=128, base_weights=str(WEIGHTS))
    store = ml.MemoryFeatureStore()
    keys = [str(p) for p in paths]
    started = time.perf_counter()
    ml.embed(paths=paths, backbone=backbone, feature_store=store, keys=keys)
    cache_id = features_cache_id(backbone, POOLED, augmented=0, hparams=None)
    blobs = store.get_many(keys, cache_id)
    features = np.stack([decode(blobs[k]).reshape(-1) for k in keys]).astype(np.float32)
    print(f"features: {features.shape} in {time.perf_counter() - started:.0f} s (cached in {CACHE})")
    np.savez(CACHE, features=features, labels=np.array(labels), classes=np.array(classes))
    return features, np.array(labels), classes


def flip(labels: np.ndarray, rate: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), size=int(round(rate * len(labels))), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return noisy, flipped


def baseline_ranking(features: np.ndarray, noisy: np.ndarray, n_classes: int) -> list[int]:
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros((len(noisy), n_classes))
    for train, test in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(features, noisy):
        probs[test] = LogisticRegression(max_iter=300).fit(features[train], noisy[train]).predict_proba(features[test])
    return [int(i) for i in find_label_issues(labels=noisy, pred_probs=probs, return_indices_ranked_by="self_confidence")]


def scores(ranked: list[int], flipped: np.ndarray) -> tuple[float, float, int]:
    k = len(flipped)
    truth = set(int(i) for i in flipped)
    precision = len(truth & set(ranked[:k])) / k
    recall = len(truth & set(ranked)) / k
    return precision, recall, len(ranked)


def child(kind: str) -> None:
    """Run in a fresh process: load or make the features, audit, print time and peak memory."""
    from training.ml.label_audit import audit

    if kind == "flowers":
        features, labels, classes = flower_features()
        noisy, _ = flip(labels, 0.05, len(classes), seed=5)
    else:
        rng = np.random.default_rng(1)
        n, d, k = 100_000, 1280, 10
        centres = rng.normal(size=(k, d)).astype(np.float32)
        labels = rng.integers(0, k, size=n)
        features = np.empty((n, d), dtype=np.float32)
        for start in range(0, n, 10_000):  # made in blocks: no float64 n x d temporary
            block = labels[start:start + 10_000]
            features[start:start + 10_000] = centres[block] + rng.standard_normal((len(block), d), dtype=np.float32) * 3
        noisy, _ = flip(labels, 0.05, k, seed=5)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    held = features.nbytes / 2**20
    started = time.perf_counter()
    findings = audit(features, noisy)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{kind}: n={len(noisy)} d={features.shape[1]} audit {seconds:.1f} s; features held {held:.0f} MiB; "
          f"peak RSS {peak:.0f} MiB (before the audit {before:.0f} MiB, so the audit added {peak - before:.0f} MiB); "
          f"{len(findings.label_issues)} issues")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-100k", action="store_true")
    parser.add_argument("--child", choices=["flowers", "100k"])
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from training.ml.label_audit import audit

    features, labels, classes = flower_features()
    print(f"flowers: {len(labels)} photos, {len(classes)} classes, features {features.shape[1]}-d")
    targets = {0.05: (0.6, 0.8), 0.10: (0.75, None)}
    for rate, (p_target, r_target) in targets.items():
        noisy, flipped = flip(labels, rate, len(classes), seed=int(rate * 100))
        started = time.perf_counter()
        findings = audit(features.copy(), noisy)
        ours = [row for row, *_ in findings.label_issues]
        ours_seconds = time.perf_counter() - started
        base = baseline_ranking(features, noisy, len(classes))
        p, r, sent = scores(ours, flipped)
        bp, br, bsent = scores(base, flipped)
        print(f"{rate:.0%} flipped (k={len(flipped)}): audit precision@k {p:.3f} recall {r:.3f} "
              f"({sent} sent back, {ours_seconds:.1f} s) | baseline precision@k {bp:.3f} recall {br:.3f} "
              f"({bsent} sent back) | ratio precision {p / bp if bp else float('inf'):.2f}x")
        print(f"    target precision >= {p_target}: {'met' if p >= p_target else 'NOT met'}"
              + (f"; recall >= {r_target}: {'met' if r >= r_target else 'NOT met'}" if r_target else ""))
    kinds = ["flowers"] + ([] if args.skip_100k else ["100k"])
    for kind in kinds:
        out = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip()[-2000:])


if __name__ == "__main__":
    main()
