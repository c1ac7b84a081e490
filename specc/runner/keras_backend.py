"""The Keras side of the training loop: the spec's optimizer and loss, every value explicit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..frameworks import import_keras

keras = import_keras()  # quietly: no TensorFlow start-up lines on stderr


def keras_optimizer(spec):
    """keras.optimizers.<X> for a spec's ``training.optimizer`` with every argument written out."""
    args = spec.model_dump(exclude={"type"})
    if args.get("weight_decay") is None:
        args.pop("weight_decay", None)
    classes = {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return classes[spec.type](**args)


def keras_loss(training):
    if training.loss == "mse":
        return keras.losses.MeanSquaredError()
    classes = {
        "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
        "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
        "binary_crossentropy": keras.losses.BinaryCrossentropy,
    }
    return classes[training.loss](from_logits=training.from_logits)


def keras_accuracy(training):
    if training.loss == "binary_crossentropy":
        return keras.metrics.BinaryAccuracy(
            name="accuracy", threshold=0.0 if training.from_logits else 0.5
        )
    if training.loss == "sparse_categorical_crossentropy":
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    return keras.metrics.CategoricalAccuracy(name="accuracy")


def fit_batches(
    model: keras.Model, batches, on_batch=None, stop=None, start=None
) -> tuple[float, float, int, int] | None:
    """One epoch of ``model.fit`` over exactly ``batches`` (an iterable of (x, y) arrays), in
    their order: the compiled training loop instead of one ``train_on_batch`` call per batch
    (whose per-call setup cost dominated small models). The batches are concatenated and
    handed to fit with their own batch size and ``shuffle=False``, so fit steps through the
    very same batches; every step is Keras's own train step, so dropout draws from the same
    seed generator in the same order. ``on_batch(step, running_loss, running_accuracy,
    samples_so_far)`` after each step; when ``stop()`` is true after a step, fit stops there
    (Ctrl-C: the caller checkpoints mid-epoch).

    The sums are Keras's own running ones (its loss and accuracy trackers' ``total`` and
    ``count``), read after the last step: (loss total, accuracy total, samples, steps done).
    ``start``, the sums returned by an epoch that stopped early, is added to the trackers
    after the first step, so the rest of that epoch (``batches`` then holds the batches still to
    do) continues exactly the same float32 sums as an uninterrupted epoch: the epoch's loss
    and accuracy come out bit for bit. None (nothing trained) when the batches are not all
    of one size but the last, which fit cannot replay.
    """
    xs, ys = [], []
    for xb, yb in batches:
        xs.append(np.asarray(xb, dtype=np.float32))
        ys.append(np.asarray(yb))
    if not xs:
        return None
    size = len(xs[0])
    if any(len(x) != size for x in xs[:-1]) or len(xs[-1]) > size:
        return None
    x = np.concatenate(xs) if len(xs) > 1 else xs[0]
    y = np.concatenate(ys) if len(ys) > 1 else ys[0]
    done = {"step": 0}
    first = start[2] if start is not None else 0

    def trackers():
        return {v.path: v for v in model.metrics_variables}

    def sums():
        values = {path: float(np.asarray(v)) for path, v in trackers().items()}
        return (
            values.get("loss/total", 0.0),
            values.get("accuracy/total", 0.0),
            int(values.get("loss/count", 0)),
        )

    def add_start():
        """Add ``start`` to the trackers after the first step: the trackers were 0 before it
        (fit resets them; Keras builds the accuracy tracker only in the first step), so
        this gives the float32 sums an uninterrupted epoch has after the same step."""
        loss, acc, seen = start
        found = trackers()
        for path, value in (
            ("loss/total", loss),
            ("loss/count", seen),
            ("accuracy/total", acc),
            ("accuracy/count", seen),
        ):
            if path in found:
                var = found[path]
                dtype = np.dtype(var.dtype)
                var.assign(np.asarray(var, dtype) + np.asarray(value, dtype))

    class _Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            done["step"] = batch + 1
            if start is not None and batch == 0:
                add_start()
                loss, acc, seen = sums()
                running = (loss / seen, acc / seen)
            else:  # Keras's running means of the epoch so far
                logs = logs or {}
                running = (float(logs.get("loss", 0.0)), float(logs.get("accuracy", 0.0)))
            if on_batch is not None:
                on_batch(batch + 1, *running, first + min((batch + 1) * size, len(x)))
            if stop is not None and stop():
                self.model.stop_training = True  # Keras ends fit after this step

    model.fit(x, y, batch_size=size, epochs=1, shuffle=False, verbose=0, callbacks=[_Steps()])
    loss, acc, seen = sums()
    return loss, acc, seen, done["step"]


class KerasBackend:
    """Trains a generated ``keras.Model``."""

    name = "keras"

    def __init__(self, model: keras.Model, training):
        self.training = training
        self.model = model
        self._compile()

    def _compile(self) -> None:
        metrics = [] if self.training.loss == "mse" else [keras_accuracy(self.training)]
        self.model.compile(
            optimizer=keras_optimizer(self.training.optimizer),
            loss=keras_loss(self.training),
            metrics=metrics,
        )

    def seed(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)

    def set_learning_rate(self, lr: float) -> None:
        self.model.optimizer.learning_rate = lr

    def train_step(self, x, y) -> tuple[float, float]:
        logs = self.model.train_on_batch(_model_input(x), np.asarray(y), return_dict=True)
        return float(logs["loss"]), float(logs.get("accuracy", 0.0))

    def train_epoch(self, batches, on_batch=None, stop=None, start=None):
        """An epoch (or its rest, from ``start``) through ``model.fit`` (see
        :func:`fit_batches`); None: use train_step."""
        return fit_batches(self.model, batches, on_batch, stop, start)

    def evaluate(self, x, y, batch_size: int):
        """(outputs, mean loss) in inference mode, the loss from Keras's own compiled loss."""
        x = _model_input(x)
        y = np.asarray(y)
        step = max(batch_size, 256)
        parts = []
        total = 0.0
        for start in range(0, len(x), step):
            xb, yb = x[start : start + step], y[start : start + step]
            total += float(self.model.test_on_batch(xb, yb, return_dict=True)["loss"]) * len(xb)
            parts.append(np.asarray(self.model.predict_on_batch(xb)))
        outputs = np.concatenate(parts) if parts else np.zeros((0,))
        return outputs, total / max(len(x), 1)

    def snapshot(self):
        return self.model.get_weights()

    def restore(self, snapshot) -> None:
        self.model.set_weights(snapshot)

    def _seed_generators(self) -> list:
        """Every layer's SeedGenerator (Dropout, random augmentation layers), in layer order."""
        found = []
        for layer in self.model._flatten_layers(include_self=True, recursive=True):
            found += list(getattr(layer, "_seed_generators", []) or [])
        return found

    def rng_state(self):
        """The state of every seed generator: a Dropout's masks continue exactly after a
        resume (``model.keras`` does not save them, and a loaded model draws new seeds)."""
        return [np.asarray(sg.state.numpy()) for sg in self._seed_generators()]

    def set_rng_state(self, state) -> None:
        generators = self._seed_generators()
        if len(generators) != len(state):
            raise ValueError(
                f"the checkpoint has {len(state)} random generators, the model {len(generators)}"
            )
        for sg, value in zip(generators, state, strict=True):
            sg.state.assign(np.asarray(value, dtype=sg.state.dtype))

    def save(self, folder: Path) -> None:
        self.model.save(folder / "model.keras")
        np.savez(folder / "rng.npz", *self.rng_state())

    def load(self, folder: Path) -> None:
        """Model, optimizer and seed-generator state; a file that cannot be read raises
        ``RunDamaged`` naming it."""
        from .runfolder import RunDamaged

        path = folder / "model.keras"
        if path.is_file() and path.stat().st_size == 0:
            raise RunDamaged(path, "cannot be loaded (empty file)")
        try:
            self.model = keras.models.load_model(path)
        except Exception as exc:  # zipfile, h5py or Keras's own errors for a corrupt file
            reason = (
                f"not a readable .keras file, truncated or corrupted ({type(exc).__name__})"
                if path.is_file()
                else "the file is missing"
            )
            raise RunDamaged(path, f"cannot be loaded ({reason})") from None
        rng = folder / "rng.npz"
        if rng.exists():
            try:
                with np.load(rng, allow_pickle=False) as z:
                    self.set_rng_state([z[f"arr_{i}"] for i in range(len(z.files))])
            except Exception as exc:
                raise RunDamaged(rng, f"cannot be loaded ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _model_input(x) -> np.ndarray:
    """A batch as the model takes it: integer ids kept as integers, else float32."""
    x = np.asarray(x)
    return x if x.dtype.kind in "iu" else np.asarray(x, dtype=np.float32)
