"""Training progress as Keras's ``fit`` shows it, on stderr (results go to stdout).

On a terminal: a live bar per epoch (rich) with steps, ETA, time per step, samples per
second and the running loss and metrics; it is replaced by the epoch's summary line when the
epoch ends. In a pipe or a CI log (no terminal): a line every ``interval`` seconds (default
10) during an epoch, and the summary line at each epoch's end, so a long epoch is never silent.
"""

from __future__ import annotations

import sys
import time

DEFAULT_INTERVAL = 10.0
_REFRESH = 0.1  # seconds between redraws of the live bar


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _per_step(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms/step" if seconds < 1 else f"{seconds:.2f}s/step"


def _values(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)


class Progress:
    """The loop calls ``start_epoch``, ``batch`` after every step, ``epoch`` with the
    epoch's history row, and ``close`` when training ends (normally or not)."""

    def __init__(self, stream=None, enabled: bool = True, interval: float = DEFAULT_INTERVAL):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self._bar = None
        self._task = None
        self._epoch_start = 0.0
        self._last = 0.0
        self._samples = 0
        self._steps = 0

    # ------------------------------------------------------------------ hooks
    def start_epoch(self, epoch: int, epochs: int, steps: int, samples: int) -> None:
        """``epoch`` is 1-based; ``samples`` the training samples of the epoch."""
        self._epoch_start = self._last = time.perf_counter()
        self._samples, self._steps = samples, steps
        if not self.tty:
            return
        self._stop_bar()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as RichProgress
        from rich.table import Column

        console = Console(file=self.stream, force_terminal=True, highlight=False)
        self._bar = RichProgress(
            TextColumn(f"epoch {epoch}/{epochs}", table_column=Column(no_wrap=True)),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            BarColumn(bar_width=20),
            # on a narrow terminal the numbers continue on the next line, never cut off
            TextColumn("{task.fields[stats]}", table_column=Column(ratio=1, overflow="fold")),
            console=console,
            auto_refresh=False,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("", total=steps, stats="")
        self._bar.refresh()

    def batch(self, epoch: int, epochs: int, done: int, total: int, loss, seen=None) -> None:
        """After step ``done`` of ``total``; ``loss`` is the running loss or a dict of the
        running values (loss and metrics); ``seen`` the samples trained on so far."""
        if not self.enabled:
            return
        now = time.perf_counter()
        metrics = loss if isinstance(loss, dict) else {"loss": loss}
        if self.tty:
            if self._bar is None:
                self.start_epoch(epoch, epochs, total, 0)
            if now - self._last < _REFRESH and done < total:
                return
            self._last = now
            self._bar.update(
                self._task, completed=done, stats=self._stats(now, done, total, seen, metrics)
            )
            self._bar.refresh()
            return
        if self.interval is None or now - self._last < self.interval or done >= total:
            return
        self._last = now
        percent = 100 * done / max(total, 1)
        self.stream.write(
            f"epoch {epoch}/{epochs} step {done}/{total} ({percent:.0f}%) "
            f"{self._stats(now, done, total, seen, metrics)}\n"
        )
        self.stream.flush()

    def epoch(self, row: dict, epochs: int) -> None:
        """The epoch's summary line (every value of its history row)."""
        if not self.enabled:
            return
        self._stop_bar()
        parts = [
            f"{k} {v:.4f}"
            for k, v in row.items()
            if k not in ("epoch", "seconds", "lr") and v is not None
        ]
        seconds = row.get("seconds", 0.0)
        timing = f"{seconds:.1f} s"
        if self._steps and seconds:
            timing += f", {_per_step(seconds / self._steps)}"
            if self._samples:
                timing += f", {self._samples / seconds:,.0f} samples/s"
        self.stream.write(f"epoch {row['epoch']}/{epochs}: " + ", ".join(parts) + f" ({timing})\n")
        self.stream.flush()

    def close(self) -> None:
        self._stop_bar()

    # ------------------------------------------------------------------ helpers
    def _stats(self, now: float, done: int, total: int, seen, metrics: dict) -> str:
        elapsed = now - self._epoch_start
        step = elapsed / max(done, 1)
        text = f"ETA {_duration(step * (total - done))} {_per_step(step)}"
        if seen and elapsed > 0:
            text += f" {seen / elapsed:,.0f} samples/s"
        return f"{text} - {_values(metrics)}"

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
