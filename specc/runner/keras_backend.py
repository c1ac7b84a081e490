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
