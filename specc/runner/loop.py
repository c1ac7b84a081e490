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
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..fsutil import WriteError, atomic_write_text, fsync_tree, reason_of
from .progress import Progress  # noqa: F401  (re-exported: the loop's progress hooks)
from .runfolder import RunDamaged, RunFolder, read_json

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
    def rng_state(self) -> object:
        """The random state of every source the backend draws from (Dropout included)."""
        ...

    def set_rng_state(self, state: object) -> None: ...


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
    # inside an epoch (a checkpoint written on Ctrl-C at the end of a step): steps done and
    # the running sums of the epoch so far; 0 at an epoch boundary
    step: int = 0
    epoch_loss: float = 0.0
    epoch_acc: float = 0.0
    epoch_seen: int = 0
    epoch_seconds: float = 0.0


class Interrupted(Exception):
    """Ctrl-C during training: a checkpoint was saved at the end of the current step."""

    def __init__(self, state: LoopState, folder: Path):
        super().__init__(f"interrupted at epoch {state.epoch + 1}, step {state.step}")
        self.state = state
        self.folder = folder


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
    """Loss (the backend's, as Keras's evaluate) and every requested metric on a data split."""
    from .results import split_metrics

    outputs, loss = backend.evaluate(x, y, batch_size)
    return split_metrics(outputs, loss, y, training)


def _as_folder(out_dir) -> RunFolder:
    if isinstance(out_dir, RunFolder):
        return out_dir
    folder = RunFolder(out_dir)  # unlocked: for callers that manage the folder themselves
    folder.path.mkdir(parents=True, exist_ok=True)
    folder._load_manifest()
    return folder


def save_checkpoint(out_dir, backend: Backend, state: LoopState) -> Path:
    """Write a complete checkpoint folder, then switch the pointer file to it atomically.

    A kill at any moment leaves the pointer naming the previous complete checkpoint; a
    write that fails (full disk, read-only folder) removes its partial folder and raises
    ``WriteError``, leaving the previous checkpoint as it was. Only checkpoint folders that
    specc recorded in the run folder's manifest are ever deleted.
    """
    run = _as_folder(out_dir)
    name = f"checkpoint-{state.epoch:04d}" + (f"-step{state.step:06d}" if state.step else "")
    folder = run.path / name
    run.remove(name)  # a leftover of ours from an earlier failed attempt
    run.claim(name)
    try:
        folder.mkdir(parents=True)
        backend.save(folder)
        atomic_write_text(folder / "loop.json", json.dumps(state.__dict__, indent=2))
        fsync_tree(folder)
        atomic_write_text(
            run.path / CHECKPOINT_POINTER,
            json.dumps({"folder": name, "epoch": state.epoch, "step": state.step}) + "\n",
        )
    except OSError as exc:
        run.remove(name)
        if isinstance(exc, WriteError):
            raise
        raise WriteError(folder, reason_of(exc)) from None
    except BaseException as exc:
        run.remove(name)
        cause = _os_error_in(exc)
        if cause is not None:  # a framework wrapped the full disk in its own exception
            raise WriteError(folder, reason_of(cause)) from None
        raise
    for old in sorted(run.owned):
        if old.startswith("checkpoint-") and old != name:
            run.remove(old)
    return folder


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (itself, its cause or context), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def checkpoint_info(out_dir: Path) -> dict | None:
    """The pointer file's content, None when there is no checkpoint; RunDamaged if unreadable."""
    pointer = Path(out_dir) / CHECKPOINT_POINTER
    if not pointer.exists():
        return None
    info = read_json(pointer, "a checkpoint pointer")
    name = info.get("folder")
    if (
        not isinstance(name, str)
        or "/" in name
        or "\\" in name
        or not name.startswith("checkpoint-")
    ):
        raise RunDamaged(pointer, f"names no checkpoint folder ({name!r})")
    return info


def read_loop_state(path: Path) -> LoopState:
    """A checkpoint's loop.json, every field of the type it must have, or RunDamaged."""
    data = read_json(path, "the loop state")
    defaults = LoopState().__dict__
    unknown = sorted(set(data) - set(defaults))
    if unknown:
        raise RunDamaged(path, f"unknown field(s) {', '.join(unknown)}")
    for key, value in data.items():
        default = defaults[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif isinstance(default, float) or default is None:
            ok = (value is None and default is None) or (
                isinstance(value, (int, float)) and not isinstance(value, bool)
            )
        else:  # history: a list of rows
            ok = isinstance(value, list) and all(isinstance(row, dict) for row in value)
        if not ok:
            raise RunDamaged(path, f"{key} is {value!r}, not a valid value")
    if len(data.get("history", [])) != data.get("epoch", 0):
        raise RunDamaged(path, "its history does not match its epoch count")
    return LoopState(**data)


def load_checkpoint(out_dir: Path, backend: Backend) -> LoopState | None:
    """The loop state of the last checkpoint, with the backend restored to it; None when
    there is none; ``RunDamaged`` when any of its files cannot be read back."""
    out_dir = Path(out_dir.path if isinstance(out_dir, RunFolder) else out_dir)
    info = checkpoint_info(out_dir)
    if info is None:
        return None
    folder = out_dir / info["folder"]
    if not folder.is_dir():
        raise RunDamaged(out_dir / CHECKPOINT_POINTER, f"its folder {folder.name} is missing")
    state = read_loop_state(folder / "loop.json")
    try:
        backend.load(folder)
    except RunDamaged:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a framework's own error for a corrupt or empty file
        files = sorted(p.name for p in folder.iterdir() if p.name != "loop.json")
        where = folder / files[0] if len(files) == 1 else folder
        missing = getattr(exc, "filename", None)
        if isinstance(exc, FileNotFoundError) and missing:
            where, reason = Path(missing), "the file is missing"
        else:
            text = str(exc).strip()
            reason = text.splitlines()[0][:200] if text else type(exc).__name__
            if where.is_file() and where.stat().st_size == 0:
                reason = "empty file"
        raise RunDamaged(where, f"cannot be loaded ({reason})") from None
    return state


class _InterruptFlag:
    """SIGINT sets a flag (the loop saves at the end of the step); a second one aborts."""

    def __init__(self):
        self.set = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:  # a second Ctrl-C: stop now (the last checkpoint stays valid)
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


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
    state: LoopState | None = None,
) -> LoopState:
    """Train for ``epochs`` (total, counting resumed ones); returns the final loop state.

    ``data`` is a ``specc.data.Prepared`` (or anything with x_train, x_val, y_val and
    ``batches(batch_size, epoch)``).
    """
    progress = progress or Progress(enabled=False)
    run = _as_folder(out_dir)
    if state is None:  # ``state``: a checkpoint the caller already loaded into ``backend``
        state = (load_checkpoint(run.path, backend) if resume else None) or LoopState()
    monitor_spec = training.early_stopping
    plateau = (
        training.schedule
        if training.schedule and training.schedule.type == "reduce_on_plateau"
        else None
    )
    n = len(data.x_train)
    has_val = data.x_val is not None and len(data.x_val) > 0
    with _InterruptFlag() as interrupt:
        state = _epochs(
            backend, data, training, state, run, epochs, batch_size, seed, progress,
            interrupt, monitor_spec, plateau, n, has_val,
        )  # fmt: skip
    # as Keras 3's EarlyStopping: the best weights come back at the end of training,
    # whether or not it stopped early
    if (
        monitor_spec is not None
        and monitor_spec.restore_best_weights
        and run.owns("best")
        and (run.path / "best").exists()
    ):
        try:
            backend.load(run.path / "best")
        except Exception as exc:
            raise RunDamaged(run.path / "best", f"cannot be loaded ({exc})") from None
    return state


def _epochs(
    backend, data, training, state, run, epochs, batch_size, seed, progress, interrupt,
    monitor_spec, plateau, n, has_val,
) -> LoopState:  # fmt: skip
    while state.epoch < epochs and not state.stopped_early:
        epoch = state.epoch
        lr = scheduled_lr(training, epoch, epochs, state)
        backend.set_learning_rate(lr)
        resumed_steps = state.step
        if not resumed_steps:  # mid-epoch, the restored random state continues instead
            backend.seed(seed * 1000 + epoch)
        started = time.perf_counter() - state.epoch_seconds
        total_loss, total_acc, seen = state.epoch_loss, state.epoch_acc, state.epoch_seen
        steps = math.ceil(n / batch_size)
        progress.start_epoch(epoch + 1, epochs, steps, n)
        # shuffled and augmented from (seed, epoch) alone: a resumed run sees the same batches
        for step, (xb, yb) in enumerate(data.batches(batch_size, epoch), 1):
            if step <= resumed_steps:
                continue  # done before the checkpoint (drawn anyway: augmentation's generator)
            loss, acc = backend.train_step(xb, yb)
            total_loss += loss * len(xb)
            total_acc += acc * len(xb)
            seen += len(xb)
            running = {"loss": total_loss / seen}
            if training.loss != "mse":
                running["accuracy"] = total_acc / seen
            progress.batch(epoch + 1, epochs, step, steps, running, seen)
            if interrupt.set:
                state.step, state.epoch_loss, state.epoch_acc = step, total_loss, total_acc
                state.epoch_seen = seen
                state.epoch_seconds = time.perf_counter() - started
                folder = save_checkpoint(run, backend, state)
                raise Interrupted(state, folder)
        state.step, state.epoch_loss, state.epoch_acc, state.epoch_seen = 0, 0.0, 0.0, 0
        state.epoch_seconds = 0.0
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1)}
        if training.loss != "mse":
            row["accuracy"] = total_acc / max(seen, 1)
        if set(training.metrics) - {"accuracy"} and training.loss != "mse":
            # metrics the train step does not give: on the train split after the epoch
            # (inference mode), so train, validation and test report the same metrics
            extra = evaluate(backend, data.x_train, data.y_train, training, batch_size)
            row.update({k: v for k, v in extra.items() if k not in ("loss", "accuracy")})
        if has_val:
            for key, value in evaluate(
                backend, data.x_val, data.y_val, training, batch_size
            ).items():
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
                if monitor_spec.restore_best_weights:
                    run.remove("best")
                    run.claim("best")
                    try:
                        (run.path / "best").mkdir(parents=True)
                        backend.save(run.path / "best")
                    except OSError as exc:
                        run.remove("best")
                        raise WriteError(run.path / "best", reason_of(exc)) from None
            else:
                state.wait += 1
                if state.wait >= monitor_spec.patience:
                    state.stopped_early = True
        save_checkpoint(run, backend, state)
        if interrupt.set:  # Ctrl-C during validation: the epoch's checkpoint is the place
            raise Interrupted(state, run.path / f"checkpoint-{state.epoch:04d}")
    return state


def _improved(monitor: str, value: float, best: float, min_delta: float) -> bool:
    if "loss" in monitor:
        return value < best - min_delta
    return value > best + min_delta
