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
    """One epoch over exactly ``batches`` (an iterable of (x, y) arrays), in their order,
    through Keras's own compiled training step, as ``model.fit`` runs it: the trackers of
    the loss and the metrics are reset once, at the epoch's start, and then keep Keras's
    running sums over the epoch. Each step is ``model.train_function`` (the function
    ``fit`` and ``train_on_batch`` call), so dropout draws from the same seed generator in
    the same order and the weights come out bit for bit as with one ``train_on_batch`` per
    batch; what this drops is their per-call overhead: ``train_on_batch`` resets the
    trackers and copies its logs to Python on every call, and ``fit`` builds a ``tf.data``
    pipeline and its callbacks on every call (tens of milliseconds, and specc's loop calls
    it once per epoch). The first step goes through ``train_on_batch`` (which builds what
    is not built yet and resets the trackers).

    ``on_batch(step, running_loss, running_accuracy, samples_so_far)`` after each step;
    when ``stop()`` is true after a step, the epoch ends there (Ctrl-C: the caller
    checkpoints mid-epoch). The sums are Keras's own running ones (its loss and accuracy
    trackers' ``total`` and ``count``), read after the last step: (loss total, accuracy
    total, samples, steps done). ``start``, the sums returned by an epoch that stopped
    early, is added to the trackers after the first step, so the rest of that epoch
    (``batches`` then holds the batches still to do) continues exactly the same float32
    sums as an uninterrupted epoch: the epoch's loss and accuracy come out bit for bit.
    None (nothing trained) when there are no batches.
    """
    batches = iter(batches)
    first_batch = next(batches, None)
    if first_batch is None:
        return None
    first = start[2] if start is not None else 0
    seen = 0

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
        (reset at the epoch's start; Keras builds the accuracy tracker only in the first
        step), so this gives the float32 sums an uninterrupted epoch has after the same
        step."""
        loss, acc, count = start
        found = trackers()
        for path, value in (
            ("loss/total", loss),
            ("loss/count", count),
            ("accuracy/total", acc),
            ("accuracy/count", count),
        ):
            if path in found:
                var = found[path]
                dtype = np.dtype(var.dtype)
                var.assign(np.asarray(var, dtype) + np.asarray(value, dtype))

    xb, yb = first_batch
    x, y = _model_input(xb), np.asarray(yb)
    logs = model.train_on_batch(x, y, return_dict=True)  # builds; resets the trackers
    seen += len(x)
    step = 1
    if start is not None:
        add_start()
        loss, acc, count = sums()
        running = (loss / count, acc / count)
    else:
        running = (float(logs.get("loss", 0.0)), float(logs.get("accuracy", 0.0)))
    if on_batch is not None:
        on_batch(step, *running, first + seen)
    if stop is None or not stop():
        train = model.train_function  # the compiled step train_on_batch just used
        for xb, yb in batches:
            x, y = _model_input(xb), np.asarray(yb)
            logs = train(iter(((x, y, None),)))  # train_on_batch's data structure: one trace
            seen += len(x)
            step += 1
            if on_batch is not None:  # Keras's running means of the epoch so far
                on_batch(
                    step,
                    float(logs["loss"]),
                    float(logs["accuracy"]) if "accuracy" in logs else 0.0,
                    first + seen,
                )
            if stop is not None and stop():
                break
    loss, acc, count = sums()
    return loss, acc, count, step


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` (Python's and NumPy's generators, Keras's global seed
    and seed generator) without TensorFlow's global seed. Setting that clears TensorFlow's
    kernel caches, so the next call of every compiled function is instantiated again: tens
    of milliseconds per reseed (the loop reseeds every epoch), which on a small model was
    half of an epoch's time. Keras's TensorFlow backend never draws from it (its random
    ops are stateless, fed by Keras seed generators); the run seeds it once, in full,
    before the model is built (specc.runner.run.build_backend)."""
    import random

    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


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
        # the loop reseeds with seed * 1000 + epoch, beyond NumPy's 32-bit legacy seed for a
        # training.seed above 4,294,967: wrap (the same value below it, as before)
        set_random_seed(seed % 2**32)

    def set_learning_rate(self, lr: float) -> None:
        self.model.optimizer.learning_rate = lr

    def train_step(self, x, y) -> tuple[float, float]:
        logs = self.model.train_on_batch(_model_input(x), np.asarray(y), return_dict=True)
        return float(logs["loss"]), float(logs.get("accuracy", 0.0))

    def train_epoch(self, batches, on_batch=None, stop=None, start=None):
        """An epoch (or its rest, from ``start``) through Keras's compiled step without
        the per-call overhead of ``train_on_batch`` or ``fit`` (see :func:`fit_batches`)."""
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
