"""Optional magnitude pruning with tensorflow-model-optimization, stripped before export.

Pruning runs as a short extra phase on the model that trains on cached features (the head, or
the top blocks and the head); the pruned weights are then copied back into the shared layers,
so the exported full model carries the zeros and no pruning wrappers.
"""

from __future__ import annotations

import numpy as np

from .model import _keras


def prunable(layer) -> bool:
    keras = _keras()
    return isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)) and layer.trainable


def prune_and_strip(model, *, sparsity: float, train_ds, val_ds, epochs: int, steps_per_epoch: int,
                    learning_rate: float, loss, log) -> dict[str, float]:
    """Prune `model`'s trainable conv/dense kernels to `sparsity`, fine-tune, strip, write back.

    Returns the measured sparsity per pruned layer (fraction of zero kernel weights).
    """
    import tensorflow_model_optimization as tfmot

    keras = _keras()
    end_step = max(1, epochs * steps_per_epoch)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0, end_step=max(1, int(end_step * 0.7)), frequency=max(1, steps_per_epoch // 4)
    )

    def wrap(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        return tfmot.sparsity.keras.prune_low_magnitude(fresh, pruning_schedule=schedule) if prunable(layer) else fresh

    clone = keras.models.clone_model(model, clone_function=wrap)
    for layer in clone.layers:  # clone_model gives fresh weights: take the trained ones
        inner = getattr(layer, "layer", layer)
        source = model.get_layer(inner.name)
        if source.weights:
            inner.set_weights(source.get_weights())
    clone.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    clone.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(clone)
    measured = {}
    for layer in stripped.layers:
        if not layer.weights:
            continue
        original = model.get_layer(layer.name)
        original.set_weights(layer.get_weights())
        if prunable(original):
            kernel = original.get_weights()[0]
            measured[original.name] = float(np.mean(kernel == 0))
    log(f"pruned {len(measured)} layers to mean sparsity {np.mean(list(measured.values())) if measured else 0:.2f}")
    return measured
