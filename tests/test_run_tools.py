"""`specc predict`, `specc evaluate` and `specc report` on trained digits runs (issue 18):
predictions reproduce the run's test accuracy, evaluate equals metrics.json, the plots
have whole-epoch ticks and titles naming model, backend, dataset and the test metric."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

HAS = {
    name: importlib.util.find_spec(name) is not None for name in ("torch", "keras", "onnxruntime")
}
needs_torch = pytest.mark.skipif(not HAS["torch"], reason="needs torch")

SPEC = """\
version: 1
name: digits_cnn
inputs:
  - {name: image, shape: [8, 8, 1]}
layers:
  - {type: Conv2D, filters: 8, kernel_size: 3, padding: same, activation: relu}
  - {type: MaxPooling2D}
  - {type: Flatten}
  - {type: Dense, units: 10, activation: softmax}
training:
  dataset: digits
  optimizer: {type: adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy, top_k_accuracy, precision, recall]
  top_k: 2
  batch_size: 32
  epochs: 3
  validation_split: 0.1
  seed: 0
"""


def specc(*args):
    return subprocess.run(
        [sys.executable, "-m", "specc", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def cli(*args):
    """The CLI in this process (the frameworks are imported once for all the tests)."""
    from typer.testing import CliRunner

    from specc.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _train(tmp, backend: str, *extra):
    spec = tmp / "digits.yaml"
    spec.write_text(SPEC)
    out = tmp / f"run-{backend}"
    result = specc("train", spec, "--backend", backend, "--out", out, "--threads", "1", *extra)
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    if not HAS["torch"]:
        pytest.skip("needs torch")
    return _train(tmp_path_factory.mktemp("torch"), "pytorch", "--limit", "900")


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    if not HAS["keras"]:
        pytest.skip("needs keras")
    return _train(tmp_path_factory.mktemp("keras"), "keras")


def _test_set(run_dir, path):
    """The run's test split as raw samples (as the loader gives them) and labels, in an .npz."""
    from specc.data import prepare
    from specc.runner.predict import TrainedRun

    run = TrainedRun(run_dir)
    data = prepare(run.training, run.input_shape, None, limit=run.data["limit"])
    np.savez(path, x=data.x_test_raw, y=data.class_indices(data.y_test))
    return data


def test_complete_metrics_everywhere(torch_run):
    out, result = torch_run
    names = ["loss", "accuracy", "top_2_accuracy", "precision", "recall"]
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == 3
    for name in names:
        assert rows[-1][name] and rows[-1][f"val_{name}"], name
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["test"]) == sorted(names)
    assert sorted(metrics["train"]) == sorted(names) == sorted(metrics["validation"])
    assert metrics["test"]["accuracy"] == metrics["accuracy"]
    assert metrics["test"]["precision"] == metrics["macro_precision"]
    assert metrics["validation"]["top_2_accuracy"] == pytest.approx(
        float(rows[-1]["val_top_2_accuracy"])
    )
    # the final line on stdout names every test metric; progress stays on stderr
    line = result.stdout.strip().splitlines()[-1]
    for name in names:
        assert f"{name} {metrics['test'][name]:.4f}" in line
    assert "epoch 1/3" in result.stderr and "epoch 1/3" not in result.stdout
    data = json.loads((out / "run.json").read_text())["data"]
    assert data["limit"] == 900 and data["validation_split"] == 0.1
    # 900 samples: sklearn's digits split 80/20 -> the first 900 train and 360 test
    assert data["samples"]["train"] + data["samples"]["validation"] == 900


@needs_torch
def test_predict_reproduces_the_test_accuracy(torch_run, tmp_path):
    out, _ = torch_run
    _test_set(out, tmp_path / "test.npz")
    accuracy = json.loads((out / "metrics.json").read_text())["accuracy"]
    engines = ["backend"] + (["onnx"] if HAS["onnxruntime"] else [])
    for engine in engines:
        csv_path = tmp_path / f"{engine}.csv"
        result = cli("predict", out, tmp_path / "test.npz", "--engine", engine, "-o", csv_path)
        assert result.exit_code == 0, result.stderr
        rows = list(csv.DictReader(csv_path.open()))
        correct = sum(r["class"] == r["label"] for r in rows)
        assert correct / len(rows) == accuracy, engine
        assert f"accuracy {accuracy:.4f}" in result.stdout
        confidence = [float(r["confidence"]) for r in rows]
        assert all(0 < c <= 1 for c in confidence)
        assert all(float(r["p1"]) >= float(r["p2"]) >= float(r["p3"]) for r in rows)


@pytest.mark.slow
@needs_torch
def test_predict_images_and_single_samples(torch_run, tmp_path):
    from PIL import Image

    out, _ = torch_run
    data = _test_set(out, tmp_path / "test.npz")
    folder = tmp_path / "images"
    folder.mkdir()
    raw = data.x_test_raw[:3].astype(np.float64).reshape(3, 8, 8)
    for i in range(3):  # 8-bit images of the digits (0..16 -> 0..255)
        Image.fromarray((raw[i] * 255 / 16).round().astype(np.uint8)).save(folder / f"d{i}.png")
    np.save(tmp_path / "one.npy", data.x_test_raw[0])
    images = cli("predict", out, folder, "-f", "json")
    assert images.exit_code == 0, images.stderr
    single = cli("predict", out, tmp_path / "one.npy", "-f", "json")
    assert single.exit_code == 0, single.stderr
    image_rows = json.loads(images.stdout)["predictions"]
    one = json.loads(single.stdout)["predictions"][0]
    assert [r["input"] for r in image_rows] == ["d0.png", "d1.png", "d2.png"]
    assert image_rows[0]["class"] == one["class"]  # the same digit through either route
    assert abs(image_rows[0]["confidence"] - one["confidence"]) < 0.05  # 8-bit rounding only


@needs_torch
def test_predict_refuses_bad_inputs(torch_run, tmp_path):
    out, _ = torch_run
    np.save(tmp_path / "bad.npy", np.zeros((3, 7)))
    result = cli("predict", out, tmp_path / "bad.npy")
    assert result.exit_code == 2
    assert "not samples of shape [8, 8, 1]" in result.stderr and "Traceback" not in result.stderr
    result = cli("predict", tmp_path, tmp_path / "bad.npy")
    assert result.exit_code == 2 and "not a finished specc run" in result.stderr


@needs_torch
def test_evaluate_equals_metrics_json(torch_run):
    out, _ = torch_run
    for engine in ["backend"] + (["onnx"] if HAS["onnxruntime"] else []):
        result = cli("evaluate", out, "--engine", engine, "-f", "json")
        assert result.exit_code == 0, result.stdout + result.stderr
        payload = json.loads(result.stdout)
        recorded = json.loads((out / "metrics.json").read_text())
        assert payload["matches_metrics_json"]
        assert payload["confusion_matrix"] == recorded["confusion_matrix"]
        assert payload["test"]["accuracy"] == recorded["test"]["accuracy"]
        if engine == "backend":
            assert payload["test"]["loss"] == recorded["test"]["loss"]


@pytest.mark.slow
def test_keras_run_predict_and_evaluate(keras_run, tmp_path):
    out, result = keras_run
    assert not any(w in result.stderr for w in ("oneDNN", "absl")), result.stderr
    _test_set(out, tmp_path / "test.npz")
    accuracy = json.loads((out / "metrics.json").read_text())["accuracy"]
    predicted = cli("predict", out, tmp_path / "test.npz", "-f", "json")
    assert predicted.exit_code == 0, predicted.stderr
    assert json.loads(predicted.stdout)["accuracy"] == accuracy
    evaluated = cli("evaluate", out)
    assert evaluated.exit_code == 0, evaluated.stdout + evaluated.stderr
    assert "equal to" in evaluated.stdout


@needs_torch
def test_report_plots_ticks_and_titles(torch_run, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from specc.runner import report

    out, _ = torch_run
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    run = report.load_run(out)
    written = report.draw_run(
        out, tmp_path, run["info"], run["history"], run["metrics"], run["class_names"]
    )
    assert [p.name for p in written] == ["curves.png", "confusion_matrix.png", "predictions.png"]
    curves, confusion, grid = figures
    test_acc = run["metrics"]["test"]["accuracy"]
    title = f"digits_cnn · pytorch · digits · test accuracy {test_acc:.4f}"
    assert curves._suptitle.get_text() == title
    assert confusion._suptitle.get_text().startswith(title)
    assert grid._suptitle.get_text().startswith(title)
    for ax in curves.axes:  # whole epochs only
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks == [1.0, 2.0, 3.0], ticks
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[1].startswith("validation ")  # a split of train, not the test set
        assert labels[2].startswith("test ")
    # counts and the row-normalized view
    counts, normalized = confusion.axes
    assert counts.get_title() == "counts"
    cells = [float(t.get_text()) for t in normalized.texts]
    matrix = np.array(run["metrics"]["confusion_matrix"])
    assert cells == pytest.approx((matrix / matrix.sum(1, keepdims=True)).ravel(), abs=0.0051)
    # most confident mistakes first, each titled with its confidence
    confidences = [
        float(ax.get_title().rsplit(" ", 1)[1].rstrip("%")) for ax in grid.axes if ax.get_title()
    ]
    wrong = sum(c["support"] for c in run["metrics"]["per_class"]) - round(
        run["metrics"]["accuracy"] * run["metrics"]["samples"]
    )
    assert len(confidences) == min(25, wrong)
    assert confidences == sorted(confidences, reverse=True)


@pytest.mark.slow
@needs_torch
def test_report_command_overlays_runs(torch_run, tmp_path):
    out, _ = torch_run
    other = tmp_path / "copy"
    import shutil

    shutil.copytree(out, other)
    result = cli("report", out, other, "-o", tmp_path / "cmp")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "cmp" / "compare_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "cmp" / "copy" / "curves.png").is_file()
    missing = cli("report", tmp_path / "nothing")
    assert missing.exit_code == 2 and "not a specc run folder" in missing.stderr


def test_validation_on_the_test_set_is_called_test(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from specc.runner.report import plot_history

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    history = [{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e} for e in range(1, 8)]
    plot_history(history, tmp_path / "c.png", val_label="test", test={"loss": 0.17})
    (ax,) = figures[0].axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train loss", "test loss"]
    assert all(float(t).is_integer() for t in ax.get_xticks())


@pytest.mark.slow
def test_a_run_remembers_the_data_folder_of_specc_data_dir(tmp_path, data_dir):
    """Trained with $SPECC_DATA_DIR (no --data-dir), a run records that folder, so that
    `specc evaluate` finds the data again in a shell without the variable."""
    if not HAS["torch"]:
        pytest.skip("needs torch")
    import os

    env = {k: v for k, v in os.environ.items() if k != "SPECC_DATA_DIR"}
    out = tmp_path / "run"
    args = [sys.executable, "-m", "specc", "train", "specs/mnist_mlp.json", "--backend",
            "pytorch", "--epochs", "1", "--limit", "300", "--threads", "1", "--out", str(out)]  # fmt: skip
    trained = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                             env={**env, "SPECC_DATA_DIR": str(data_dir)})  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["data_dir"] is None and info["data_env"] == str(Path(data_dir).resolve())
    evaluated = subprocess.run(
        [sys.executable, "-m", "specc", "evaluate", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"equal to {out}/metrics.json" in evaluated.stdout
