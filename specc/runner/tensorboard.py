"""``specc train --tensorboard DIR``: scalars in TensorBoard's event-file format, written
the same way for both backends (the ``tensorboard`` package's record writer and protos;
neither TensorFlow nor PyTorch is imported for it).

The layout follows Keras's ``TensorBoard`` callback, so TensorBoard draws train and
validation on the same charts: ``DIR/train`` holds ``batch_<metric>`` (the running loss and
accuracy of the epoch, after every step; step = global training step) and
``epoch_<metric>`` plus ``epoch_learning_rate`` (step = epoch); ``DIR/validation`` holds
``epoch_<metric>``. View with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


class EventWriter:
    """One event file of scalars."""

    def __init__(self, folder: str | Path):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event_pb2 = event_pb2
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.specc"
        self.path = folder / name
        self._file = open(self.path, "wb")  # noqa: SIM115  (closed in close())
        self._records = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=time.time(), step=0, file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._records.write(event.SerializeToString())

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))]
        )
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class TensorBoardHook:
    """Receives the loop's progress calls (as ``Progress``) and writes them as scalars."""

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self.train = EventWriter(self.logdir / "train")
        self.validation = None
        self._steps = 0
        self._epoch = 0

    def start_epoch(self, epoch: int, epochs: int, steps: int, samples: int) -> None:
        self._steps, self._epoch = steps, epoch

    def batch(self, epoch: int, epochs: int, done: int, total: int, loss, seen=None) -> None:
        values = loss if isinstance(loss, dict) else {"loss": loss}
        step = (epoch - 1) * total + done
        for name, value in values.items():
            if value is not None:
                self.train.scalar(f"batch_{name}", value, step)

    def epoch(self, row: dict, epochs: int) -> None:
        step = int(row["epoch"])
        for key, value in row.items():
            if value is None or key in ("epoch", "seconds"):
                continue
            if key == "lr":
                self.train.scalar("epoch_learning_rate", value, step)
            elif key.startswith("val_"):
                if self.validation is None:
                    self.validation = EventWriter(self.logdir / "validation")
                self.validation.scalar(f"epoch_{key[4:]}", value, step)
            else:
                self.train.scalar(f"epoch_{key}", value, step)
        self.train.flush()
        if self.validation is not None:
            self.validation.flush()

    def close(self) -> None:
        self.train.close()
        if self.validation is not None:
            self.validation.close()


class Hooks:
    """Several progress receivers behind the one the loop calls."""

    def __init__(self, *hooks):
        self.hooks = hooks

    def __getattr__(self, name):
        def call(*args, **kwargs):
            for hook in self.hooks:
                getattr(hook, name)(*args, **kwargs)

        return call


def with_tensorboard(progress, logdir: str | Path):
    """``progress`` plus a TensorBoard writer into ``logdir``; a clear error without the
    ``tensorboard`` package."""
    import importlib.util

    from .run import RunError

    if importlib.util.find_spec("tensorboard") is None:
        raise RunError(
            "--tensorboard needs the tensorboard package, which is not installed; install it "
            "with: pip install 'specc[tensorboard]'"
        )
    try:
        hook = TensorBoardHook(logdir)
    except OSError as exc:
        raise RunError(f"--tensorboard {logdir}: cannot write there: {exc}") from None
    return Hooks(progress, hook)
