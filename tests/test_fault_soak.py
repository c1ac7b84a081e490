"""The long fault soak of `make fuzz` (SPECC_FUZZ=long; skipped otherwise): runs killed at
random moments in both backends, a full disk at random points (a small tmpfs, when root),
and randomly corrupted run files. Every outcome must be one of the documented ones; the
counts are printed (pytest -s) and asserted.

SPECC_SOAK_ROUNDS (default 4) sets the rounds of each kind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SPECC_FUZZ") != "long", reason="make fuzz only"),
]
np = pytest.importorskip("numpy")

ROUNDS = int(os.environ.get("SPECC_SOAK_ROUNDS", "4"))
SPEC = ROOT / "specs" / "digits_cnn.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def command(out: Path, backend: str, epochs: int, *extra) -> list[str]:
    return [sys.executable, "-m", "specc", "train", str(SPEC), "--backend", backend,
            "--epochs", str(epochs), "--out", str(out), "--quiet", *extra]  # fmt: skip


def weights_equal(a: Path, b: Path) -> bool:
    x, y = np.load(a / "weights.npz"), np.load(b / "weights.npz")
    return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def _finished(out: Path) -> bool:
    try:
        return json.loads((out / "run.json").read_text())["status"] == "finished"
    except (OSError, ValueError, KeyError):
        return False


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


@pytest.mark.parametrize("backend", ["pytorch", "keras"])
def test_random_kills_resume_to_the_uninterrupted_weights(tmp_path, backend):
    pytest.importorskip("torch" if backend == "pytorch" else "keras")
    epochs = 3
    whole = tmp_path / "whole"
    started = time.time()
    subprocess.run(command(whole, backend, epochs), cwd=ROOT, env=ENV, check=True,
                   capture_output=True, timeout=900)  # fmt: skip
    duration = time.time() - started
    rng = random.Random(19)
    counts: Counter = Counter()
    for round_ in range(ROUNDS):
        out = tmp_path / f"kill{round_}"
        args = command(out, backend, epochs)
        for _attempt in range(6):  # kill again and again, each time at a random moment
            process = subprocess.Popen(args, cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0.2, duration))
            if process.poll() is None:
                process.send_signal(rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGINT]))
                counts["signals"] += 1
            _, err = process.communicate(timeout=900)
            no_traceback(err)
            assert process.returncode in (0, 130, -signal.SIGKILL, 2), err
            if process.returncode == 0 or _finished(out):  # (killed while exiting)
                break
            has_checkpoint = (out / "checkpoint.json").exists()
            args = command(out, backend, epochs, *(["--resume"] if has_checkpoint else []))
        else:
            result = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True,
                                    timeout=900)  # fmt: skip
            assert result.returncode == 0, result.stderr
        assert weights_equal(whole, out), f"round {round_}: resumed weights differ"
        counts["exact resumes"] += 1
    print(f"\n{backend} kill soak: {dict(counts)}")
    assert counts["exact resumes"] == ROUNDS


def _mount_tmpfs(path: Path, size_kb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                            capture_output=True)  # fmt: skip
    return result.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def test_full_disk_at_random_points_never_breaks_resume(tmp_path):
    pytest.importorskip("torch")
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small tmpfs needs root")
    whole = tmp_path / "whole"
    subprocess.run(command(whole, "pytorch", 2), cwd=ROOT, env=ENV, check=True,
                   capture_output=True, timeout=900)  # fmt: skip
    rng = random.Random(7)
    counts: Counter = Counter()
    for round_ in range(ROUNDS * 2):
        disk = tmp_path / f"disk{round_}"
        if not _mount_tmpfs(disk, rng.randint(8, 400)):
            pytest.skip("mounting a tmpfs is not permitted here")
        try:
            out = disk / "run"
            result = subprocess.run(command(out, "pytorch", 2), cwd=ROOT, env=ENV,
                                    capture_output=True, text=True, timeout=900)  # fmt: skip
            no_traceback(result.stderr)
            if result.returncode == 0:
                counts["fit"] += 1
            else:
                assert result.returncode == 2, result.stderr
                lines = [line for line in result.stderr.splitlines() if line.strip()]
                assert len(lines) == 1 and "cannot write" in lines[0], result.stderr
                assert "no space left on device" in lines[0], result.stderr
                counts["full disk: exit 2"] += 1
                # more room (as a user freeing space), then the run continues
                subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
                resume = ["--resume"] if (out / "checkpoint.json").exists() else []
                again = subprocess.run(command(out, "pytorch", 2, *resume), cwd=ROOT, env=ENV,
                                       capture_output=True, text=True, timeout=900)  # fmt: skip
                assert again.returncode == 0, again.stderr
                assert weights_equal(whole, out)
                counts["resumed after freeing space" if resume else "restarted"] += 1
            assert not list(out.glob("**/*.tmp")), "a temporary file was left behind"
        finally:
            _umount(disk)
    print(f"\nfull-disk soak: {dict(counts)}")
    assert counts["full disk: exit 2"] > 0


def test_corrupted_run_files_exit_3_or_recover(tmp_path):
    pytest.importorskip("torch")
    base = tmp_path / "base"
    subprocess.run(command(base, "pytorch", 1), cwd=ROOT, env=ENV, check=True,
                   capture_output=True, timeout=900)  # fmt: skip
    rng = random.Random(3)
    counts: Counter = Counter()
    for round_ in range(ROUNDS * 3):
        out = tmp_path / f"c{round_}"
        shutil.copytree(base, out)
        pointer = json.loads((out / "checkpoint.json").read_text())
        candidates = [out / "checkpoint.json", out / "run.json", out / ".specc-manifest.json",
                      *sorted((out / pointer["folder"]).iterdir())]  # fmt: skip
        victim = rng.choice(candidates)
        data = bytearray(victim.read_bytes())
        how = rng.choice(["truncate", "flip", "empty"])
        if how == "truncate":
            data = data[: rng.randrange(len(data))]
        elif how == "flip" and data:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 0xFF
        else:
            data = bytearray()
        victim.write_bytes(bytes(data))
        result = subprocess.run(command(out, "pytorch", 2, "--resume"), cwd=ROOT, env=ENV,
                                capture_output=True, text=True, timeout=900)  # fmt: skip
        no_traceback(result.stderr)
        assert result.returncode in (0, 2, 3), result.stderr
        if result.returncode == 3:
            assert "the run folder is damaged" in result.stderr and victim.name in result.stderr
        counts[f"exit {result.returncode}"] += 1
    print(f"\ncorruption soak: {dict(counts)}")
