"""The numbers a run reports, computed one way for training, `specc evaluate` and the
final line: every metric the spec requests, for train, validation and test.

Metric names are the spec's (``accuracy``, ``top_<k>_accuracy``, ``precision``, ``recall``,
the last two macro-averaged over classes) plus ``loss``; ``history.csv`` prefixes the
validation ones with ``val_``, ``metrics.json`` groups them under ``train``, ``validation``
and ``test``.
"""

from __future__ import annotations

from pathlib import Path

from .losses import predicted_classes, probabilities, top_k_accuracy, true_classes


def metric_names(training) -> list[str]:
    """The requested metrics, as history columns name them (``loss`` first)."""
    names = ["loss"]
    if training.loss == "mse":
        return names
    for metric in training.metrics:
        names.append(f"top_{training.top_k}_accuracy" if metric == "top_k_accuracy" else metric)
    return names


def split_metrics(outputs, loss: float, y, training) -> dict:
    """Loss (the backend's, as Keras's evaluate) and every requested metric on one split."""
    result = {"loss": float(loss)}
    if training.loss == "mse":
        return result
    probs = probabilities(outputs, training.loss, training.from_logits)
    predicted = predicted_classes(probs)
    truth = true_classes(y)
    if "accuracy" in training.metrics:
        result["accuracy"] = float((predicted == truth).mean()) if len(truth) else 0.0
    if "top_k_accuracy" in training.metrics:
        result[f"top_{training.top_k}_accuracy"] = top_k_accuracy(y, probs, training.top_k)
    if "precision" in training.metrics or "recall" in training.metrics:
        from .report import classification_metrics

        classes = max(int(truth.max()), int(predicted.max())) + 1 if len(truth) else 1
        if probs.ndim == 2 and probs.shape[-1] > 1:
            classes = probs.shape[-1]
        metrics = classification_metrics(truth, predicted, [str(k) for k in range(classes)])
        if "precision" in training.metrics:
            result["precision"] = metrics["macro_precision"]
        if "recall" in training.metrics:
            result["recall"] = metrics["macro_recall"]
    return result


def report_test_split(outputs, loss: float, y_test, data, training) -> dict:
    """metrics.json's test part: ``test_loss``, the classification report (accuracy,
    per-class precision/recall/F1, confusion matrix) and ``test`` with every requested
    metric."""
    from .report import classification_metrics

    metrics: dict = {"test_loss": float(loss)}
    if training.loss != "mse":
        probs = probabilities(outputs, training.loss, training.from_logits)
        metrics.update(
            classification_metrics(
                data.class_indices(y_test), predicted_classes(probs), data.class_names
            )
        )
    metrics["test"] = split_metrics(outputs, loss, y_test, training)
    return metrics


def final_epoch_metrics(history: list[dict], training) -> dict:
    """``train`` and ``validation`` parts of metrics.json: the last epoch's values."""
    if not history:
        return {}
    last = history[-1]
    names = metric_names(training)
    out = {"train": {k: last[k] for k in names if last.get(k) is not None}}
    validation = {k: last[f"val_{k}"] for k in names if last.get(f"val_{k}") is not None}
    if validation:
        out["validation"] = validation
    return out


def result_line(metrics: dict, out_dir: str | Path | None = None) -> str:
    """The run's result in one line: every test metric (stdout), then where it was written."""
    test = metrics.get("test") or {"loss": metrics.get("test_loss")}
    parts = [f"{name} {value:.4f}" for name, value in test.items() if value is not None]
    line = "test " + ", ".join(parts)
    if out_dir is not None:
        line += f"; wrote {out_dir}/"
    return line


def data_record(options, training, data) -> dict:
    """What run.json records about the data: every option that changes it, so `specc
    evaluate`, `specc predict` and `crosscheck --run` see exactly the run's data."""
    return {
        "limit": options.limit,
        "validation_split": training.validation_split,
        "validation": data.normalization.get("validation"),
        "samples": {
            "train": len(data.x_train),
            "validation": 0 if data.x_val is None else len(data.x_val),
            "test": len(data.x_test),
        },
        "input_shape": list(data.input_shape),
        "sample_shape": list(data.sample_shape),
        "class_names": list(data.class_names),
        "training": training.model_dump(mode="json"),
    }
