"""What a training run leaves behind, framework-free: metrics, history files and plots.

Everything here takes numpy arrays and plain lists, so the Keras and PyTorch runners
produce byte-for-byte the same kind of report.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..fsutil import atomic_write_text


def confusion_matrix(y_true, y_pred, num_classes: int):
    """counts[i, j] = samples of true class i predicted as class j."""
    import numpy as np

    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def classification_metrics(y_true, y_pred, class_names: list[str]) -> dict:
    """Accuracy, per-class precision / recall / F1 / support, macro averages, confusion matrix.

    A class never predicted has precision 0 (as scikit-learn's zero_division=0).
    """
    counts = confusion_matrix(y_true, y_pred, len(class_names))
    total = int(counts.sum())
    correct = int(counts.trace())
    per_class = []
    for k, name in enumerate(class_names):
        tp = int(counts[k, k])
        predicted = int(counts[:, k].sum())
        actual = int(counts[k, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {"class": name, "precision": precision, "recall": recall, "f1": f1, "support": actual}
        )
    n = len(per_class) or 1
    return {
        "accuracy": correct / total if total else 0.0,
        "samples": total,
        "macro_precision": sum(c["precision"] for c in per_class) / n,
        "macro_recall": sum(c["recall"] for c in per_class) / n,
        "macro_f1": sum(c["f1"] for c in per_class) / n,
        "per_class": per_class,
        "confusion_matrix": counts.tolist(),
    }


def _clean(value):
    """JSON cannot hold NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_history(out_dir: str | Path, history: list[dict]) -> None:
    """history.csv and history.json: one row per epoch (epoch, loss, accuracy, val_loss, ...)."""
    out_dir = Path(out_dir)
    columns: list[str] = []
    for row in history:
        for key in row:
            if key not in columns:
                columns.append(key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _clean(v) for k, v in row.items()})
    atomic_write_text(out_dir / "history.csv", buffer.getvalue())
    rows = [{k: _clean(v) for k, v in row.items()} for row in history]
    atomic_write_text(out_dir / "history.json", json.dumps(rows, indent=2) + "\n")


def write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_clean) + "\n")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    # no timestamp in the PNG: the same run gives the same bytes
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    from ..fsutil import atomic_write_bytes

    atomic_write_bytes(path, buffer.getvalue())


def plot_history(history: list[dict], path: str | Path) -> None:
    """Training and validation curves: one panel per metric (loss, accuracy, ...)."""
    plt = _pyplot()
    metrics = [k for k in history[0] if k != "epoch" and not k.startswith("val_") and k != "lr"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, [row.get(metric) for row in history], marker="o", label=f"train {metric}")
        if any(f"val_{metric}" in row for row in history):
            values = [row.get(f"val_{metric}") for row in history]
            ax.plot(epochs, values, marker="o", label=f"validation {metric}")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def plot_confusion(matrix, class_names: list[str], path: str | Path) -> None:
    plt = _pyplot()
    import numpy as np

    matrix = np.asarray(matrix)
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > threshold else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=color, fontsize=8)
    ax.set_title("confusion matrix (test set)")
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def plot_predictions(
    images, y_true, y_pred, class_names: list[str], path: str | Path, count: int = 25
) -> None:
    """A grid of test images titled 'pred (true)'; wrong predictions in red."""
    plt = _pyplot()
    import numpy as np

    images = np.asarray(images)[:count]
    cols = int(math.ceil(math.sqrt(len(images)))) or 1
    rows = int(math.ceil(len(images) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, image in enumerate(images):
        ax = axes.ravel()[k]
        image = image.astype("float32")
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else image * 0
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ok = int(y_true[k]) == int(y_pred[k])
        ax.set_title(
            f"{class_names[int(y_pred[k])]} ({class_names[int(y_true[k])]})",
            fontsize=8,
            color="black" if ok else "red",
        )
    fig.suptitle("predicted (true)")
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)
