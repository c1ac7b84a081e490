"""The shared training loop: schedules, early stopping, checkpoints and exact resume."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

np = pytest.importorskip("numpy")

from specc.runner.loop import LoopState, fit, scheduled_lr  # noqa: E402
from specc.spec import Training  # noqa: E402


def training(**overrides):
    data = {"dataset": "digits", "optimizer": {"type": "sgd", "learning_rate": 0.1}, **overrides}
    return Training.model_validate(data)


def test_step_and_cosine_schedules():
    step = training(schedule={"type": "step", "step_epochs": 2, "gamma": 0.5})
    assert [scheduled_lr(step, e, 6, LoopState()) for e in range(6)] == [
        0.1,
        0.1,
        0.05,
        0.05,
        0.025,
        0.025,
    ]
    cosine = training(schedule={"type": "cosine", "alpha": 0.1})
    lrs = [scheduled_lr(cosine, e, 4, LoopState()) for e in range(4)]
    # 0.1 * (0.9 * 0.5 * (1 + cos(pi * e / 4)) + 0.1)
    assert lrs == pytest.approx(
        [0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * e / 4)) + 0.1) for e in range(4)]
    )


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    from specc.data import iterate_batches

    return SimpleNamespace(
        x_train=x[:64],
        y_train=y[:64],
        x_val=x[64:],
        y_val=y[64:],
        batches=lambda batch_size, epoch: iterate_batches(
            x[:64], y[:64], batch_size, seed=3, epoch=epoch
        ),
    )


def _torch_backend(spec):
    torch = pytest.importorskip("torch")
    from specc.runner.torch_backend import TorchBackend

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(6, 8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(8, 2),
        torch.nn.Softmax(-1),
    )
    return TorchBackend(module, spec)


@pytest.mark.slow
def test_resume_replays_an_uninterrupted_run_exactly(tmp_path):
    spec = training(optimizer={"type": "adam", "learning_rate": 0.01}, schedule={"type": "cosine"})
    data = _data()
    whole = _torch_backend(spec)
    fit(whole, data, spec, epochs=4, batch_size=16, seed=3, out_dir=tmp_path / "a")

    first = _torch_backend(spec)
    steps = {"n": 0}
    real_step = first.train_step

    def dying_step(x, y):  # the process dies in the middle of epoch 3 (4 steps per epoch)
        steps["n"] += 1
        if steps["n"] == 10:
            raise KeyboardInterrupt
        return real_step(x, y)

    first.train_step = dying_step
    with pytest.raises(KeyboardInterrupt):
        fit(first, data, spec, epochs=4, batch_size=16, seed=3, out_dir=tmp_path / "b")
    assert json.loads((tmp_path / "b" / "checkpoint.json").read_text())["epoch"] == 2
    resumed = _torch_backend(spec)  # a new process would start from fresh weights
    state = fit(
        resumed, data, spec, epochs=4, batch_size=16, seed=3, out_dir=tmp_path / "b", resume=True
    )

    assert [row["epoch"] for row in state.history] == [1, 2, 3, 4]
    for key, value in whole.module.state_dict().items():
        assert np.array_equal(value.numpy(), resumed.module.state_dict()[key].numpy()), key
    history_a = json.loads((tmp_path / "a" / "checkpoint-0004" / "loop.json").read_text())[
        "history"
    ]
    assert [r["loss"] for r in history_a] == [r["loss"] for r in state.history]
    # only the latest complete checkpoint is kept, and the pointer names it
    assert json.loads((tmp_path / "b" / "checkpoint.json").read_text()) == {
        "folder": "checkpoint-0004",
        "epoch": 4,
        "step": 0,
    }
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == ["checkpoint-0004"]


@pytest.mark.slow
def test_early_stopping_restores_the_best_weights(tmp_path):
    # learning rate so large that validation loss gets worse after the first epochs
    spec = training(
        optimizer={"type": "sgd", "learning_rate": 5.0},
        early_stopping={"monitor": "val_loss", "patience": 1, "restore_best_weights": True},
    )
    backend = _torch_backend(spec)
    state = fit(backend, _data(), spec, epochs=30, batch_size=16, seed=0, out_dir=tmp_path)
    assert state.stopped_early and state.epoch < 30
    losses = [row["val_loss"] for row in state.history]
    assert state.best == min(losses[: state.best_epoch])
    from specc.runner.loop import evaluate

    data = _data()
    assert evaluate(backend, data.x_val, data.y_val, spec, 16)["loss"] == pytest.approx(
        state.best, rel=1e-6
    )


def test_ctrl_c_saves_at_the_end_of_the_step_and_resumes_exactly(tmp_path):
    """SIGINT mid-epoch: the loop finishes the step, saves a mid-epoch checkpoint (with
    torch's random state: the Dropout masks continue) and a resume ends bit-identical."""
    import os
    import signal

    from specc.runner.loop import Interrupted

    spec = training(optimizer={"type": "adam", "learning_rate": 0.01})
    data = _data()
    whole = _torch_backend(spec)
    fit(whole, data, spec, epochs=3, batch_size=16, seed=3, out_dir=tmp_path / "a")

    first = _torch_backend(spec)
    steps = {"n": 0}
    real_step = first.train_step

    def interrupted_step(x, y):  # Ctrl-C arrives during step 2 of epoch 2 (4 steps an epoch)
        steps["n"] += 1
        if steps["n"] == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(x, y)

    first.train_step = interrupted_step
    with pytest.raises(Interrupted) as stop:
        fit(first, data, spec, epochs=3, batch_size=16, seed=3, out_dir=tmp_path / "b")
    assert (stop.value.state.epoch, stop.value.state.step) == (1, 2)
    pointer = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    assert pointer == {"folder": "checkpoint-0001-step000002", "epoch": 1, "step": 2}
    resumed = _torch_backend(spec)
    state = fit(
        resumed, data, spec, epochs=3, batch_size=16, seed=3, out_dir=tmp_path / "b", resume=True
    )
    assert [row["epoch"] for row in state.history] == [1, 2, 3]
    for key, value in whole.module.state_dict().items():
        assert np.array_equal(value.numpy(), resumed.module.state_dict()[key].numpy()), key
    whole_history = json.loads((tmp_path / "a" / "checkpoint-0003" / "loop.json").read_text())
    assert [r["loss"] for r in state.history] == [r["loss"] for r in whole_history["history"]]


def test_checkpoints_delete_only_what_specc_created(tmp_path):
    """The user's own folders named like checkpoints (or best/) are never touched."""
    out = tmp_path / "run"
    (out / "checkpoint-0001").mkdir(parents=True)
    (out / "checkpoint-0001" / "mine.txt").write_text("the user's")
    (out / "checkpoint-old").mkdir()
    (out / "best").mkdir()
    (out / "best" / "notes.txt").write_text("keep")
    spec = training(
        optimizer={"type": "adam", "learning_rate": 0.01},
        early_stopping={"monitor": "val_loss", "patience": 5, "restore_best_weights": True},
    )
    from specc.runner.runfolder import RunFolderConflict

    with pytest.raises(RunFolderConflict, match="best exists and was not written by specc"):
        fit(_torch_backend(spec), _data(), spec, epochs=2, batch_size=16, seed=3, out_dir=out)
    assert (out / "best" / "notes.txt").read_text() == "keep"
    (out / "best").rename(out / "my-best")
    with pytest.raises(RunFolderConflict, match="checkpoint-0001 exists"):
        fit(_torch_backend(spec), _data(), spec, epochs=2, batch_size=16, seed=3, out_dir=out)
    assert (out / "checkpoint-0001" / "mine.txt").read_text() == "the user's"
    (out / "checkpoint-0001").rename(out / "mine-0001")
    fit(_torch_backend(spec), _data(), spec, epochs=3, batch_size=16, seed=3, out_dir=out)
    assert (out / "checkpoint-old").is_dir() and (out / "mine-0001" / "mine.txt").exists()
    assert (out / "my-best" / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0003", "checkpoint-old"]
    manifest = json.loads((out / ".specc-manifest.json").read_text())["files"]
    assert "checkpoint-0003" in manifest and "checkpoint-old" not in manifest
