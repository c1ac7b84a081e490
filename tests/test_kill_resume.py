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


# Both backends, Dropout and augmentation: the bundled digits CNN (Dropout 0.1) with random
# flips and translations; no download needed (scikit-learn's digits).
AUGMENTED = (
    (ROOT / "specs" / "digits_cnn.yaml")
    .read_text()
    .replace(
        "  validation_split: 0.1\n",
        "  validation_split: 0.1\n  augmentation: {horizontal_flip: true, translation: 0.1}\n",
    )
)


def digits_command(spec, out, backend, *extra):
    return [sys.executable, "-m", "specc", "train", str(spec), "--backend", backend,
            "--epochs", "3", "--out", str(out), "--quiet", *extra]  # fmt: skip


def _weights_differ(a_dir, b_dir) -> float:
    a, b = np.load(a_dir / "weights.npz"), np.load(b_dir / "weights.npz")
    assert sorted(a.files) == sorted(b.files)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a.files)


def _stop_mid_epoch_2(command, out, env, sig):
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while checkpoint_epoch(out) < 1 and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.05)  # inside epoch 2 (an epoch of digits takes a fraction of a second)
    assert process.poll() is None, "the run finished before it could be stopped"
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


@pytest.mark.parametrize("backend", ["keras", "pytorch"])
def test_kill_and_ctrl_c_resume_exactly_with_dropout_and_augmentation(tmp_path, backend):
    pytest.importorskip("keras" if backend == "keras" else "torch")
    spec = tmp_path / "digits_aug.yaml"
    spec.write_text(AUGMENTED)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(digits_command(spec, whole, backend), cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)  # fmt: skip

    killed = tmp_path / "killed"
    code, _ = _stop_mid_epoch_2(digits_command(spec, killed, backend), killed, env, signal.SIGKILL)
    assert code == -signal.SIGKILL and checkpoint_epoch(killed) >= 1
    resumed = subprocess.run(digits_command(spec, killed, backend, "--resume"), cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert _weights_differ(whole, killed) == 0.0

    stopped = tmp_path / "ctrl-c"
    code, stderr = _stop_mid_epoch_2(digits_command(spec, stopped, backend), stopped, env,
                                     signal.SIGINT)  # fmt: skip
    assert code == 130, stderr
    pointer = json.loads((stopped / "checkpoint.json").read_text())
    # at the end of the step under way (or of the epoch, when it came during validation)
    where = (
        f"epoch {pointer['epoch'] + 1}, step {pointer['step']}"
        if pointer["step"]
        else f"the end of epoch {pointer['epoch']}"
    )
    assert f"interrupted: saved a checkpoint at {where} in {stopped}" in stderr, stderr
    assert stderr.splitlines()[-1].strip().startswith("specc train ")
    assert stderr.splitlines()[-1].endswith("--resume")
    assert pointer["epoch"] >= 1
    resumed = subprocess.run(digits_command(spec, stopped, backend, "--resume"), cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert _weights_differ(whole, stopped) == 0.0
    history = json.loads((stopped / "history.json").read_text())
    assert [r["loss"] for r in history] == [
        r["loss"] for r in json.loads((whole / "history.json").read_text())
    ]


def test_two_concurrent_runs_into_one_folder_never_mix(tmp_path, data_dir):
    """Started together into one --out: one trains, the other exits 2 naming its pid."""
    out = tmp_path / "run"
    spec = ROOT / "specs" / "digits_cnn.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmds = [[sys.executable, "-m", "specc", "train", str(spec), "-b", "pytorch", "--epochs", "2",
             "--out", str(out), "--quiet", "--seed", str(seed)] for seed in (1, 2)]  # fmt: skip
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for c in cmds
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 2], [0, 3]), results  # 3: the loser started after the winner finished
    loser = next(err for code, err in results if code != 0)
    assert "in use by another specc run (pid" in loser or "already holds a run" in loser
    winner = procs[[code for code, _ in results].index(0)]
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == (1 if winner is procs[0] else 2) and run["status"] == "finished"
