"""A training process killed with SIGKILL mid-epoch resumes with --resume and ends with the
same weights as an uninterrupted run (issue: runs that survive faults)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow
np = pytest.importorskip("numpy")
pytest.importorskip("torch")


def command(out, data_dir, *extra):
    return [
        sys.executable, "-m", "specc", "train", "specs/mnist_cnn.yaml", "--backend", "pytorch",
        "--epochs", "3", "--batch-size", "32", "--limit", "1500", "--data-dir", str(data_dir),
        "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def checkpoint_epoch(out) -> int:
    pointer = out / "checkpoint.json"
    try:
        return json.loads(pointer.read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path, data_dir):
    if not (data_dir / "mnist").exists():
        pytest.skip(f"real MNIST files not found in {data_dir}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads in every process: same sums
    whole = tmp_path / "whole"
    subprocess.run(
        command(whole, data_dir), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600
    )

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed, data_dir), cwd=ROOT, env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while checkpoint_epoch(killed) < 1 and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # well inside epoch 2
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    saved = checkpoint_epoch(killed)
    assert 1 <= saved < 3
    # whatever the moment of the kill, the pointer names a complete checkpoint
    folder = killed / json.loads((killed / "checkpoint.json").read_text())["folder"]
    assert (folder / "state.pt").exists() and (folder / "loop.json").exists()
    assert not list(killed.glob("*.tmp")), "no temporary file is left beside the outputs"

    resumed = subprocess.run(command(killed, data_dir, "--resume"), cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads((killed / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    a = np.load(whole / "weights.npz")
    b = np.load(killed / "weights.npz")
    assert sorted(a.files) == sorted(b.files)
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a.files)
    assert worst <= 1e-6, f"resumed weights differ from the uninterrupted run by {worst}"
    whole_history = json.loads((whole / "history.json").read_text())
    assert [r["loss"] for r in history] == pytest.approx(
        [r["loss"] for r in whole_history], rel=1e-6
    )
