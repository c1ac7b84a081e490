"""Progress as Keras's fit shows it (issue 18): a live bar with ETA and running metrics on a
terminal, periodic lines in a pipe; progress on stderr, results on stdout."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys

import pytest

from specc.runner import progress as progress_module
from specc.runner.progress import Progress

from .conftest import ROOT

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("sklearn") is None,
    reason="needs torch and scikit-learn",
)
TRAIN = ["train", "specs/digits_cnn.yaml", "--backend", "pytorch", "--epochs", "2",
         "--limit", "400", "--threads", "1"]  # fmt: skip


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_pipe_lines_every_interval_and_per_epoch(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    stream = io.StringIO()  # not a terminal
    p = Progress(stream=stream, interval=10.0)
    p.start_epoch(1, 3, steps=100, samples=6400)
    for step in range(1, 101):
        clock.now += 0.25  # 25 s per epoch: lines at 10 s and 20 s
        p.batch(1, 3, step, 100, {"loss": 1.0 / step, "accuracy": 0.5}, seen=64 * step)
    p.epoch({"epoch": 1, "loss": 0.01, "accuracy": 0.5, "lr": 0.1, "seconds": 25.0}, 3)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "epoch 1/3 step 40/100 (40%) ETA 0:15 250ms/step 256 samples/s - loss 0.0250 accuracy 0.5000",
        "epoch 1/3 step 80/100 (80%) ETA 0:05 250ms/step 256 samples/s - loss 0.0125 accuracy 0.5000",
        "epoch 1/3: loss 0.0100, accuracy 0.5000 (25.0 s, 250ms/step, 256 samples/s)",
    ]


def test_disabled_progress_writes_nothing():
    stream = io.StringIO()
    p = Progress(stream=stream, enabled=False)
    p.start_epoch(1, 1, 1, 1)
    p.batch(1, 1, 1, 1, 0.5, 1)
    p.epoch({"epoch": 1, "loss": 0.5, "seconds": 1.0}, 1)
    assert stream.getvalue() == ""


@needs_torch
def test_pipe_run_shows_periodic_lines_results_on_stdout(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "specc", *TRAIN, "--out", tmp_path / "run",
         "--progress-interval", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    periodic = re.findall(r"^epoch (\d)/2 step (\d+)/(\d+) \(\d+%\) ETA \d+:\d\d \d+ms/step "
                          r"[\d,]+ samples/s - loss \d\.\d{4} accuracy \d\.\d{4}$",
                          result.stderr, re.M)  # fmt: skip
    assert len(periodic) >= 10, result.stderr
    assert {e for e, _, _ in periodic} == {"1", "2"}
    assert re.search(r"^epoch 2/2: loss .* samples/s\)$", result.stderr, re.M)
    # results on stdout, nothing else there; no progress on stdout
    assert result.stdout.startswith("test loss ") and result.stdout.count("\n") == 1
    assert "\x1b[" not in result.stderr  # no terminal codes in a pipe


@needs_torch
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_terminal_run_shows_a_live_bar(tmp_path):
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "specc", *TRAIN, "--out", tmp_path / "run"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "160", "TERM": "xterm"},
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout, _ = process.communicate(timeout=600)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    bar = re.search(
        r"epoch 1/2 +(\d+)/(\d+) .*ETA \d+:\d\d \d+ms/step [\d,]+ samples/s - "
        r"loss \d\.\d{4} accuracy \d\.\d{4}", plain)  # fmt: skip
    assert bar, plain
    assert "━" in plain  # rich's bar
    assert "\x1b[" in screen  # drawn in place with terminal codes
    assert re.search(r"epoch 2/2: loss .* samples/s\)", plain)
    assert stdout.decode().startswith("test loss ")
