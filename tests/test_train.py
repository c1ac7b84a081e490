"""`specc train` end to end on real MNIST files (a slice), in both backends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


def specc(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "specc", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def mnist_dir(data_dir):
    if not (data_dir / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST files not found in {data_dir}")
    return data_dir


@pytest.mark.parametrize("backend", ["keras", "pytorch"])
def test_train_writes_a_complete_run(backend, mnist_dir, tmp_path):
    out = tmp_path / "run"
    result = specc(
        "train",
        "specs/mnist_cnn.yaml",
        "--backend",
        backend,
        "--epochs",
        "2",
        "--limit",
        "3000",
        "--data-dir",
        mnist_dir,
        "--out",
        out,
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    expected = {
        "history.csv",
        "history.json",
        "metrics.json",
        "run.json",
        "curves.png",
        "confusion_matrix.png",
        "predictions.png",
        "weights.npz",
        "model.onnx",
        f"model_{backend}.py",
        "normalization.json",
        "model.keras" if backend == "keras" else "model.pt",
    }
    assert expected <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    matrix = metrics["confusion_matrix"]
    # 3,000 test samples; accuracy is the confusion matrix's trace over its sum
    assert sum(map(sum, matrix)) == metrics["samples"] == 3000
    assert metrics["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(10)) / 3000)
    assert metrics["accuracy"] > 0.8  # 2 epochs (42 steps) on 2,700 real digits; chance is 0.1
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"]
    run = json.loads((out / "run.json").read_text())
    assert run["backend"] == backend and run["epochs"] == 2 and run["samples_per_second"] > 0
    assert run["data_dir"] == str(mnist_dir.resolve())  # `specc crosscheck --run` finds the data
    # the trained model is the compiled model: same bytes as `specc compile`
    compiled = specc("compile", "specs/mnist_cnn.yaml", "--target", backend)
    assert (out / f"model_{backend}.py").read_text() == compiled.stdout


def test_existing_run_folder_needs_resume(mnist_dir, tmp_path):
    out = tmp_path / "run"
    first = specc(
        "train",
        "specs/mnist_mlp.json",
        "--backend",
        "pytorch",
        "--epochs",
        "1",
        "--limit",
        "500",
        "--data-dir",
        mnist_dir,
        "--out",
        out,
        "--quiet",
    )
    assert first.returncode == 0, first.stderr
    again = specc(
        "train",
        "specs/mnist_mlp.json",
        "--backend",
        "pytorch",
        "--epochs",
        "1",
        "--limit",
        "500",
        "--data-dir",
        mnist_dir,
        "--out",
        out,
        "--quiet",
    )
    assert again.returncode == 3
    assert "already holds a run; continue it with --resume" in again.stderr
    resumed = specc(
        "train",
        "specs/mnist_mlp.json",
        "--backend",
        "pytorch",
        "--epochs",
        "2",
        "--limit",
        "500",
        "--data-dir",
        mnist_dir,
        "--out",
        out,
        "--quiet",
        "--resume",
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]


def test_missing_dataset_lists_the_files_to_put_where(tmp_path, monkeypatch):
    monkeypatch.delenv("SPECC_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = specc(
        "train",
        ROOT / "specs/mnist_cnn.yaml",
        "--backend",
        "pytorch",
        "--data-dir",
        tmp_path / "empty",
        "--out",
        tmp_path / "run",
        "--offline",
        cwd=tmp_path,
    )
    assert result.returncode == 3
    assert "train-images-idx3-ubyte.gz" in result.stderr and "Traceback" not in result.stderr


def test_spec_without_training_section_is_refused(tmp_path):
    result = specc("train", "specs/conv_autoencoder.yaml", "--out", tmp_path / "run")
    assert result.returncode == 1
    assert "the spec has no 'training:' section" in result.stderr
