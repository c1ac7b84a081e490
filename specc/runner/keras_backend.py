"""The Keras side of the training loop: the spec's optimizer and loss, every value explicit."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


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

    def save(self, folder: Path) -> None:
        self.model.save(folder / "model.keras")

    def load(self, folder: Path) -> None:
        self.model = keras.models.load_model(folder / "model.keras")


def _model_input(x) -> np.ndarray:
    """A batch as the model takes it: integer ids kept as integers, else float32."""
    x = np.asarray(x)
    return x if x.dtype.kind in "iu" else np.asarray(x, dtype=np.float32)
