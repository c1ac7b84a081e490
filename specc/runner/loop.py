"""The training loop both backends share: batching, schedules, early stopping, history,
atomic checkpoints and resume. A backend only runs one optimizer step on a batch and
predicts; everything that decides *what* happens is here, written once.

Reproducibility: epoch ``e``'s batches come from ``data.batches(batch_size, e)`` (shuffled
and augmented from (seed, e) alone) and the backend is reseeded with ``seed * 1000 + e``, so a resumed run replays exactly what an uninterrupted
run would have done from the next epoch on.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..fsutil import atomic_write_text
from .losses import predicted_classes, probabilities, top_k_accuracy, true_classes

CHECKPOINT_POINTER = "checkpoint.json"


class Backend(Protocol):
    name: str

    def seed(self, seed: int) -> None: ...
    def set_learning_rate(self, lr: float) -> None: ...
    def train_step(self, x, y) -> tuple[float, float]:
        """One optimizer step; returns (mean loss, accuracy) on the batch."""
        ...

    def evaluate(self, x, y, batch_size: int):
        """(outputs, mean loss) in inference mode, the loss as Keras's evaluate computes it."""
        ...

    def snapshot(self) -> object: ...
    def restore(self, snapshot: object) -> None: ...
    def save(self, folder: Path) -> None:
        """Model and optimizer state, into an existing empty folder."""
        ...

    def load(self, folder: Path) -> None: ...


@dataclass
class LoopState:
    """Everything besides the backend's own state that a resumed run needs."""

    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0  # epochs without improvement (early stopping)
    plateau_wait: int = 0
    plateau_best: float | None = None
    lr_factor: float = 1.0  # reduce-on-plateau multiplier
    stopped_early: bool = False
    train_seconds: float = 0.0
    samples_seen: int = 0


def scheduled_lr(training, epoch: int, epochs: int, state: LoopState) -> float:
    """Learning rate for 0-based ``epoch`` under the spec's schedule."""
    base = training.optimizer.learning_rate
    schedule = training.schedule
    if schedule is None:
        return base
    if schedule.type == "step":
        return base * schedule.gamma ** (epoch // schedule.step_epochs)
    if schedule.type == "cosine":
        cosine = 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        return base * ((1 - schedule.alpha) * cosine + schedule.alpha)
    return max(base * state.lr_factor, schedule.min_lr)


def evaluate(backend: Backend, x, y, training, batch_size: int) -> dict:
    """Loss (the backend's, as Keras's evaluate) and metrics (numpy) on a data split."""
    outputs, loss = backend.evaluate(x, y, batch_size)
    probs = probabilities(outputs, training.loss, training.from_logits)
    result = {"loss": loss}
    if training.loss != "mse":
        predicted = predicted_classes(probs)
        truth = true_classes(y)
        if "accuracy" in training.metrics:
            result["accuracy"] = float((predicted == truth).mean())
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


class Progress:
    """A one-line progress bar per epoch on a terminal; one summary line per epoch otherwise."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def batch(self, epoch: int, epochs: int, done: int, total: int, loss: float) -> None:
        if not self.tty:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "=" * filled + "." * (width - filled)
        self.stream.write(f"\repoch {epoch}/{epochs} [{bar}] {done}/{total} loss {loss:.4f}")
        self.stream.flush()

    def epoch(self, row: dict, epochs: int) -> None:
        if not self.enabled:
            return
        parts = [
            f"{k} {v:.4f}"
            for k, v in row.items()
            if k not in ("epoch", "seconds", "lr") and v is not None
        ]
        end = "\r\x1b[K" if self.tty else ""
        self.stream.write(
            f"{end}epoch {row['epoch']}/{epochs}: "
            + ", ".join(parts)
            + f" ({row['seconds']:.1f} s)\n"
        )
        self.stream.flush()


def save_checkpoint(out_dir: Path, backend: Backend, state: LoopState) -> None:
    """Write a complete checkpoint folder, then switch the pointer file to it atomically.

    A kill at any moment leaves the pointer naming the previous complete checkpoint.
    """
    folder = out_dir / f"checkpoint-{state.epoch:04d}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    backend.save(folder)
    atomic_write_text(folder / "loop.json", json.dumps(state.__dict__, indent=2))
    atomic_write_text(
        out_dir / CHECKPOINT_POINTER,
        json.dumps({"folder": folder.name, "epoch": state.epoch}) + "\n",
    )
    for old in out_dir.glob("checkpoint-*"):
        if old.is_dir() and old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out_dir: Path, backend: Backend) -> LoopState | None:
    pointer = out_dir / CHECKPOINT_POINTER
    if not pointer.exists():
        return None
    folder = out_dir / json.loads(pointer.read_text())["folder"]
    backend.load(folder)
    return LoopState(**json.loads((folder / "loop.json").read_text()))


def fit(
    backend: Backend,
    data,
    training,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    out_dir: Path,
    resume: bool = False,
    progress: Progress | None = None,
) -> LoopState:
    """Train for ``epochs`` (total, counting resumed ones); returns the final loop state.

    ``data`` is a ``specc.data.Prepared`` (or anything with x_train, x_val, y_val and
    ``batches(batch_size, epoch)``).
    """
    progress = progress or Progress(enabled=False)
    # data parallel (specc.runner.distributed): only rank 0 reads and writes out_dir; it
    # shares the resumed state and the validation results with the other ranks
    comm = getattr(backend, "comm", None)
    main = comm is None or comm.is_main
    state = (load_checkpoint(out_dir, backend) if resume and main else None) or LoopState()
    if comm is not None:
        state = backend.share(state)
    monitor_spec = training.early_stopping
    plateau = (
        training.schedule
        if training.schedule and training.schedule.type == "reduce_on_plateau"
        else None
    )
    n = len(data.x_train)
    has_val = data.x_val is not None and len(data.x_val) > 0
    while state.epoch < epochs and not state.stopped_early:
        epoch = state.epoch
        lr = scheduled_lr(training, epoch, epochs, state)
        backend.set_learning_rate(lr)
        backend.seed(seed * 1000 + epoch)
        started = time.perf_counter()
        total_loss = total_acc = 0.0
        seen = 0
        steps = math.ceil(n / batch_size)
        # shuffled and augmented from (seed, epoch) alone: a resumed run sees the same batches
        for step, (xb, yb) in enumerate(data.batches(batch_size, epoch), 1):
            loss, acc = backend.train_step(xb, yb)
            total_loss += loss * len(xb)
            total_acc += acc * len(xb)
            seen += len(xb)
            progress.batch(epoch + 1, epochs, step, steps, total_loss / seen)
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "loss": total_loss / seen}
        if training.loss != "mse":
            row["accuracy"] = total_acc / seen
        if has_val:
            val = evaluate(backend, data.x_val, data.y_val, training, batch_size) if main else None
            if comm is not None:
                val = comm.broadcast_object(val)
            for key, value in val.items():
                row[f"val_{key}"] = value
        row["lr"] = lr
        row["seconds"] = seconds
        state.history.append(row)
        state.train_seconds += seconds
        state.samples_seen += n
        state.epoch += 1
        progress.epoch(row, epochs)

        if plateau is not None:
            value = row.get(plateau.monitor)
            better = value is not None and (
                state.plateau_best is None
                or _improved(plateau.monitor, value, state.plateau_best, 0.0)
            )
            if better:
                state.plateau_best, state.plateau_wait = value, 0
            else:
                state.plateau_wait += 1
                if state.plateau_wait >= plateau.patience:
                    state.lr_factor *= plateau.factor
                    state.plateau_wait = 0
        if monitor_spec is not None:
            value = row.get(monitor_spec.monitor)
            if value is not None and (
                state.best is None
                or _improved(monitor_spec.monitor, value, state.best, monitor_spec.min_delta)
            ):
                state.best, state.best_epoch, state.wait = value, state.epoch, 0
                if monitor_spec.restore_best_weights and main:
                    best_dir = out_dir / "best"
                    if best_dir.exists():
                        shutil.rmtree(best_dir)
                    best_dir.mkdir(parents=True)
                    backend.save(best_dir)
            else:
                state.wait += 1
                if state.wait >= monitor_spec.patience:
                    state.stopped_early = True
        if main:
            save_checkpoint(out_dir, backend, state)

    # as Keras 3's EarlyStopping: the best weights come back at the end of training,
    # whether or not it stopped early
    if (
        monitor_spec is not None
        and monitor_spec.restore_best_weights
        and main
        and (out_dir / "best").exists()
    ):
        backend.load(out_dir / "best")
    return state


def _improved(monitor: str, value: float, best: float, min_delta: float) -> bool:
    if "loss" in monitor:
        return value < best - min_delta
    return value > best + min_delta
