"""The Keras backend trains a whole epoch through Keras's compiled step without the per-call
overhead of train_on_batch or fit (specc.runner.keras_backend.fit_batches), with exactly the
loop's batches: the same weights, loss and accuracy as one train_on_batch call per batch,
dropout included."""

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
        total_loss, total_acc, seen, done = b.train_epoch(
            iter(batches), lambda s, _loss, _acc, _seen, k=steps: k.append(s)
        )
        assert seen == 203 and done == 7 and steps == list(range(1, 8))
        # Keras's float32 running sums against the loop's float64 sums of the same values
        assert total_loss == pytest.approx(loss, rel=1e-6)
        assert total_acc == pytest.approx(acc, rel=1e-6)
        for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    assert int(a.model.optimizer.iterations) == int(b.model.optimizer.iterations) == 14


def test_batches_of_any_size_and_no_batches(keras):
    """Each step is Keras's compiled step on the batch as given: batches of different sizes
    train exactly as train_on_batch trains them; no batches: None, nothing trained."""
    from specc.runner.keras_backend import fit_batches
    from specc.spec import Training

    training = Training.model_validate({"dataset": "mnist", "optimizer": {"type": "adam"}})
    rng = np.random.default_rng(3)
    x = rng.random((10, 20), dtype=np.float32)
    y = rng.integers(0, 4, 10)
    batches = [(x[:3], y[:3]), (x[3:8], y[3:8]), (x[8:], y[8:])]
    a, b = _backend(keras, training), _backend(keras, training)
    a.seed(1)
    b.seed(1)
    loss = 0.0
    for xb, yb in batches:
        loss += a.train_step(xb, yb)[0] * len(xb)
    total_loss, _, seen, done = fit_batches(b.model, iter(batches))
    assert (seen, done) == (10, 3)
    assert total_loss == pytest.approx(loss, rel=1e-6)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = _backend(keras, training)
    assert fit_batches(c.model, iter([])) is None
    assert int(c.model.optimizer.iterations) == 0  # nothing trained


def test_fit_epoch_stops_after_the_step_where_stop_turns_true(keras):
    """Ctrl-C inside the fit path: fit ends after the current step and the sums cover exactly
    the steps done, as the train_on_batch loop's mid-epoch checkpoint records them."""
    from specc.spec import Training

    training = Training.model_validate({"dataset": "mnist", "optimizer": {"type": "adam"}})
    rng = np.random.default_rng(1)
    x = rng.random((160, 20), dtype=np.float32)
    y = rng.integers(0, 4, 160)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 160, 32)]
    a, b = _backend(keras, training), _backend(keras, training)
    a.seed(3)
    b.seed(3)
    loss = acc = 0.0
    for xb, yb in batches[:3]:
        batch_loss, batch_acc = a.train_step(xb, yb)
        loss += batch_loss * len(xb)
        acc += batch_acc * len(xb)
    calls = []
    total_loss, total_acc, seen, done = b.train_epoch(
        iter(batches), lambda s, *_: calls.append(s), lambda: calls[-1] == 3
    )
    assert (seen, done, calls) == (96, 3, [1, 2, 3])
    assert total_loss == pytest.approx(loss, rel=1e-6)
    assert total_acc == pytest.approx(acc, rel=1e-6)
    assert int(b.model.optimizer.iterations) == 3
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)


class _Data:
    """The loop's data protocol over fixed arrays: batches in a (seed, epoch) order."""

    def __init__(self, x, y):
        self.x_train, self.y_train = x, y
        self.x_val = self.y_val = None

    def batches(self, batch_size, epoch):
        order = np.random.default_rng(epoch).permutation(len(self.x_train))
        for i in range(0, len(order), batch_size):
            index = order[i : i + batch_size]
            yield self.x_train[index], self.y_train[index]


def test_ctrl_c_inside_the_fit_path_then_resume_is_exact(keras, tmp_path):
    """specc.runner.loop.fit with the Keras backend: SIGINT at step 3 of epoch 2 (inside
    model.fit) checkpoints that step; resuming (the rest of the epoch through model.fit again,
    from the checkpoint's running sums) ends with the weights and history of an
    uninterrupted run, bit for bit."""
    import os
    import signal

    from specc.runner import loop
    from specc.spec import Training

    training = Training.model_validate({"dataset": "mnist", "optimizer": {"type": "adam"}})
    rng = np.random.default_rng(2)
    data = _Data(rng.random((203, 20), dtype=np.float32), rng.integers(0, 4, 203))
    kwargs = {"epochs": 3, "batch_size": 32, "seed": 5}

    whole = _backend(keras, training)
    loop.fit(whole, data, training, out_dir=tmp_path / "whole", **kwargs)

    class _CtrlC(loop.Progress):
        def batch(self, epoch, epochs, done, total, loss, seen=None):
            if (epoch, done) == (2, 3):
                os.kill(os.getpid(), signal.SIGINT)

    stopped = _backend(keras, training)
    with pytest.raises(loop.Interrupted) as caught:
        loop.fit(stopped, data, training, out_dir=tmp_path / "run", progress=_CtrlC(), **kwargs)
    assert (caught.value.state.epoch, caught.value.state.step) == (1, 3)
    assert int(stopped.model.optimizer.iterations) == 7 + 3  # fit stopped after that step

    resumed = _backend(keras, training)
    state = loop.fit(resumed, data, training, out_dir=tmp_path / "run", resume=True, **kwargs)
    for wa, wb in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    want = loop.load_checkpoint(tmp_path / "whole", _backend(keras, training)).history
    assert [r["loss"] for r in state.history] == [r["loss"] for r in want]
    assert [r["accuracy"] for r in state.history] == [r["accuracy"] for r in want]
