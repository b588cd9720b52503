"""Backbone features, cached per (photo sha256, backbone configuration) through a FeatureStore.

What is cached is the output of the frozen part of the network: the cut below the blocks that
fine-tuning trains (or the pooled output for head-only training and for `embed`), for the clean
view of validation photos and, for training photos, a few augmented views (data.views_for). A night's feature cost therefore grows
with the photos that are new since the last run, not with the collection.
"""

from __future__ import annotations

import hashlib
import io
import weakref
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import data
from .feature_array import FeatureArray
from .model import POOLED, bottom_model, build_backbone, tf_setup
from .types import BackboneConfig, FeatureStore, HParams, Stopped

PHOTOS_PER_BATCH = 32
# In the cache ids of a trained network's features (model_features): what the night may delete once newer.
MODEL_FEATURES = "trained"
STORE_CHUNK = 256  # photos read from the FeatureStore at a time: memory stays bounded whatever the night's size


def encode(array: np.ndarray) -> bytes:
    """float16 .npy bytes: half the space, far below the noise of training."""
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float16), allow_pickle=False)
    return buffer.getvalue()


def decode(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False).astype(np.float32)


def features_cache_id(backbone: BackboneConfig, cut: str, *, augmented: int, hparams: HParams | None) -> str:
    views = f"views{augmented}" + (f":aug={data.augment_signature(hparams)}" if augmented and hparams else "")
    return backbone.cache_id(cut=f"{cut}:{views}")


_runners: "weakref.WeakKeyDictionary[object, object]" = weakref.WeakKeyDictionary()


def runner(bottom, size: int):
    """The bottom model as one graph for any batch size, traced once per model.

    A graph per batch shape (the last, partial chunk; one view for validation photos, 1 + views for
    training photos) cost a trace each, seconds that every night paid whatever its number of new photos.
    """
    run = _runners.get(bottom)
    if run is None:
        tf = tf_setup()
        model = weakref.ref(bottom)  # a strong reference in the value would keep the key alive forever
        run = tf.function(lambda x: model()(x, training=False),
                          input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        _runners[bottom] = run
    return run


@dataclass
class FeatureBatch:
    features: FeatureArray  # N x max(1, augmented) x feature shape, on disk (float16), read back by batch
    computed: int
    reused: int


def cached_features(
    *,
    keys: list[str],
    paths: list[Path],
    base,
    backbone: BackboneConfig,
    cut: str,
    augmented: int,
    hparams: HParams | None,
    feature_store: FeatureStore,
    progress: Callable[[float], None] = lambda fraction: None,
    should_stop: Callable[[], bool] = lambda: False,
    bottom=None,
    scratch: Path | None = None,
    cache_id: str | None = None,
) -> FeatureBatch:
    """Features of every photo, from the store where present, computed (and stored) otherwise.

    They are written to a FeatureArray (a scratch file under ``scratch``), never all held in memory:
    the store is read STORE_CHUNK photos at a time and new photos are computed PHOTOS_PER_BATCH at a time.
    ``cache_id``: the store's name for them when ``bottom`` is not the frozen backbone's (model_features).
    """
    tf = tf_setup()
    cache_id = cache_id or features_cache_id(backbone, cut, augmented=augmented, hparams=hparams)
    unique = list(dict.fromkeys(keys))
    positions: dict[str, list[int]] = defaultdict(list)
    for position, key in enumerate(keys):
        positions[key].append(position)
    features = FeatureArray(len(keys), directory=scratch)
    missing = []
    for start in range(0, len(unique), STORE_CHUNK):
        chunk = unique[start:start + STORE_CHUNK]
        stored = feature_store.get_many(chunk, cache_id)
        for key in chunk:
            blob = stored.get(key)
            if blob is None:
                missing.append(key)
            else:
                features.put(positions[key], decode(blob))
    path_of = dict(zip(keys, paths))
    if missing:
        bottom = bottom or bottom_model(base, cut)
        size = backbone.input_size
        run = runner(bottom, size)
        hp = hparams or HParams(backbone=backbone)

        def load(key: str) -> np.ndarray:
            return data.views_for(path_of[key], size, hp, key=key, augmented=augmented)

        chunks = [missing[i:i + PHOTOS_PER_BATCH] for i in range(0, len(missing), PHOTOS_PER_BATCH)]
        done = 0
        with ThreadPoolExecutor(max_workers=2) as pool:
            # Decoding and augmenting the next chunk overlaps with the network on this one.
            pending = [pool.submit(load, k) for k in chunks[0]]
            for index, chunk in enumerate(chunks):
                if should_stop():
                    for future in pending:
                        future.cancel()
                    raise Stopped("stopped while computing features")
                views = np.stack([future.result() for future in pending])  # B x V x H x W x 3
                pending = [pool.submit(load, k) for k in chunks[index + 1]] if index + 1 < len(chunks) else []
                flat = data.normalize(views.reshape((-1,) + views.shape[2:]))
                out = run(tf.constant(flat)).numpy()
                out = out.reshape((len(chunk), views.shape[1]) + out.shape[1:])
                blobs = {k: encode(out[i]) for i, k in enumerate(chunk)}
                feature_store.put_many(blobs, cache_id)
                # Use the stored precision so a run and its rerun from cache see the same numbers.
                for key, blob in blobs.items():
                    features.put(positions[key], decode(blob))
                done += len(chunk)
                progress(min(1.0, done / len(missing)))
    progress(1.0)
    return FeatureBatch(features=features, computed=len(missing), reused=len(unique) - len(missing))


_backbones: dict[tuple, object] = {}


def _store_missing_pooled(*, keys: list[str], paths: list[Path], backbone: BackboneConfig, feature_store: FeatureStore,
                          cache_id: str, base_and_bottom: Callable[[], tuple], progress: Callable[[float], None],
                          should_stop: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """Store the pooled clean-view features of every photo the store does not hold under ``cache_id`` yet:
    (computed, already stored). The store is asked which keys it holds (keys only) and nothing is read back,
    so memory stays bounded however many photos there are."""
    if len(paths) != len(keys):
        raise ValueError("paths and keys must have the same length")
    unique = list(dict.fromkeys(keys))
    stored = feature_store.present(unique, cache_id)
    path_of = dict(zip(keys, paths))
    missing = [k for k in unique if k not in stored]
    if not missing:
        progress(1.0)
        return 0, len(unique)
    base, bottom = base_and_bottom()
    result = cached_features(keys=missing, paths=[path_of[k] for k in missing], base=base, backbone=backbone,
                             cut=POOLED, augmented=0, hparams=None, feature_store=feature_store, bottom=bottom,
                             progress=progress, should_stop=should_stop, cache_id=cache_id)
    result.features.close()
    return result.computed, len(unique) - result.computed  # another process may have stored some meanwhile


def embed(*, paths: list[Path], backbone: BackboneConfig, feature_store: FeatureStore, keys: list[str],
          progress: Callable[[float], None] = lambda fraction: None) -> tuple[int, int]:
    """Store the pooled backbone embedding (float32 vector) of the clean view of each photo not stored yet.

    (computed, already stored). Nothing is read back or returned: the night only makes sure every
    photo has one (challenges read them from the store), so memory stays bounded however many photos
    there are: the store is asked which keys it holds (keys only), and only the missing photos are
    computed, PHOTOS_PER_BATCH at a time, into a scratch file (cached_features).
    """

    def base_and_bottom():
        identity = (backbone, backbone.weights_identity())
        if identity not in _backbones:
            base = build_backbone(backbone)
            _backbones.clear()
            _backbones[identity] = (base, bottom_model(base, POOLED))
        return _backbones[identity]

    return _store_missing_pooled(keys=keys, paths=paths, backbone=backbone, feature_store=feature_store,
                                 cache_id=features_cache_id(backbone, POOLED, augmented=0, hparams=None),
                                 base_and_bottom=base_and_bottom, progress=progress)


def model_features_cache_id(backbone: BackboneConfig, base, *, fine_tuned: bool) -> str:
    """The store's name for the pooled features of the night's network. A head-only night did not change the
    backbone: its features are the embedding (the same cache rows). A fine-tuned one is named by a digest of
    its weights, so two nights share rows only when their networks are identical."""
    if not fine_tuned:
        return features_cache_id(backbone, POOLED, augmented=0, hparams=None)
    digest = hashlib.sha256()
    for weights in base.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return backbone.cache_id(cut=f"{POOLED}:{MODEL_FEATURES}={digest.hexdigest()[:16]}:views0")


def model_features(*, base, fine_tuned: bool, keys: list[str], paths: list[Path], backbone: BackboneConfig,
                   feature_store: FeatureStore, progress: Callable[[float], None] = lambda fraction: None,
                   should_stop: Callable[[], bool] = lambda: False) -> tuple[str, int]:
    """Store the pooled output of the night's trained backbone (what its classifier reads) for the clean view of
    every photo: the label audit's features (training/ml/label_audit.py). (cache id, photos computed)."""
    cache_id = model_features_cache_id(backbone, base, fine_tuned=fine_tuned)
    computed, _ = _store_missing_pooled(keys=keys, paths=paths, backbone=backbone, feature_store=feature_store,
                                        cache_id=cache_id, base_and_bottom=lambda: (base, bottom_model(base, POOLED)),
                                        progress=progress, should_stop=should_stop)
    return cache_id, computed
