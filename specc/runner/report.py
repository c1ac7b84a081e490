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


def finite_json(data):
    """``data`` with every NaN/inf float (at any depth) as None: JSON has no such numbers,
    and json.dumps would write the non-standard NaN/Infinity that strict readers refuse."""
    if isinstance(data, float):
        return _clean(data)
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path: str | Path, data) -> None:
    text = json.dumps(finite_json(data), indent=2, sort_keys=True, default=_clean)
    atomic_write_text(path, text + "\n")


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


def _epoch_ticks(ax) -> None:
    """Whole epochs only on the x axis (no 1.5)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_history(
    history: list[dict],
    path: str | Path,
    *,
    title: str | None = None,
    val_label: str = "validation",
    test: dict | None = None,
) -> None:
    """Training and validation curves, one panel per metric (loss, accuracy, ...); the
    final test value of each metric as a star at the last epoch. ``val_label`` is "test"
    when the validation split is the test set."""
    plt = _pyplot()
    metrics = [
        k for k in history[0] if k not in ("epoch", "lr", "seconds") and not k.startswith("val_")
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, [row.get(metric) for row in history], marker="o", label=f"train {metric}")
        if any(f"val_{metric}" in row for row in history):
            values = [row.get(f"val_{metric}") for row in history]
            ax.plot(epochs, values, marker="o", label=f"{val_label} {metric}")
        if test and test.get(metric) is not None and val_label != "test":
            ax.plot(
                [epochs[-1]], [test[metric]], marker="*", markersize=12, linestyle="none",
                label=f"test {metric} {test[metric]:.4f}",
            )  # fmt: skip
        ax.set_xlabel("epoch")
        _epoch_ticks(ax)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def plot_confusion(
    matrix, class_names: list[str], path: str | Path, *, title: str | None = None
) -> None:
    """Two panels: the counts, and each row divided by its total (the recall of each
    true class on the diagonal)."""
    plt = _pyplot()
    import numpy as np

    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size + 0.4))
    panels = (
        (axes[0], matrix, "counts", lambda v: str(int(v))),
        (axes[1], normalized, "normalized by true class (rows sum to 1)", lambda v: f"{v:.2f}"),
    )
    for ax, values, name, fmt in panels:
        ax.imshow(values, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
        ax.set_yticks(range(len(class_names)), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        threshold = values.max() / 2 if values.size else 0
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                color = "white" if values[i, j] > threshold else "black"
                ax.text(j, i, fmt(values[i, j]), ha="center", va="center", color=color, fontsize=7)
        ax.set_title(name, fontsize=10)
    fig.suptitle(title or "confusion matrix (test set)")
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def most_confident_mistakes(truth, probs, count: int = 25):
    """Indices of the wrong predictions, most confident first (ties: lower index first)."""
    import numpy as np

    from .losses import predicted_classes

    probs = np.asarray(probs)
    predicted = predicted_classes(probs)
    confidence = _confidence(probs)
    wrong = np.flatnonzero(predicted != np.asarray(truth))
    order = np.lexsort((wrong, -confidence[wrong]))
    return wrong[order][:count]


def _confidence(probs):
    """Probability of the predicted class (one sigmoid unit: of the predicted side)."""
    import numpy as np

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1 or probs.shape[-1] == 1:
        p = probs.reshape(-1)
        return np.where(p > 0.5, p, 1 - p)
    return probs.max(axis=-1)


def plot_predictions(
    images,
    y_true,
    y_pred,
    class_names: list[str],
    path: str | Path,
    count: int = 25,
    *,
    confidence=None,
    title: str | None = None,
) -> None:
    """A grid of images titled 'pred (true)' (with the confidence when given); wrong
    predictions in red."""
    plt = _pyplot()
    import numpy as np

    images = np.asarray(images)[:count]
    cols = int(math.ceil(math.sqrt(len(images)))) or 1
    rows = int(math.ceil(len(images) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows + 0.5), squeeze=False)
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
        label = f"{class_names[int(y_pred[k])]} ({class_names[int(y_true[k])]})"
        if confidence is not None:
            label += f" {float(confidence[k]):.0%}"
        ax.set_title(label, fontsize=8, color="black" if ok else "red")
    if not len(images):
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(title or "predicted (true)")
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


# --------------------------------------------------------------------------- run reports

PREDICTIONS_FILE = "test_predictions.npz"


def run_title(info: dict, metrics: dict) -> str:
    """'<model> · <backend>[ bf16] · <dataset> · test accuracy 0.9722' (loss for regression)."""
    backend = info.get("backend", "?")
    if info.get("precision") not in (None, "fp32"):
        backend += f" {info['precision']}"
    test = metrics.get("test") or {}

    def shown(value) -> str:  # metrics.json writes a NaN loss (a diverged run) as null
        return f"{value:.4f}" if isinstance(value, (int, float)) else "nan"

    if "accuracy" in test or "accuracy" in metrics:
        final = f"test accuracy {shown(test.get('accuracy', metrics.get('accuracy')))}"
    else:
        final = f"test loss {shown(test.get('loss', metrics.get('test_loss')))}"
    return f"{info.get('model', '?')} · {backend} · {info.get('dataset', '?')} · {final}"


def write_report(
    out_dir, model_name, backend, data, training, history, metrics, outputs, precision="fp32"
) -> None:
    """The run's plots and ``test_predictions.npz`` (what `specc report` redraws them from)."""
    import numpy as np

    from .losses import probabilities

    out_dir = Path(out_dir)
    info = {"model": model_name, "backend": backend, "dataset": data.dataset}
    info["precision"] = precision
    validation = data.normalization.get("validation")
    payload: dict = {"validation": np.array(validation or "")}
    if training.loss != "mse":
        probs = probabilities(outputs, training.loss, training.from_logits).astype(np.float32)
        truth = data.class_indices(data.y_test)
        payload.update(probabilities=probs, truth=np.asarray(truth, np.int64))
        if len(data.sample_shape) in (2, 3):
            chosen = most_confident_mistakes(truth, probs)
            raw = data.x_test_raw if data.x_test_raw is not None else data.x_test
            payload["mistake_indices"] = chosen
            payload["mistake_images"] = np.asarray(raw)[chosen].reshape(
                (len(chosen), *data.sample_shape)
            )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **payload)
    from ..fsutil import atomic_write_bytes

    atomic_write_bytes(out_dir / PREDICTIONS_FILE, buffer.getvalue())
    draw_run(out_dir, out_dir, info, history, metrics, data.class_names)


def draw_run(run_dir, out_dir, info, history, metrics, class_names) -> list[Path]:
    """curves.png, confusion_matrix.png, predictions.png of one run into ``out_dir``."""
    import numpy as np

    from .losses import predicted_classes

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    title = run_title(info, metrics)
    written = []
    saved = {}
    if (run_dir / PREDICTIONS_FILE).is_file():
        import zipfile

        try:
            with np.load(run_dir / PREDICTIONS_FILE, allow_pickle=False) as npz:
                saved = {k: npz[k] for k in npz.files}
        except (OSError, EOFError, zipfile.BadZipFile) as exc:  # truncated: one line
            raise ValueError(f"{run_dir / PREDICTIONS_FILE}: cannot read ({exc})") from None
    val_label = "test" if str(saved.get("validation", "")) == "test" else "validation"
    if history:
        plot_history(
            history, out_dir / "curves.png", title=title, val_label=val_label,
            test=metrics.get("test"),
        )  # fmt: skip
        written.append(out_dir / "curves.png")
    if "confusion_matrix" in metrics:
        plot_confusion(
            metrics["confusion_matrix"], class_names, out_dir / "confusion_matrix.png",
            title=f"{title}\nconfusion matrix, test set ({metrics.get('samples', '?')} samples)",
        )  # fmt: skip
        written.append(out_dir / "confusion_matrix.png")
    if "mistake_images" in saved:
        chosen = saved["mistake_indices"]
        probs = saved["probabilities"][chosen]
        wrong = int((predicted_classes(saved["probabilities"]) != saved["truth"]).sum())
        plot_predictions(
            saved["mistake_images"], saved["truth"][chosen], predicted_classes(probs),
            class_names, out_dir / "predictions.png", confidence=_confidence(probs),
            title=f"{title}\n"
            + (
                f"the {len(chosen)} most confident of {wrong} test mistakes"
                if len(chosen) < wrong
                else f"all {wrong} test mistakes, most confident first"
            )
            + ": predicted (true) confidence",
        )  # fmt: skip
        written.append(out_dir / "predictions.png")
    return written


def load_run(run_dir) -> dict:
    """run.json, metrics.json and history.json of a run folder (what `specc report` needs)."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a specc run folder (no metrics.json)")

    def read(name: str, kind: type, empty):
        path = run_dir / name
        if not path.is_file():
            return empty
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            raise ValueError(f"{path}: JSON nested too deeply") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if data is None:
            return empty
        if not isinstance(data, kind) or (
            kind is list and not all(isinstance(row, dict) for row in data)
        ):
            shape = "a JSON object" if kind is dict else "a list of epoch records"
            got = type(data).__name__
            if kind is list and isinstance(data, list):
                got = "a list of " + ", ".join(sorted({type(row).__name__ for row in data}))
            raise ValueError(f"{path}: expected {shape}, got {got}")
        return data

    info = read("run.json", dict, {})
    metrics = read("metrics.json", dict, {})
    history = read("history.json", list, [])
    data = info.get("data")
    per_class = metrics.get("per_class")
    class_names = (data.get("class_names") if isinstance(data, dict) else None) or [
        c["class"]
        for c in (per_class if isinstance(per_class, list) else [])
        if isinstance(c, dict) and "class" in c
    ]
    return {"dir": run_dir, "info": info, "metrics": metrics, "history": history,
            "class_names": class_names}  # fmt: skip


def run_label(run: dict, others: list[dict]) -> str:
    """A short name for a run in an overlay: what differs (backend, precision), else its folder."""
    info = run["info"]
    label = info.get("backend", "?")
    if info.get("precision") not in (None, "fp32") or any(
        o["info"].get("precision") not in (None, "fp32") for o in others
    ):
        label += f" {info.get('precision', 'fp32')}"
    labels = [o["info"].get("backend", "?") for o in others]
    if labels.count(info.get("backend", "?")) > 1 and not any(
        o["info"].get("precision") not in (None, "fp32") for o in others
    ):
        label = run["dir"].name
    return label


def plot_overlay(runs: list[dict], path: str | Path) -> None:
    """Every run's train and validation curves on shared panels, one colour per run."""
    plt = _pyplot()
    metrics: list[str] = []
    for run in runs:
        for row in run["history"][:1]:
            for k in row:
                if k not in ("epoch", "lr", "seconds") and not k.startswith("val_"):
                    if k not in metrics:
                        metrics.append(k)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics):
        for k, run in enumerate(runs):
            history = run["history"]
            epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
            label = run_label(run, runs)
            color = colors[k % len(colors)]
            ax.plot(epochs, [row.get(metric) for row in history], color=color, marker="o",
                    markersize=3, label=f"{label} train")  # fmt: skip
            if any(f"val_{metric}" in row for row in history):
                ax.plot(epochs, [row.get(f"val_{metric}") for row in history], color=color,
                        linestyle="--", marker="s", markersize=3, label=f"{label} validation")  # fmt: skip
        ax.set_xlabel("epoch")
        _epoch_ticks(ax)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    names = sorted({run["info"].get("model", "?") for run in runs})
    datasets = sorted({run["info"].get("dataset", "?") for run in runs})
    finals = ", ".join(
        f"{run_label(run, runs)} {run_title(run['info'], run['metrics']).rsplit(' · ', 1)[-1]}"
        for run in runs
    )
    fig.suptitle(f"{' / '.join(names)} · {' / '.join(datasets)} · {finals}", fontsize=10)
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)
