"""`specc train` on sequence models: integer token ids (never normalized) from an .npz the
test generates, and MNIST read as 28 steps of 28 pixels for a recurrent spec."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specc.data import prepare
from specc.spec import Training

ROOT = Path(__file__).resolve().parent.parent


def token_dataset(path: Path, n_train=1200, n_test=300, length=20, vocab=200, seed=0):
    """Texts of random ids in [11, vocab); class 1 holds one 'keyword' id in [1, 10]."""
    rng = np.random.default_rng(seed)

    def split(n):
        x = rng.integers(11, vocab, size=(n, length))
        y = rng.integers(0, 2, size=n)
        where = rng.integers(0, length, size=n)
        x[y == 1, where[y == 1]] = rng.integers(1, 11, size=int((y == 1).sum()))
        return x.astype(np.int32), y.astype(np.int64)

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def test_integer_inputs_are_ids_not_normalized(tmp_path):
    token_dataset(tmp_path / "tokens.npz", n_train=50, n_test=10)
    training = Training.model_validate({"dataset": {"type": "npz", "path": "tokens.npz"}})
    data = prepare(training, (20,), output_units=2, base_dir=tmp_path, integer=True)
    assert data.x_train.dtype == np.int64 and data.x_test.dtype == np.int64
    raw = np.load(tmp_path / "tokens.npz")["x_test"]
    np.testing.assert_array_equal(data.x_test, raw)  # as they are: not divided by the max id
    floats = prepare(training, (20,), output_units=2, base_dir=tmp_path)
    assert floats.x_test.dtype == np.float32 and floats.x_test.max() <= 1.0


def test_mnist_rows_as_steps(data_dir):
    training = Training.model_validate({"dataset": "mnist"})
    data = prepare(training, (28, 28), data_dir, output_units=10, limit=64, download=False)
    assert data.x_train.shape[1:] == (28, 28) and data.x_train.dtype == np.float32


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["keras", "pytorch"])
@pytest.mark.parametrize("spec", ["text_bilstm.yaml", "text_transformer.yaml"])
def test_text_specs_learn_the_keyword(tmp_path, spec, backend):
    pytest.importorskip("torch" if backend == "pytorch" else "keras")
    shutil.copy(ROOT / "specs" / spec, tmp_path / spec)
    token_dataset(tmp_path / "tokens.npz")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "specc", "train", str(tmp_path / spec),
         "-b", backend, "-o", str(out), "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9, metrics["accuracy"]


@pytest.mark.slow
def test_a_token_id_run_predicts_and_evaluates(tmp_path):
    """`specc predict` / `specc evaluate` feed a finished run's token ids as training did
    (int64, never normalized), through the backend and through onnxruntime."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    shutil.copy(ROOT / "specs" / "text_bilstm.yaml", tmp_path / "text_bilstm.yaml")
    token_dataset(tmp_path / "tokens.npz", n_train=300, n_test=60)
    out = tmp_path / "run"

    def specc(*args):
        result = subprocess.run(
            [sys.executable, "-m", "specc", *args], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    specc("train", str(tmp_path / "text_bilstm.yaml"), "-b", "pytorch", "-o", str(out), "-q",
          "--epochs", "1")  # fmt: skip
    assert "equal to" in specc("evaluate", str(out))
    assert "equal to" in specc("evaluate", str(out), "--engine", "onnx")
    np.save(tmp_path / "x.npy", np.load(tmp_path / "tokens.npz")["x_test"][:5])
    rows = {}
    for engine in ("backend", "onnx"):
        csv = tmp_path / f"{engine}.csv"
        specc("predict", str(out), str(tmp_path / "x.npy"), "--engine", engine, "-o", str(csv))
        rows[engine] = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    assert len(rows["backend"]) == 5
    for a, b in zip(rows["backend"], rows["onnx"]):
        assert a[1] == b[1] and abs(float(a[2]) - float(b[2])) < 1e-4
