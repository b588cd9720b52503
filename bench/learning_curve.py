"""Learning curve and interval calibration of the nightly training on real photos (issue 17).

    .venv/bin/python bench/learning_curve.py                                  # the configuration in bench/README.md
    .venv/bin/python bench/learning_curve.py --sizes 10,30 --draws 2 --calibration-draws 10 --eval 600
    (--feature-cache DIR keeps the features on disk: a second run skips the feature phase)

For each size (photos drawn a label; "all" = every photo but a stratified 30 % kept back), and each draw
(another random draw of photos, seeded):
1. A night through `train_and_export` with the defaults (224 px as the product's TRAINING_INPUT_SIZE, the
   flowers' 128 px photos upsampled by the preprocessing; the shared alpha 0.35 weights) on the drawn
   photos, split by the hash rule the Django side uses (15 % test, 15 % validation). The variant phones get
   by default is chosen as publishing chooses it (`fit.variant_choice`, TRAINING_INT8_MAX_DROP 1.0), and that
   very file is evaluated in LiteRT on undrawn photos (up to `--eval`, the same ones for the baseline).
2. Baseline in the same run: the issue's frozen-feature recipe, `LogisticRegression(max_iter=1000)` on the
   pooled clean features (one pass at the input size) of the same drawn photos, on the same undrawn photos.
3. The night's wall time (features are computed once for the photos before the first night and shared
   through one FeatureStore, as a real installation's cache would hold them from earlier nights).
4. Interval calibration: whether the accuracy on undrawn photos falls inside the 95 % interval the night
   reported. Draws beyond the nights' (`--calibration-draws`) repeat only what the night does to estimate
   (the cross-validated choice of head on cached features, and its float head on every undrawn photo's
   features): the exported float32 file computes that same function (up to float16 feature rounding), so no
   file is written.
Prints one line per draw and a table per size: mean and spread (min-max) across draws, how often the held-out
accuracy fell inside the reported interval, and the interval's mean width.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.train import SHARED, WEIGHTS, DiskFeatureStore, load  # noqa: E402
from training.ml import BackboneConfig, Example, HParams, MemoryFeatureStore, evaluate_tflite, train_and_export  # noqa: E402
from training.ml import fit  # noqa: E402
from training.ml.model import Pooling  # noqa: E402

SPLIT_SALT = "crowdlens-split"


def split_of(key: str, test: float = 0.15, val: float = 0.15) -> str:
    """The Django side's rule (training/services/datasets.py): sha256("crowdlens-split:" + sha256) in [0, 1)."""
    value = int(hashlib.sha256(f"{SPLIT_SALT}:{key}".encode()).hexdigest()[:15], 16) / 16 ** 15
    return "test" if value < test else "val" if value < test + val else "train"


def draw(examples: list[Example], labels: list[str], size: str, seed: int) -> tuple[list[int], list[int]]:
    """(drawn, undrawn) indices: ``size`` photos a label at random, or "all": 70 % of each label."""
    rng = np.random.default_rng(seed)
    drawn = []
    for index in range(len(labels)):
        mine = [i for i, e in enumerate(examples) if e.label_index == index]
        rng.shuffle(mine)
        drawn += mine[: int(round(0.7 * len(mine)))] if size == "all" else mine[: int(size)]
    chosen = set(drawn)
    return sorted(drawn), [i for i in range(len(examples)) if i not in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--sizes", default="10,30,60,120,250,all")
    parser.add_argument("--draws", default="3", help="nights per size: one number, or one per size (3,3,3,2,2,1)")
    parser.add_argument("--calibration-draws", default="10", help="draws per size for the calibration (the nights' "
                                                                  "draws count; 'all' has its nights only): one number "
                                                                  "or one per size")
    parser.add_argument("--eval", type=int, default=800, help="undrawn photos each night's file is evaluated on")
    parser.add_argument("--input-size", type=int, default=224, help="the product's default (TRAINING_INPUT_SIZE)")
    parser.add_argument("--feature-cache", type=Path, default=None, help="keep features on disk between runs")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    weights = args.data / WEIGHTS
    labels, examples = load(args.data, None)
    backbone = BackboneConfig(alpha=0.35, input_size=args.input_size, base_weights=str(weights))
    hparams = HParams(backbone=backbone, variants=("float32", "float16", "int8"))
    store = DiskFeatureStore(args.feature_cache) if args.feature_cache else MemoryFeatureStore()
    sizes = args.sizes.split(",")
    draws = [int(d) for d in args.draws.split(",")]
    draws = draws * len(sizes) if len(draws) == 1 else draws
    calibration = [int(d) for d in args.calibration_draws.split(",")]
    calibration = calibration * len(sizes) if len(calibration) == 1 else calibration
    print(f"flowers: {len(examples)} photos, {len(labels)} labels; sizes {sizes}, nights {draws}, "
          f"calibration draws {args.calibration_draws}, eval {args.eval} undrawn photos a night", flush=True)

    plan = {}
    for size, nights, checks in zip(sizes, draws, calibration):
        for d in range(max(nights, checks if size != "all" else nights)):
            plan[(size, d)] = draw(examples, labels, size, args.seed * 1000 + d)
    drawn_ever = sorted({i for drawn, _ in plan.values() for i in drawn})
    plain, clean, views, last, seconds = features_once(examples, hparams, store, drawn_ever)
    print(f"features (clean view of every photo; {views.shape[1]} augmented views of the {len(drawn_ever)} photos "
          f"ever drawn; pooled at {Pooling.of(hparams)}; and the baseline's plain pooled clean view): "
          f"{seconds:.0f} s", flush=True)
    y = np.array([e.label_index for e in examples])

    table = []
    for size, nights, checks in zip(sizes, draws, calibration):
        rows = []
        for d in range(max(nights, checks if size != "all" else nights)):
            seed = args.seed * 1000 + d
            drawn, undrawn = plan[(size, d)]
            rng = np.random.default_rng(seed)
            sample = sorted(rng.choice(undrawn, size=min(args.eval, len(undrawn)), replace=False).tolist())
            base = baseline(plain, y, drawn, sample)
            if d < nights:
                row = night(examples, labels, drawn, sample, hparams, store)
            else:
                row = estimate_only(clean, views, y, drawn, undrawn, hparams, last)
            row.update(size=size, draw=d, baseline=base, photos=len(drawn))
            row["inside"] = row["low"] <= row["held_out"] <= row["high"]
            rows.append(row)
            print(f"size {size:>3} draw {d}: {'night' if d < nights else 'estimate-only'}: "
                  f"held-out {row['held_out']:.3f} ({row.get('variant', 'float head')}) baseline {base:.3f}; "
                  f"reported {row['accuracy']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
                  f"({row['method']}, {row['rests_on']} photos) inside={row['inside']}"
                  + (f"; night {row['wall']:.0f} s, {row['strategy']}, default {row['variant']}" if d < nights
                     else f"; {row['strategy']}"),
                  flush=True)
        table.append(summarise(size, rows))
    print()
    print("size | photos | nights | default file top-1 mean (min-max) | baseline mean (min-max) | file - baseline "
          "| night wall s | inside interval | interval width (mean)")
    for line in table:
        print(line)


def features_once(examples, hparams, store, drawn_ever):
    """Features computed once and stored under the identities the nights use, so every night reuses them: the
    night's (Pooling.of(hparams): the scales and layers its head candidates read) of every photo's clean view and
    of hparams.augment_views augmented views of the photos some draw trains on, and the plain pooled clean view
    the baseline reads. Views of photos never drawn are left zero (nothing reads them)."""
    from training.ml.features import cached_features
    from training.ml.model import POOLED, bottom_model, build_backbone

    start = time.perf_counter()
    base = build_backbone(hparams.backbone)
    pooling = Pooling.of(hparams)
    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, cut, augmented, which in (("plain", POOLED, 0, range(len(examples))),
                                            ("clean", pooling, 0, range(len(examples))),
                                            ("views", pooling, hparams.augment_views, drawn_ever)):
            which = list(which)
            got = cached_features(keys=[examples[i].key for i in which], paths=[examples[i].path for i in which],
                                  base=base, backbone=hparams.backbone, cut=cut, hparams=hparams, feature_store=store,
                                  bottom=bottom_model(base, cut), augmented=augmented, scratch=Path(scratch))
            rows = got.features.read(np.arange(len(which))).reshape(len(which), max(1, augmented), -1)
            got.features.close()
            out[name] = np.zeros((len(examples),) + rows.shape[1:], np.float32)
            out[name][which] = rows
    return out["plain"][:, 0], out["clean"][:, 0], out["views"], int(base.output.shape[-1]), \
        time.perf_counter() - start


def baseline(clean, y, drawn, sample) -> float:
    """The issue's five lines: LogisticRegression(max_iter=1000) on the frozen pooled features."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(clean[drawn], y[drawn])
    return float((model.predict(clean[sample]) == y[sample]).mean())


def night(examples, labels, drawn, sample, hparams, store) -> dict:
    picked = [examples[i] for i in drawn]
    splits = {"train": [], "val": [], "test": []}
    for e in picked:
        splits[split_of(e.key)].append(e)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train_and_export(train=splits["train"], val=splits["val"], test=splits["test"], labels=labels,
                                  hparams=hparams, feature_store=store, out_dir=Path(out), log=lambda line: None)
        variant, _, _ = fit.variant_choice(correct=result.evidence,
                                           sizes={k: v.size_bytes for k, v in result.variants.items()},
                                           max_drop_points=1.0)
        wall = time.perf_counter() - start
        file = result.variants[variant]
        held = evaluate_tflite(path=file.path, examples=[examples[i] for i in sample], labels=labels,
                               input_spec=result.input_specs[variant])
    estimate = fit.variant_estimates(estimate=result.estimate, evidence=result.evidence,
                                     test_accuracy={k: v.accuracy for k, v in result.variants.items()},
                                     test_photos=len(splits["test"]))[variant]
    return {"held_out": held.accuracy, "variant": variant, "wall": wall, "strategy": result.strategy,
            "accuracy": estimate["accuracy"], "low": estimate["interval"][0], "high": estimate["interval"][1],
            "method": estimate["method"], "rests_on": estimate["photos"]}


def estimate_only(clean, views, y, drawn, undrawn, hparams, last) -> dict:
    drawn = np.array(drawn)
    n = int(y.max()) + 1
    candidates = {"head_only": slice(0, last), **({"several_layers": slice(None)} if hparams.head_layers else {})}
    choice = fit.choose_head(clean=clean[drawn], views=views[drawn], y=y[drawn], n_classes=n, seed=hparams.seed,
                             folds=hparams.cv_folds, candidates=candidates, repeats=hparams.cv_repeats)
    estimate = fit.Estimate.of_cross_validation(why="", correct=choice.correct, photos=len(drawn), folds=choice.folds,
                                                fold_accuracies=choice.fold_accuracies, repeats=choice.repeats)
    columns = candidates[choice.candidate]
    kernel, bias = fit.fit_head(clean=clean[drawn], views=views[drawn], y=y[drawn], n_classes=n, c=choice.c,
                                seed=hparams.seed, columns=columns)
    held = float(((clean[undrawn][:, columns] @ kernel + bias).argmax(1) == y[undrawn]).mean())
    return {"held_out": held, "accuracy": estimate.accuracy, "low": estimate.low, "high": estimate.high,
            "method": "cross_validation", "rests_on": len(drawn), "strategy": choice.candidate}


def summarise(size: str, rows: list[dict]) -> str:
    nights = [r for r in rows if "wall" in r]
    held = np.array([r["held_out"] for r in nights])
    base = np.array([r["baseline"] for r in nights])
    walls = np.array([r["wall"] for r in nights])
    inside = sum(r["inside"] for r in rows)
    width = np.array([r["high"] - r["low"] for r in rows])
    return (f"{size} | {rows[0]['photos']} | {len(nights)} | {held.mean():.3f} ({held.min():.3f}-{held.max():.3f}) | "
            f"{base.mean():.3f} ({base.min():.3f}-{base.max():.3f}) | {(held - base).mean():+.3f} "
            f"(min {(held - base).min():+.3f}) | {walls.mean():.0f} | {inside}/{len(rows)} | {width.mean():.3f}")


if __name__ == "__main__":
    main()
