"""The network: MobileNetV2 backbone, where it is cut for cached features, the trainable top, the head.

The backbone is split at a "cut": everything below is frozen and its output is cached per photo
(features.py); everything above (the top `fine_tune_layers` inverted-residual blocks and the last
1x1 convolution) is trained on those cached tensors with BatchNormalization frozen. Head-only
training cuts at the pooled output. The layers are shared between the training sub-models and the
full model, so the full model for export (`full_model`) carries the trained weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .types import BackboneConfig, WeightsUnavailable

POOLED = "pooled"


@dataclass(frozen=True)
class Pooling:
    """What a head on pooled features reads, computed alike for the cached features and inside the exported file.

    For each of ``scales`` (input sizes; empty: the input as it comes) the backbone runs on the input resized to
    it (bilinear, inside the graph, so the phone's preprocessing stays the manifest's: one centred square at the
    input size); the last activation and each of ``layers`` (intermediate layers) are averaged over space, each
    averaged over the scales, and concatenated, the last activation first (so its columns are the first
    ``last_channels`` of every row, what the head-only candidate reads)."""

    layers: tuple[str, ...] = ()
    scales: tuple[int, ...] = ()

    def __str__(self) -> str:  # the cut's name in the cache identity
        return (POOLED + ("+" + ",".join(self.layers) if self.layers else "")
                + ("@" + ",".join(str(s) for s in self.scales) if self.scales else ""))

    @property
    def plain(self) -> bool:
        return not self.layers and not self.scales

    @classmethod
    def of(cls, hparams) -> "Pooling":
        """What the night's head candidates read: ``hparams.head_layers`` beside the last activation, at the input
        size and each of ``hparams.feature_scales`` below it (a larger one would only upsample the phone's photo,
        for more work)."""
        size = hparams.backbone.input_size
        smaller = tuple(sorted({s for s in hparams.feature_scales if s < size}, reverse=True))
        return cls(layers=tuple(hparams.head_layers), scales=(size, *smaller) if smaller else ())


def replay(base, x, outputs: list[str]) -> list:
    """The backbone's layers applied again to ``x`` (any spatial size: the network is convolutional), weights
    shared; the tensors of the layers named ``outputs``. Calling the backbone Model itself on another size is
    refused (its input spec fixes the size)."""
    import tensorflow as tf

    tensors = {base.layers[0].name: x}
    for layer in base.layers[1:]:
        inbound = tf.nest.flatten(layer._inbound_nodes[0].inbound_layers)
        args = [tensors[parent.name] for parent in inbound]
        tensors[layer.name] = layer(args if len(args) > 1 else args[0])
    return [tensors[name] for name in outputs]


def pooled_features(base, pooling: Pooling, x):
    """``pooling``'s feature vector of a batch ``x`` of normalized images at the backbone's input size."""
    keras = _keras()
    size = base.input.shape[1]
    names = [base.layers[-1].name, *pooling.layers]
    per_scale = []
    for scale in pooling.scales or (size,):
        seen = x if scale == size else keras.layers.Resizing(scale, scale, interpolation="bilinear",
                                                             name=f"scale_{scale}")(x)
        maps = [base.get_layer(n).output for n in names] if seen is base.input else replay(base, seen, names)
        per_scale.append([keras.layers.GlobalAveragePooling2D(name=f"pool_{n}_{scale}")(m) for n, m in zip(names, maps)])
    pooled = [per[0] if len(per_scale) == 1 else keras.layers.Average(name=f"scales_{n}")(list(per))
              for n, per in zip(names, zip(*per_scale))]
    return pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="layers")(pooled)
# base_weights="none" is one fixed network (so its features can be cached like any other): seeded init,
# then BatchNormalization statistics estimated on seeded noise images so the signal neither vanishes nor
# explodes through 17 blocks (Keras' default statistics shrink it to ~1e-12 by the last layer).
NONE_WEIGHTS_SEED = 20240607
_configured = False


def tf_setup(threads: int | None = None):
    """Import TensorFlow once with modest thread pools (the machine is shared): `threads` intra-op threads, else
    TensorFlow's own TF_NUM_INTRAOP_THREADS (and TF_NUM_INTEROP_THREADS) when set, else min(4, CPUs)."""
    global _configured
    import tensorflow as tf

    if not _configured:
        threads = threads or _env_threads("TF_NUM_INTRAOP_THREADS") or min(4, os.cpu_count() or 1)
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(_env_threads("TF_NUM_INTEROP_THREADS") or min(2, threads))
        except RuntimeError:  # already initialised by someone else in this process
            pass
        _configured = True
    return tf


def _env_threads(name: str) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else 0


def _keras():
    tf_setup()
    import tf_keras

    return tf_keras


def build_backbone(config: BackboneConfig):
    """MobileNetV2 without its classifier, taking (p - 127.5) / 127.5 inputs.

    Raises WeightsUnavailable naming TRAINING_BASE_WEIGHTS when the weights cannot be had:
    never a silent fall-back to random weights.
    """
    keras = _keras()
    shape = (config.input_size, config.input_size, 3)
    weights = config.base_weights
    if weights == "none":
        keras.utils.set_random_seed(NONE_WEIGHTS_SEED)
        base = keras.applications.MobileNetV2(input_shape=shape, alpha=config.alpha, include_top=False, weights=None)
        _estimate_batchnorm_statistics(base, np.random.default_rng(NONE_WEIGHTS_SEED).uniform(-1, 1, (32,) + shape))
        return base
    if weights == "imagenet":
        try:
            return keras.applications.MobileNetV2(input_shape=shape, alpha=config.alpha, include_top=False, weights="imagenet")
        except Exception as error:  # download failures surface as many types (URLError, OSError, Exception)
            raise WeightsUnavailable(
                f"TRAINING_BASE_WEIGHTS=imagenet: the ImageNet weights for MobileNetV2 alpha {config.alpha:g} could not "
                f"be downloaded or read from the Keras cache ({type(error).__name__}: {error}). Put the file in "
                "~/.keras/models/ (or $KERAS_HOME/models/), set TRAINING_BASE_WEIGHTS to a local .h5 path, or to 'none'."
            ) from error
    path = Path(weights)
    if not path.is_file():
        raise WeightsUnavailable(
            f"TRAINING_BASE_WEIGHTS={weights!r}: no such weights file "
            "(use 'imagenet', 'none' or the path of a MobileNetV2 no-top .h5 file)"
        )
    try:
        return keras.applications.MobileNetV2(input_shape=shape, alpha=config.alpha, include_top=False, weights=str(path))
    except Exception as error:
        raise WeightsUnavailable(
            f"TRAINING_BASE_WEIGHTS={weights!r}: the file could not be loaded into MobileNetV2 alpha {config.alpha:g} "
            f"without top ({type(error).__name__}: {error})"
        ) from error


def _estimate_batchnorm_statistics(base, images) -> None:
    """Set every BatchNormalization's moving statistics to those of `images` (one pass, batch statistics)."""
    keras = _keras()
    layers = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    base(images.astype(np.float32), training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def cut_layer_name(base, fine_tune_layers: int) -> str:
    """Name of the layer whose output feeds the top `fine_tune_layers` blocks (1..16)."""
    if fine_tune_layers <= 0:
        return POOLED
    block = 16 - min(fine_tune_layers, 16)
    if block == 0:
        return "expanded_conv_project_BN"
    names = {layer.name for layer in base.layers}
    return f"block_{block}_add" if f"block_{block}_add" in names else f"block_{block}_project_BN"


def bottom_model(base, cut):
    """Input image to the cut (frozen part). For POOLED, the globally pooled last activation; for a Pooling,
    its feature vector."""
    keras = _keras()
    if isinstance(cut, Pooling) and not cut.plain:
        output = pooled_features(base, cut, base.input)
    elif cut == POOLED or isinstance(cut, Pooling):
        output = keras.layers.GlobalAveragePooling2D(name="embedding_pool")(base.output)
    else:
        output = base.get_layer(cut).output
    model = keras.Model(base.input, output, name="bottom_pooling" if isinstance(cut, Pooling) else f"bottom_{cut}")
    model.trainable = False
    return model


def top_model(base, cut: str):
    """Cut tensor to the backbone's last activation, re-applying the base's own layers (weights shared)."""
    keras = _keras()
    import tensorflow as tf

    names = [layer.name for layer in base.layers]
    start = names.index(cut)
    inp = keras.Input(shape=base.get_layer(cut).output.shape[1:], name=f"{cut}_features")
    tensors = {cut: inp}
    for layer in base.layers[start + 1:]:
        inbound = tf.nest.flatten(layer._inbound_nodes[0].inbound_layers)
        args = [tensors[parent.name] for parent in inbound]
        tensors[layer.name] = layer(args if len(args) > 1 else args[0])
    return keras.Model(inp, tensors[base.layers[-1].name], name=f"top_{cut}")


def set_top_trainable(base, cut: str, trainable: bool) -> None:
    """Unfreeze (or freeze) the layers above the cut; BatchNormalization always stays frozen."""
    keras = _keras()
    base.trainable = True
    names = [layer.name for layer in base.layers]
    start = names.index(cut) if cut != POOLED else len(names)
    for index, layer in enumerate(base.layers):
        above = index > start
        layer.trainable = bool(trainable and above and not isinstance(layer, keras.layers.BatchNormalization))


class Head:
    """Pooling, dropout and the classifier, as shared layers."""

    def __init__(self, num_classes: int, *, dropout: float, weight_decay: float, seed: int,
                 pooling: Pooling | None = None):
        keras = _keras()
        self.pooling = pooling  # None: the last activation's map, pooled here (fine-tuning); else what it reads
        self.pool = keras.layers.GlobalAveragePooling2D(name="head_pool")
        self.dropout = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")
        self.dense = keras.layers.Dense(
            num_classes,
            activation="softmax",
            kernel_regularizer=keras.regularizers.l2(weight_decay) if weight_decay else None,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            name="classifier",
        )

    def on_pooled(self, x):
        return self.dense(self.dropout(x))

    def on_map(self, x):
        return self.on_pooled(self.pool(x))

    def set_weights(self, kernel, bias) -> None:
        """The classifier's weights, on features of kernel.shape[0] columns (builds the Dense layer for them)."""
        keras = _keras()
        self.on_pooled(keras.Input(shape=(kernel.shape[0],)))
        self.dense.set_weights([kernel, bias])


def trainable_model(base, cut: str, head: Head):
    """What trains on cached features: the head alone (POOLED) or top blocks + head."""
    keras = _keras()
    if cut == POOLED:
        inp = keras.Input(shape=(base.output.shape[-1],), name="pooled_features")
        return keras.Model(inp, head.on_pooled(inp), name="head_only")
    top = top_model(base, cut)
    return keras.Model(top.input, head.on_map(top.output), name="top_and_head")


def full_model(base, head: Head, *, raw_pixels: bool = False):
    """Image to class probabilities, for export. raw_pixels: takes 0-255 and normalizes inside."""
    keras = _keras()
    if head.pooling is not None:
        inp = keras.Input(shape=base.input.shape[1:], name="pixels" if raw_pixels else "image")
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inp) if raw_pixels else inp
        return keras.Model(inp, head.on_pooled(pooled_features(base, head.pooling, x)),
                           name="classifier_pixels" if raw_pixels else "classifier_float")
    if not raw_pixels:
        return keras.Model(base.input, head.on_map(base.output), name="classifier_float")
    inp = keras.Input(shape=base.input.shape[1:], name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inp)
    features = keras.Model(base.input, base.output)(x)
    return keras.Model(inp, head.on_map(features), name="classifier_pixels")
