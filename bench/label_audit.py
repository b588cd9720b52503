"""Benchmark of the nightly label audit after a real night, on real photos (../shared/data, never needed by tests).

    .venv/bin/python bench/label_audit.py              # two nights (5 % and 10 % flipped) and their audits, then 100k
    .venv/bin/python bench/label_audit.py --skip-100k
    .venv/bin/python bench/label_audit.py --also-unflipped   # and a third night with no label flipped (5. below)

On the flowers (5 classes, 3,468 photos, 128 px) with the shared MobileNetV2 alpha 0.35 weights, for 5 % and then
10 % of the labels flipped to another class (fixed seeds), as if imported and approved with those labels:

1. A real night: ``training.ml.train_and_export`` (what ``manage.py train`` calls) on every photo, split by the
   Django side's rule (training/services/datasets.py: a hash of the photo's bytes, 15 % test, 15 % validation,
   70 % training; the noisy labels everywhere), default ``HParams`` at 128 px (fine-tune strategy), float32
   exported only (the other files do not change the network), ``model_features=True`` as the night asks; then
   ``training.ml.embed`` (the night's embeddings). Cut features are cached on disk in /tmp between runs
   (outside the repository; they do not depend on the labels).
2. The audit as ``manage.py label_audit`` runs it after that night: the feature sets the selector names (the
   frozen backbone's embeddings and the night's fine-tuned network's pooled features, read back from the store
   through ``read_reduced``), ``training.ml.label_audit.audit``. Precision among the first k photos it sends back
   (k = the number flipped) and recall among all it sends back (no nightly cap here), against the issue's targets
   (5 %: precision >= 0.6, recall >= 0.8; 10 %: precision >= 0.75); which flipped photos it caught per split
   (the night trained on the training split's noisy labels: a network that memorised them would miss those).
3. In the same run: the quick baseline (cleanlab's default ``find_label_issues`` on a plain 5-fold logistic
   regression over the raw frozen features, sklearn defaults: the issue's "quick logistic regression"), the audit
   on the frozen features alone (what it used before), and on the night's network's features alone.
4. Wall time and peak memory (VmHWM of a fresh child process that only reads the features from the store
   and audits) at 3,468 photos and on a synthetic 100,000-photo feature store (two 1,280-d feature sets of
   10 clustered labels, 5 % flipped; the store makes each row when asked, so the child holds only what the
   audit holds).
5. With ``--also-unflipped``, context for the precision figure (the issue's measure stays the figure above): the
   flowers have label errors of their own, which that measure counts as the audit's mistakes. A third night
   with no label flipped (the same recipe) and its audit; of the photos among each run's first k that were not
   flipped, how many the unflipped run also ranks among its first 3 % (its most suspicious with no flip at
   all: the data's own errors and its hardest photos), how many that would be by chance, and the precision@k
   if those were counted as found (an upper bound: some of them are hard photos correctly labelled).
"""

from __future__ import annotations

import argparse
import hashlib
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
STORE = Path("/tmp/crowdlens-bench-label-audit-store")  # the nights' FeatureStore (DiskFeatureStore)
RATES = {0.05: (5, 0.6, 0.8), 0.10: (10, 0.75, None)}  # rate: (flip seed, precision target, recall target)
UNFLIPPED_TOP = 0.03  # --also-unflipped: the share of photos, first in the unflipped run's ranking, called suspect


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


def flower_photos() -> tuple[list[Path], list[str], np.ndarray, list[str]]:
    """(paths, sha256 keys, labels, classes) in flower_features' order."""
    classes = sorted(p.name for p in (DATA / "flowers").iterdir() if p.is_dir())
    paths = [p for name in classes for p in sorted((DATA / "flowers" / name).glob("*.jpg"))]
    labels = np.array([i for i, name in enumerate(classes) for _ in sorted((DATA / "flowers" / name).glob("*.jpg"))])
    keys = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    return paths, keys, labels, classes


def backbone():
    from training import ml

    return ml.BackboneConfig(alpha=0.35, input_size=128, base_weights=str(WEIGHTS))


def night(rate: float, noisy: np.ndarray, paths, keys, classes, out: Path):
    """A night on every photo with the noisy labels, as the Django side runs it; (result, splits, seconds)."""
    from bench.disk_store import DiskFeatureStore
    from bench.learning_curve import split_of
    from training import ml

    splits = np.array([split_of(k) for k in keys])
    examples = {s: [ml.Example(key=keys[i], path=paths[i], label_index=int(noisy[i])) for i in np.flatnonzero(splits == s)]
                for s in ("train", "val", "test")}
    store = DiskFeatureStore(STORE)
    started = time.perf_counter()
    lines: list[str] = []
    result = ml.train_and_export(train=examples["train"], val=examples["val"], test=examples["test"], labels=classes,
                                 hparams=ml.HParams(backbone=backbone(), variants=("float32",)), feature_store=store,
                                 out_dir=out, log=lines.append, model_features=True)
    ml.embed(paths=paths, keys=keys, backbone=backbone(), feature_store=store)
    seconds = time.perf_counter() - started
    print(f"  night: {result.strategy}, {len(examples['train'])} train / {len(examples['val'])} validation / "
          f"{len(examples['test'])} test photos, float32 top-1 {result.variants['float32'].accuracy:.3f} on the noisy "
          f"test labels; {seconds:.0f} s, of which model features {result.phase_seconds.get('model_features', 0):.1f} s "
          f"({next((m.split(': ', 1)[1] for m in lines if m.startswith('model features')), '?')}: a rerun finds "
          "the same network's features stored)", flush=True)
    return result, splits


def embedding_id() -> str:
    from training.ml.features import features_cache_id
    from training.ml.model import POOLED

    return features_cache_id(backbone(), POOLED, augmented=0, hparams=None)


def caught(ranked: list[int], flipped: np.ndarray, splits: np.ndarray) -> str:
    sent = set(ranked)
    return ", ".join(f"{s} {sum(int(i) in sent for i in flipped[splits[flipped] == s])}/"
                     f"{int((splits[flipped] == s).sum())}" for s in ("train", "val", "test"))


def peak_mib() -> float:
    """This process's peak resident memory. VmHWM belongs to the process's own memory map, which exec replaces;
    ru_maxrss would carry the parent's peak over (a child of the bench, which has trained two nights, starts
    at ~1.8 GiB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str) -> None:
    """Run in a fresh process: read the feature sets from the store, audit, print time and peak memory."""
    from training.ml.label_audit import audit, read_reduced

    if kind == "flowers":
        from bench.disk_store import DiskFeatureStore  # bench.train would import TensorFlow into the child

        saved = np.load(STORE / "last-night.npz")
        keys, noisy, ids = list(saved["keys"]), saved["noisy"], [str(i) for i in saved["cache_ids"]]
        store = DiskFeatureStore(STORE)
        d = 1280
    else:
        n, d, k = 100_000, 1280, 10
        rng = np.random.default_rng(1)
        labels = rng.integers(0, k, size=n)
        noisy, _ = flip(labels, 0.05, k, seed=5)
        keys, ids = [f"photo-{i}" for i in range(n)], ["frozen", "fine-tuned"]
        store = SyntheticStore(labels, d)
    before = peak_mib()
    started = time.perf_counter()
    features = [read_reduced(store, keys, cache_id) for cache_id in ids]
    read = time.perf_counter() - started
    findings = audit(features, noisy)
    seconds = time.perf_counter() - started
    peak = peak_mib()
    print(f"{kind}: n={len(noisy)}, {len(ids)} feature sets of d={d} ({len(noisy) * d * 4 / 2**20:.0f} MiB each as "
          f"float32): read and reduced in {read:.1f} s, audit {seconds:.1f} s in all; peak RSS {peak:.0f} MiB (before "
          f"{before:.0f} MiB, so the audit added {peak - before:.0f} MiB); {len(findings.label_issues)} issues")


class SyntheticStore:
    """A FeatureStore of clustered float16 rows made when asked (deterministic per key), holding none of them:
    two cache ids, the second's rows nearer their label's centre (a network that learned the labels)."""

    def __init__(self, labels: np.ndarray, d: int) -> None:
        self.labels, self.d = labels, d
        self.centres = np.random.default_rng(2).normal(size=(labels.max() + 1, d)).astype(np.float32)

    def get_many(self, keys, cache_id):
        from training.ml.features import encode

        out = {}
        for key in keys:
            i = int(key.rsplit("-", 1)[1])
            rng = np.random.default_rng([i, int(cache_id == "frozen")])
            scale = 3.0 if cache_id == "frozen" else 2.0
            out[key] = encode(self.centres[self.labels[i]] + rng.standard_normal(self.d, dtype=np.float32) * scale)
        return out

    def present(self, keys, cache_id):
        return set(keys)

    def put_many(self, items, cache_id):
        raise NotImplementedError


def unflipped_context(unflipped: list[int], audited: dict[float, tuple[list[int], np.ndarray]], n: int) -> None:
    """For each flipped run: its false positives among the first k that the unflipped run ranks among its first
    UNFLIPPED_TOP of the photos, and the precision@k if those were counted as found (context, not the measure)."""
    top = int(round(UNFLIPPED_TOP * n))
    suspects = set(unflipped[:top])
    for rate, (ranked, flipped) in audited.items():
        k, truth = len(flipped), set(int(i) for i in flipped)
        precision = scores(ranked, flipped)[0]
        false = [int(i) for i in ranked[:k] if int(i) not in truth]
        also = sum(i in suspects for i in false)
        print(f"  {rate:.0%} run: of its {len(false)} not flipped among the first {k}, {also} are among the unflipped "
              f"run's first {top} ({UNFLIPPED_TOP:.0%}; by chance {len(false) * top / n:.1f}); counted as found, "
              f"precision@k would be {precision + also / k:.3f} (the issue's measure: {precision:.3f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-100k", action="store_true")
    parser.add_argument("--also-unflipped", action="store_true",
                        help="a third night with no label flipped: how many of each run's false positives it ranks "
                             "among its own most suspicious (the source data's own label errors; context only)")
    parser.add_argument("--child", choices=["flowers", "100k"])
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    import tempfile

    from bench.disk_store import DiskFeatureStore
    from training.ml.label_audit import audit, read_reduced

    load = os.getloadavg()
    print(f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min), {os.cpu_count()} CPUs")
    frozen, labels, classes = flower_features()
    paths, keys, labels_again, _ = flower_photos()
    assert (labels == labels_again).all()
    print(f"flowers: {len(labels)} photos, {len(classes)} classes, features {frozen.shape[1]}-d")
    store = DiskFeatureStore(STORE)
    audited: dict[float, tuple[list[int], np.ndarray]] = {}  # rate: (the audit's ranking, flipped rows)
    for rate, (seed, p_target, r_target) in (RATES | ({0.0: (0, None, None)} if args.also_unflipped else {})).items():
        noisy, flipped = flip(labels, rate, len(classes), seed=seed)
        print(f"\n{rate:.0%} flipped (k={len(flipped)}):", flush=True)
        with tempfile.TemporaryDirectory() as out:
            result, splits = night(rate, noisy, paths, keys, classes, Path(out))
        ids = [embedding_id(), result.model_features]
        if not rate:
            ranked = [r for r, *_ in audit([read_reduced(store, keys, cache_id) for cache_id in ids], noisy).label_issues]
            print(f"  audit (frozen + night's network) sends back {len(ranked)} photos with no label flipped", flush=True)
            unflipped_context(ranked, audited, len(labels))
            continue
        np.savez(STORE / "last-night.npz", keys=np.array(keys), noisy=noisy, cache_ids=np.array(ids))
        rows = {}
        started = time.perf_counter()
        findings = audit([read_reduced(store, keys, cache_id) for cache_id in ids], noisy)
        rows["audit (frozen + night's network)"] = ([r for r, *_ in findings.label_issues], time.perf_counter() - started)
        for name, cache_ids in (("frozen features only (before)", ids[:1]), ("night's network only", ids[1:])):
            started = time.perf_counter()
            ranked = [r for r, *_ in audit([read_reduced(store, keys, c) for c in cache_ids], noisy).label_issues]
            rows[name] = (ranked, time.perf_counter() - started)
        started = time.perf_counter()
        rows["quick baseline"] = (baseline_ranking(frozen, noisy, len(classes)), time.perf_counter() - started)
        bp = scores(rows["quick baseline"][0], flipped)[0]
        for name, (ranked, seconds) in rows.items():
            p, r, sent = scores(ranked, flipped)
            print(f"  {name:32s} precision@k {p:.3f} recall {r:.3f} ({sent} sent back, {seconds:.1f} s; caught "
                  f"{caught(ranked, flipped, splits)}) | ratio to the quick baseline {p / bp if bp else float('inf'):.2f}x")
        audited[rate] = (rows["audit (frozen + night's network)"][0], flipped)
        p, r, _ = scores(rows["audit (frozen + night's network)"][0], flipped)
        print(f"  target precision >= {p_target}: {'met' if p >= p_target else 'NOT met'}"
              + (f"; recall >= {r_target}: {'met' if r >= r_target else 'NOT met'}" if r_target else ""), flush=True)
    print()
    for kind in ["flowers"] + ([] if args.skip_100k else ["100k"]):
        out = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip()[-2000:], flush=True)


if __name__ == "__main__":
    main()
