"""The run report: metrics equal scikit-learn's, history files, plots."""

from __future__ import annotations

import csv
import json

import pytest

np = pytest.importorskip("numpy")

from specc.runner.report import (  # noqa: E402
    classification_metrics,
    confusion_matrix,
    plot_confusion,
    plot_history,
    plot_predictions,
    write_history,
)


def test_confusion_matrix_by_hand():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_metrics_equal_scikit_learn():
    metrics_module = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 5, 500))
    y_pred[y_pred == 4] = 3  # class 4 never predicted: precision 0 by convention
    names = [f"c{k}" for k in range(5)]
    ours = classification_metrics(y_true, y_pred, names)
    p, r, f, s = metrics_module.precision_recall_fscore_support(
        y_true, y_pred, labels=range(5), zero_division=0
    )
    assert ours["accuracy"] == pytest.approx(metrics_module.accuracy_score(y_true, y_pred))
    assert [c["precision"] for c in ours["per_class"]] == pytest.approx(p.tolist())
    assert [c["recall"] for c in ours["per_class"]] == pytest.approx(r.tolist())
    assert [c["f1"] for c in ours["per_class"]] == pytest.approx(f.tolist())
    assert [c["support"] for c in ours["per_class"]] == s.tolist()
    assert ours["macro_f1"] == pytest.approx(f.mean())
    cm = metrics_module.confusion_matrix(y_true, y_pred, labels=range(5))
    assert ours["confusion_matrix"] == cm.tolist()


def test_history_files(tmp_path):
    history = [
        {"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.85},
        {"epoch": 2, "loss": 0.3, "accuracy": 0.9, "val_loss": float("nan"), "val_accuracy": 0.9},
    ]
    write_history(tmp_path, history)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [r["loss"] for r in rows] == ["0.5", "0.3"]
    data = json.loads((tmp_path / "history.json").read_text())
    assert data[1]["val_loss"] is None and data[0]["val_accuracy"] == 0.85


@pytest.mark.slow
def test_plots_are_pngs_and_deterministic(tmp_path):
    pytest.importorskip("matplotlib")
    history = [
        {"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1), "val_loss": 1.1 / e}
        for e in (1, 2, 3)
    ]
    plot_history(history, tmp_path / "a.png")
    plot_history(history, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    plot_confusion([[5, 1], [2, 7]], ["cat", "dog"], tmp_path / "cm.png")
    images = np.random.default_rng(0).integers(0, 255, (9, 28, 28, 1), dtype=np.uint8)
    plot_predictions(images, [0] * 9, [0, 1] * 4 + [0], ["cat", "dog"], tmp_path / "grid.png")
    assert (tmp_path / "cm.png").stat().st_size > 1000 and (
        tmp_path / "grid.png"
    ).stat().st_size > 1000


def test_requested_metrics_on_a_split_by_hand():
    from types import SimpleNamespace

    from specc.runner.results import metric_names, result_line, split_metrics

    training = SimpleNamespace(
        loss="sparse_categorical_crossentropy",
        from_logits=False,
        metrics=["accuracy", "top_k_accuracy", "precision", "recall"],
        top_k=2,
    )
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.5, 0.3]])
    y = np.array([0, 1, 1, 1])  # predicted 0, 2, 0, 1: correct 1st and 4th
    got = split_metrics(probs, 0.25, y, training)
    assert metric_names(training) == ["loss", "accuracy", "top_2_accuracy", "precision", "recall"]
    assert got["loss"] == 0.25 and got["accuracy"] == 0.5
    assert got["top_2_accuracy"] == 1.0  # class 1 is in every sample's top 2 where true
    # precision per class: 0 -> 1/2, 1 -> 1/1, 2 -> 0/1; recall: 0 -> 1/1, 1 -> 1/3, 2 -> 0
    assert got["precision"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert got["recall"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    line = result_line({"test": got}, "runs/x")
    assert line == (
        "test loss 0.2500, accuracy 0.5000, top_2_accuracy 1.0000, precision 0.5000, "
        "recall 0.4444; wrote runs/x/"
    )


def test_most_confident_mistakes_order():
    from specc.runner.report import most_confident_mistakes

    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    truth = np.array([0, 0, 0, 1, 1])  # wrong: 1 (0.6), 2 (0.8), 3 (0.6)
    assert most_confident_mistakes(truth, probs).tolist() == [2, 1, 3]
    assert most_confident_mistakes(truth, probs, count=1).tolist() == [2]
