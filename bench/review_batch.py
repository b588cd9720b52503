"""Benchmark of "approve the N photos where the model agrees at >= p" on real photos (../shared/data).

    .venv/bin/python bench/review_batch.py

On the flowers (5 classes, 3,468 photos, 128 px; pooled MobileNetV2 alpha 0.35 features from
bench/label_audit.py's cache, computed through training.ml.embed when absent): 80 % of the photos (by a
stable hash) are the approved set a night trains on, 20 % are pending, and 5 % of the pending photos carry a
flipped label. The night's head-only model (a softmax layer on the frozen pooled features, the
``head_only`` strategy) is fitted on the approved set; for each p it prints the share of pending photos a
confirmed batch would clear and how many flipped labels would slip in, beside the baseline of approving
every pending photo (what keyboard approval let through before).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.label_audit import flip, flower_features  # noqa: E402


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    from training.ml.label_audit import reduce

    features, labels, classes = flower_features()
    order = np.array([int(hashlib.sha256(str(i).encode()).hexdigest()[:8], 16) for i in range(len(labels))])
    pending = order % 5 == 0
    x = reduce(features)
    model = LogisticRegression(C=1.0, max_iter=500).fit(x[~pending], labels[~pending])
    sent = labels[pending].copy()
    noisy, flipped = flip(sent, 0.05, len(classes), seed=5)
    is_flipped = np.zeros(len(sent), dtype=bool)
    is_flipped[flipped] = True
    probs = model.predict_proba(x[pending])
    guess, confidence = probs.argmax(axis=1), probs.max(axis=1)
    n = len(sent)
    print(f"flowers: {int((~pending).sum())} approved (the night's training set), {n} pending, "
          f"{len(flipped)} of them flipped (5 %); head accuracy on pending {float((guess == sent).mean()):.3f}")
    print(f"baseline (approve every pending photo): clears 100.0 %, {len(flipped)} of {len(flipped)} flipped slip in")
    for p in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
        cleared = (guess == noisy) & (confidence >= p)
        slipped = int((cleared & is_flipped).sum())
        wrong_rate = slipped / cleared.sum() if cleared.sum() else 0.0
        print(f"p >= {p:.2f}: clears {cleared.mean():6.1%} ({int(cleared.sum())} photos), {slipped} of "
              f"{len(flipped)} flipped slip in (error among cleared {wrong_rate:.1%}; baseline lets "
              f"{len(flipped)} in: {slipped / len(flipped):.2f}x)")


if __name__ == "__main__":
    main()
