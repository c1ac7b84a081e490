"""The Keras backend trains a whole epoch through model.fit (specc.runner.keras_backend.
fit_batches) with exactly the loop's batches: the same weights, loss and accuracy as one
train_on_batch call per batch, dropout included."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _backend(keras, training):
    from specc.runner.keras_backend import KerasBackend

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    return KerasBackend(model, training)


def test_fit_epoch_equals_train_on_batch_loop(keras):
    from specc.spec import Training

    training = Training.model_validate({"dataset": "mnist", "optimizer": {"type": "adam"}})
    rng = np.random.default_rng(0)
    x = rng.random((203, 20), dtype=np.float32)
    y = rng.integers(0, 4, 203)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 203, 32)]  # last one: 11
    a, b = _backend(keras, training), _backend(keras, training)
    for epoch in range(2):
        a.seed(epoch)
        b.seed(epoch)
        loss = acc = 0.0
        for xb, yb in batches:
            batch_loss, batch_acc = a.train_step(xb, yb)
            loss += batch_loss * len(xb)
            acc += batch_acc * len(xb)
        steps = []
        total_loss, total_acc, seen = b.train_epoch(
            iter(batches), lambda s, _, k=steps: k.append(s)
        )
        assert seen == 203 and steps == list(range(1, 8))
        assert total_loss == pytest.approx(loss, rel=1e-6)
        assert total_acc == pytest.approx(acc, rel=1e-6)
        for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    assert int(a.model.optimizer.iterations) == int(b.model.optimizer.iterations) == 14


def test_uneven_batches_fall_back(keras):
    from specc.runner.keras_backend import fit_batches
    from specc.spec import Training

    training = Training.model_validate({"dataset": "mnist"})
    backend = _backend(keras, training)
    x = np.zeros((10, 20), np.float32)
    y = np.zeros(10, np.int64)
    assert fit_batches(backend.model, [(x[:3], y[:3]), (x[3:8], y[3:8]), (x[8:], y[8:])]) is None
    assert int(backend.model.optimizer.iterations) == 0  # nothing trained
