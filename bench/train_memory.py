"""Peak memory of a night's training as the collection grows: 5k photos against 50k.

    .venv/bin/python bench/train_memory.py                 # 5,000 and 50,000 photos (a few minutes on 2 cores)
    .venv/bin/python bench/train_memory.py --sizes 2000,20000

Each size runs in its own process (so each has its own peak RSS, `ru_maxrss`) through the real
entry point, `training.ml.train_and_export`, on a synthetic FeatureStore that derives every photo's
cached features from its key: every photo is "already cached", nothing of the store is held in
memory, and what is measured is what training itself holds. Small random backbone (64 px,
`base_weights=none`), fine-tune strategy, one epoch of head and one of fine-tuning, float32 export
evaluated on a few real images. The baseline is the smaller size, measured in the same run: the
target is at most 1.3x between 5k and 50k photos. For scale it also prints what holding the features
in RAM (the old way: a float32 array and a TensorFlow constant of it) would have taken.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LABELS = ["a", "b", "c", "d", "e"]


class SyntheticStore:
    """A FeatureStore that holds nothing: a photo's features are a function of its key."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def get_many(self, keys, cache_id):
        import numpy as np

        from training.ml.features import encode

        out = {}
        for key in keys:
            seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
            out[key] = encode(np.random.default_rng(seed).normal(size=self.shape).astype(np.float32))
        return out

    def put_many(self, items, cache_id):
        raise AssertionError("every feature is cached: nothing should be computed")


def child(n: int) -> dict:
    import numpy as np
    from PIL import Image

    from training.ml import BackboneConfig, Example, HParams, train_and_export
    from training.ml.model import bottom_model, build_backbone, cut_layer_name
    from training.ml.runtime import load_tensorflow

    load_tensorflow()
    hparams = HParams(backbone=BackboneConfig(alpha=0.35, input_size=64, base_weights="none"), variants=("float32",),
                      fine_tune_min_per_class=1, epochs_head=1, epochs_fine_tune=1, batch_size=64, seed=7)
    base = build_backbone(hparams.backbone)
    cut = cut_layer_name(base, hparams.fine_tune_layers)
    feature_shape = tuple(int(d) for d in bottom_model(base, cut).output_shape[1:])
    views = max(1, hparams.augment_views) if hparams.augment else 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    test = []
    for i in range(20):  # a few real images for the evaluation of the exported file
        path = tmp / f"test-{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        test.append(Example(key=f"test-{i}", path=path, label_index=i % len(LABELS)))
    train = [Example(key=f"photo-{i}", path=tmp / "never-read.jpg", label_index=i % len(LABELS)) for i in range(n)]
    val = [Example(key=f"val-{i}", path=tmp / "never-read.jpg", label_index=i % len(LABELS)) for i in range(n // 20)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The store serves train photos (augmented views) and validation photos (one view): two shapes.
    class Store(SyntheticStore):
        def get_many(self, keys, cache_id):
            self.shape = (views, *feature_shape) if ":views0" not in cache_id else (1, *feature_shape)
            return super().get_many(keys, cache_id)

    start = time.perf_counter()
    result = train_and_export(train=train, val=val, test=test, labels=LABELS, hparams=hparams,
                              feature_store=Store((views, *feature_shape)), out_dir=tmp / "out", log=lambda m: None)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    in_ram = n * views * int(np.prod(feature_shape)) * 4 * 2
    return {"n": n, "peak_mib": peak / 1024, "before_mib": rss_before / 1024, "seconds": seconds,
            "strategy": result.strategy, "reused": result.feature_stats["reused"], "views": views,
            "feature_shape": feature_shape, "old_in_ram_mib": in_ram / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{r['n']:>7} photos ({r['views']} views of {tuple(r['feature_shape'])} each, {r['strategy']}, "
              f"{r['reused']} cached): peak RSS {r['peak_mib']:.0f} MiB (after start-up {r['before_mib']:.0f} MiB), "
              f"{r['seconds']:.0f} s; features held in RAM the old way would be {r['old_in_ram_mib']:.0f} MiB", flush=True)
    base, top = results[0], results[-1]
    ratio = top["peak_mib"] / base["peak_mib"]
    print(f"peak RSS {top['n']} / {base['n']} photos: {ratio:.2f}x (target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")


if __name__ == "__main__":
    main()
