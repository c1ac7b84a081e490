"""`specc train --tensorboard DIR` writes scalars TensorBoard reads, in both backends (issue 18)."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("tensorboard")
pytest.importorskip("sklearn")


def read_scalars(folder):
    """{tag: [(step, value)]} from the event files in ``folder``, read by TensorBoard's loader."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    scalars: dict = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                # the loader upgrades simple_value to a scalar tensor, as TensorBoard shows it
                number = (
                    value.tensor.float_val[0] if value.HasField("tensor") else value.simple_value
                )
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def test_writer_round_trip(tmp_path):
    from specc.runner.tensorboard import TensorBoardHook

    hook = TensorBoardHook(tmp_path)
    hook.start_epoch(1, 2, steps=3, samples=96)
    for step in (1, 2, 3):
        hook.batch(1, 2, step, 3, {"loss": 1.0 / step, "accuracy": 0.25 * step}, 32 * step)
    hook.epoch({"epoch": 1, "loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "lr": 0.01,
                "seconds": 1.0}, 2)  # fmt: skip
    hook.close()
    train = read_scalars(tmp_path / "train")
    assert train["batch_loss"] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert train["batch_accuracy"] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    assert train["epoch_loss"] == [(1, 0.5)] and train["epoch_accuracy"] == [(1, 0.75)]
    assert train["epoch_learning_rate"] == [(1, pytest.approx(0.01))]
    assert read_scalars(tmp_path / "validation") == {"epoch_loss": [(1, pytest.approx(0.6))]}


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("pytorch", marks=pytest.mark.skipif(
            importlib.util.find_spec("torch") is None, reason="needs torch")),
        pytest.param("keras", marks=[pytest.mark.slow, pytest.mark.skipif(
            importlib.util.find_spec("keras") is None, reason="needs keras")]),
    ],
)  # fmt: skip
def test_train_writes_scalars_per_step_and_epoch(backend, tmp_path):
    logdir = tmp_path / "tb"
    result = subprocess.run(
        [sys.executable, "-m", "specc", "train", "specs/digits_cnn.yaml", "--backend", backend,
         "--epochs", "2", "--limit", "300", "--threads", "1", "--out", tmp_path / "run",
         "--tensorboard", logdir, "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    history = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    train = read_scalars(logdir / "train")
    validation = read_scalars(logdir / "validation")
    # 300 samples, 10% validation -> 270 train samples, batch 32 -> 9 steps per epoch
    assert [step for step, _ in train["batch_loss"]] == list(range(1, 19))
    for name in ("loss", "accuracy"):
        assert train[f"epoch_{name}"] == [
            (int(row["epoch"]), pytest.approx(float(row[name]), rel=1e-6)) for row in history
        ]
        assert validation[f"epoch_{name}"] == [
            (int(row["epoch"]), pytest.approx(float(row[f"val_{name}"]), rel=1e-6))
            for row in history
        ]
    # the last step's running loss is the epoch's loss
    assert train["batch_loss"][8][1] == pytest.approx(float(history[0]["loss"]), rel=1e-6)
    assert train["epoch_learning_rate"] == [(1, pytest.approx(0.01)), (2, pytest.approx(0.01))]
