"""The fine-tune strategy (enough photos a label): the head on cached features at the cut with the backbone
frozen, then the top blocks trained (Keras, early stopping on the validation loss), optional pruning.
train.py's `train_and_export` chooses it (choose_strategy) and exports what it returns."""

from __future__ import annotations

import numpy as np

from . import data
from .features import cached_features
from .model import Head, bottom_model, set_top_trainable, tf_setup, trainable_model
from .types import Stopped


def class_weights(label_indices: np.ndarray, n: int) -> np.ndarray:
    """Balanced weights: total / (classes * count), so every class weighs the same in the loss."""
    counts = np.bincount(label_indices, minlength=n).astype(np.float64)
    weights = np.where(counts > 0, len(label_indices) / (n * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


class _StopCallback:
    def __new__(cls, should_stop, progress, phase, epochs):
        keras = __import__("tf_keras")

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if should_stop():
                    self.model.stop_training = True
                    raise Stopped(f"stopped during {phase}")

            def on_epoch_end(self, epoch, logs=None):
                progress(phase, min(1.0, (epoch + 1) / max(1, epochs)))

        return Callback()


def _mixup(alpha: float, seed: int):
    """Mix each batch with a shuffled copy of itself (features, labels and weights alike).

    On cached intermediate features this is manifold mixup: a regularizer that costs nothing
    extra in feature computation, where fine-tuning on a few cached views would otherwise overfit.
    """
    tf = tf_setup()

    def mix(x, y, w):
        g1 = tf.random.gamma([], alpha, seed=seed)
        g2 = tf.random.gamma([], alpha, seed=seed + 1)
        lam = g1 / (g1 + g2 + 1e-8)
        lam = tf.maximum(lam, 1.0 - lam)  # the first photo dominates: its weight stays meaningful
        order = tf.random.shuffle(tf.range(tf.shape(x)[0]), seed=seed)
        mixed_x = lam * x + (1.0 - lam) * tf.gather(x, order)
        mixed_y = lam * y + (1.0 - lam) * tf.gather(y, order)
        mixed_w = lam * w + (1.0 - lam) * tf.gather(w, order)
        return mixed_x, mixed_y, mixed_w

    return mix


def train_fine_tune(*, base, cut, train, val, n, hparams, feature_store, out_dir, progress, log, should_stop, phase_done,
                    notes):
    """Features at the cut (cached), the head with the backbone frozen, then the top blocks (Keras, early stopping
    on the validation loss); optional pruning. Returns (head, feature stats, history, choice details)."""
    tf = tf_setup()
    keras = __import__("tf_keras")
    seed = hparams.seed
    strategy = "fine_tune"
    # --- features -------------------------------------------------------------------------
    augmented = max(0, hparams.augment_views) if hparams.augment else 0
    # One bottom model (and so one traced graph) for the training and the validation photos.
    out_dir.mkdir(parents=True, exist_ok=True)
    common = dict(base=base, backbone=hparams.backbone, cut=cut, hparams=hparams, feature_store=feature_store,
                  should_stop=should_stop, bottom=bottom_model(base, cut), scratch=out_dir)
    share = len(train) * max(1, augmented) / max(1, len(train) * max(1, augmented) + len(val))
    train_f = cached_features(keys=[e.key for e in train], paths=[e.path for e in train], augmented=augmented,
                              progress=lambda f: progress("features", f * share), **common)
    val_f = cached_features(keys=[e.key for e in val], paths=[e.path for e in val], augmented=0,
                            progress=lambda f: progress("features", share + f * (1 - share)), **common)
    stats = {"computed": train_f.computed + val_f.computed, "reused": train_f.reused + val_f.reused}
    log(f"features at {cut}: {stats['computed']} computed, {stats['reused']} reused, "
        f"{max(1, augmented)} views per training photo")
    phase_done("features")

    # --- datasets -------------------------------------------------------------------------
    y_train = np.array([e.label_index for e in train], np.int64)
    y_val = np.array([e.label_index for e in val], np.int64)
    weights = class_weights(y_train, n)

    def train_ds():
        ds = data.feature_dataset(train_f.features, y_train, batch_size=hparams.batch_size, training=True, seed=seed,
                                  sample_weights=weights[y_train])
        ds = ds.map(lambda x, y, w: (x, tf.one_hot(y, n), w))
        return ds.map(_mixup(hparams.mixup_alpha, seed)) if hparams.mixup_alpha > 0 else ds

    val_ds = (data.feature_dataset(val_f.features, y_val, batch_size=hparams.batch_size * 4, training=False, seed=seed)
              .map(lambda x, y: (x, tf.one_hot(y, n)))) if val else None
    steps = int(np.ceil(len(train) / hparams.batch_size))
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=hparams.label_smoothing)
    head = Head(n, dropout=hparams.dropout, weight_decay=hparams.weight_decay, seed=seed)
    model = trainable_model(base, cut, head)
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": []}

    def fit(phase: str, epochs: int, learning_rate: float) -> None:
        if epochs <= 0:
            return
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps), alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])
        callbacks = [_StopCallback(should_stop, progress, phase, epochs)]
        if val_ds is not None:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=hparams.early_stopping_patience,
                                                           restore_best_weights=True))
        result = model.fit(train_ds(), validation_data=val_ds, epochs=epochs, verbose=0, callbacks=callbacks)
        for key in history:
            history[key].extend(float(v) for v in result.history.get(key, []))
        log(f"{phase}: {len(result.history['loss'])} epochs, train accuracy {result.history['accuracy'][-1]:.3f}"
            + (f", validation accuracy {result.history['val_accuracy'][-1]:.3f}" if val_ds is not None else ""))

    # --- train the head, then fine-tune the top blocks ------------------------------------
    fit("train_head", hparams.epochs_head, hparams.learning_rate_head)
    phase_done("train_head")
    if strategy == "fine_tune":
        set_top_trainable(base, cut, True)
        fit("fine_tune", hparams.epochs_fine_tune, hparams.learning_rate_fine_tune)
        phase_done("fine_tune")

    if hparams.prune_sparsity > 0:
        from .prune import prune_and_strip

        progress("prune", 0.0)
        sparsity = prune_and_strip(model, sparsity=hparams.prune_sparsity, train_ds=train_ds(), val_ds=val_ds,
                                   epochs=max(2, min(6, hparams.epochs_fine_tune or hparams.epochs_head)), steps_per_epoch=steps,
                                   learning_rate=hparams.learning_rate_fine_tune, loss=loss, log=log)
        notes.append(f"pruned to target sparsity {hparams.prune_sparsity:.2f}: measured "
                     + ", ".join(f"{k} {v:.2f}" for k, v in sorted(sparsity.items())))
        progress("prune", 1.0)
        phase_done("prune")
    set_top_trainable(base, cut, False)
    train_f.features.close()  # the scratch files of this night's features
    val_f.features.close()

    return head, stats, history, {"epochs": len(history["loss"])}
