"""Data-parallel training (issue 15): `specc train --backend pytorch --nproc N` takes the same
optimizer steps as one process over the same global batches; a rank that dies ends the job
with exit 3 and the run resumes to the weights of an uninterrupted run; devices and
precisions that are not there are refused with exit 3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specc.runner.distributed import environment, shard_bounds, strip_nproc

from .conftest import ROOT

TINY = """\
version: 1
name: tiny_digits
inputs:
  - {name: image, shape: [8, 8, 1]}
layers:
  - {type: Conv2D, filters: 4, kernel_size: 3, padding: same, activation: relu}
  - {type: Flatten}
  - {type: Dense, units: 10, activation: softmax}
training:
  dataset: digits
  optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  batch_size: 32
  epochs: 2
  validation_split: 0.1
  seed: 3
"""


def _env() -> dict:
    # one thread per process: the same summation order in every run
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _train(spec, out, *extra, check=True, timeout=300):
    cmd = [sys.executable, "-m", "specc", "train", str(spec), "--backend", "pytorch",
           "--out", str(out), "--quiet", "--threads", "1", *extra]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _worst(a_dir: Path, b_dir: Path) -> float:
    import numpy as np

    a = np.load(a_dir / "weights.npz")
    b = np.load(b_dir / "weights.npz")
    assert sorted(a.files) == sorted(b.files)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a.files)


# ----------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(("n", "world"), [(32, 2), (20, 3), (7, 2), (1, 2), (5, 4), (64, 8)])
def test_shards_cover_the_batch_and_weights_give_the_global_mean(n, world):
    shards = [shard_bounds(n, r, world) for r in range(world)]
    if n < world:  # every rank trains the whole batch with weight 1: the DDP mean is exact
        assert shards == [(0, n, 1.0)] * world
        return
    assert shards[0][0] == 0 and shards[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(shards, shards[1:]))
    # DDP averages: sum_r w_r / W * grad(mean_r) must be sum_r n_r / n * grad(mean_r)
    for lo, hi, w in shards:
        assert w / world == pytest.approx((hi - lo) / n)
    assert sum(w for *_, w in shards) / world == pytest.approx(1.0)


def test_environment_reads_torchrun_variables():
    assert environment({}) is None
    assert environment({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = environment(
        {
            "WORLD_SIZE": "4",
            "RANK": "3",
            "LOCAL_RANK": "1",
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "10.0.0.1",
            "MASTER_PORT": "29500",
        }  # fmt: skip
    )
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 4, 1, 2)
    assert not env.is_main
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        environment({"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(ValueError, match="RANK=2"):
        environment({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"})


def test_strip_nproc():
    args = ["train", "s.yaml", "--nproc", "2", "--epochs", "1", "--nproc=3", "-q"]
    assert strip_nproc(args) == ["train", "s.yaml", "--epochs", "1", "-q"]


# ----------------------------------------------------------------------------- refusals


def test_device_cuda_without_cuda_exits_3(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    done = _train(spec, tmp_path / "run", "--device", "cuda", check=False)
    assert done.returncode == 3, done.stderr
    assert "no CUDA device" in done.stderr and "Traceback" not in done.stderr
    done = _train(spec, tmp_path / "run", "--precision", "fp16", check=False)
    assert done.returncode == 3, done.stderr
    assert "fp16" in done.stderr and "CUDA" in done.stderr
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_bad_device_name_is_a_usage_error(tmp_path):
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    done = _train(spec, tmp_path / "run", "--device", "tpu", check=False)
    assert done.returncode == 2 and "--device must be auto, cpu, cuda or cuda:N" in done.stderr


# ----------------------------------------------------------------------------- gloo DDP


def test_two_process_ddp_equals_one_process_over_the_same_global_batches(tmp_path):
    """180 training samples in global batches of 32: five full batches (16 + 16 rows per
    rank) and a last, uneven one of 20 (10 + 10); with 3 ranks 10/11/11 and 6/7/7 rows. SGD
    with momentum, 2 epochs: every rank's weighted loss must give DDP the gradient of the
    mean over the global batch. (3 ranks: test_three_ranks_uneven_shards.)"""
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    one, two = tmp_path / "one", tmp_path / "two"
    _train(spec, one, "--limit", "200")
    _train(spec, two, "--limit", "200", "--nproc", "2")
    worst = _worst(one, two)
    assert worst <= 1e-5, f"2-rank DDP differs from one process by {worst}"
    run = json.loads((two / "run.json").read_text())
    assert run["world_size"] == 2 and run["distributed_backend"] == "gloo"
    assert run["device"] == "cpu" and run["global_batch_size"] == 32
    assert [r["rank"] for r in run["per_rank"]] == [0, 1]
    # each rank trained on half of every epoch's 180 samples
    assert [r["samples"] for r in run["per_rank"]] == [180, 180]
    # metrics reduced across ranks: the epoch losses of the whole global batches
    h1 = json.loads((one / "history.json").read_text())
    h2 = json.loads((two / "history.json").read_text())
    for a, b in zip(h1, h2):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)
        assert b["accuracy"] == pytest.approx(a["accuracy"], abs=1e-6)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-5)
    # only rank 0 wrote: one run folder, no second copy of the generated code
    assert (two / "model_pytorch.py").exists() and (two / "model.onnx").exists()


@pytest.mark.slow
def test_three_ranks_uneven_shards(tmp_path):
    """Batches of 20 over 3 ranks: 6 + 7 + 7 rows, weights 0.9, 1.05, 1.05."""
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    _train(spec, tmp_path / "one", "--limit", "200", "--batch-size", "20")
    _train(spec, tmp_path / "three", "--limit", "200", "--batch-size", "20", "--nproc", "3")
    worst = _worst(tmp_path / "one", tmp_path / "three")
    assert worst <= 1e-5, f"3-rank DDP differs from one process by {worst}"


@pytest.mark.slow
def test_last_batch_smaller_than_the_ranks(tmp_path):
    """180 samples in batches of 179: the last batch has 1 row, which both ranks train whole."""
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    _train(spec, tmp_path / "one", "--limit", "200", "--batch-size", "179")
    _train(spec, tmp_path / "two", "--limit", "200", "--batch-size", "179", "--nproc", "2")
    assert _worst(tmp_path / "one", tmp_path / "two") <= 1e-5


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.slow
def test_killed_rank_ends_the_job_and_resume_matches_uninterrupted(tmp_path, data_dir):
    if not (data_dir / "mnist").exists():
        pytest.skip(f"real MNIST files not found in {data_dir}")
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the rank processes")
    pytest.importorskip("torch")
    args = ["specs/mnist_cnn.yaml", "--epochs", "3", "--batch-size", "32", "--limit", "1500",
            "--data-dir", str(data_dir), "--nproc", "2"]  # fmt: skip
    whole = tmp_path / "whole"
    _train(args[0], whole, *args[1:], timeout=600)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "specc", "train", args[0], "--backend", "pytorch", "--out",
           str(killed), "--quiet", "--threads", "1", *args[1:]]  # fmt: skip
    launcher = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stderr=subprocess.PIPE, text=True)
    pointer = killed / "checkpoint.json"
    deadline = time.time() + 300
    while not pointer.exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # inside epoch 2
    assert launcher.poll() is None, "the run finished before it could be killed"
    rank1 = [p for p in _children(launcher.pid) if _rank_of(p) == 1]
    assert rank1, "rank 1 not found"
    os.kill(rank1[0], signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 3, stderr
    assert "rank 1 of 2 was killed by SIGKILL" in stderr and "--resume" in stderr
    assert json.loads(pointer.read_text())["epoch"] in (1, 2)

    _train(args[0], killed, *args[1:], "--resume", timeout=600)
    assert [r["epoch"] for r in json.loads((killed / "history.json").read_text())] == [1, 2, 3]
    worst = _worst(whole, killed)
    assert worst <= 1e-6, f"resumed DDP differs from the uninterrupted DDP run by {worst}"


def _torchrun(*args, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _free_port() -> int:
    from specc.runner.distributed import free_port

    return free_port()


@pytest.mark.slow
def test_specc_train_under_torchrun_equals_nproc(tmp_path):
    """`torchrun --nproc-per-node 2 -m specc train` reads RANK/WORLD_SIZE/MASTER_*: the same
    run as `--nproc 2`."""
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    _train(spec, tmp_path / "nproc", "--limit", "200", "--nproc", "2")
    done = _torchrun("-m", "specc", "train", str(spec), "--backend", "pytorch", "--limit", "200",
                     "--out", str(tmp_path / "torchrun"), "--quiet", "--threads", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "torchrun" / "run.json").read_text())["world_size"] == 2
    assert _worst(tmp_path / "nproc", tmp_path / "torchrun") <= 1e-6


@pytest.mark.slow
def test_generated_script_runs_under_torchrun(tmp_path):
    """The `--with-training` script, unchanged, as one process and as 2 DDP ranks (gloo):
    both train and save; under torchrun only rank 0 prints and writes."""
    pytest.importorskip("torch")
    script = tmp_path / "digits_train.py"
    made = subprocess.run(
        [sys.executable, "-m", "specc", "compile", "specs/digits_cnn.yaml", "--target",
         "pytorch", "--with-training", "-o", str(script)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    done = _torchrun(str(script), "--epochs", "2", "--out", str(tmp_path / "two.pt"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("epoch 2/2:") == 1  # rank 0 only
    assert "saved" in done.stdout and (tmp_path / "two.pt").exists()
    import torch

    state = torch.load(tmp_path / "two.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # the plain module, not DDP's
    accuracy = float(done.stdout.split("test_accuracy ")[1].split()[0])
    assert accuracy > 0.2  # 2 epochs on digits: well above chance (0.1)


def _keras(spec, out, *extra):
    cmd = [sys.executable, "-m", "specc", "train", str(spec), "--backend", "keras", "--out",
           str(out), "--quiet", "--threads", "1", *extra]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_keras_mirrored_strategy_on_two_logical_cpus_equals_one_device(tmp_path):
    """MirroredStrategy over 2 logical CPU devices: 181 samples in batches of 32, five split
    16 + 16 and a last one of 21 that both replicas take whole; SGD with momentum."""
    pytest.importorskip("keras")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    _keras(spec, tmp_path / "one", "--limit", "201")
    _keras(spec, tmp_path / "two", "--limit", "201", "--devices", "2")
    worst = _worst(tmp_path / "one", tmp_path / "two")
    assert worst <= 1e-5, f"MirroredStrategy differs from one device by {worst}"
    run = json.loads((tmp_path / "two" / "run.json").read_text())
    assert run["replicas"] == 2 and run["device"] == "MirroredStrategy(CPU:0, CPU:1)"
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    for a, b in zip(h1, h2):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-5)


@pytest.mark.slow
def test_sync_batchnorm_computes_statistics_over_the_global_batch(tmp_path):
    """With a BatchNormalization layer, per-rank statistics (plain DDP) drift far from one
    process; --sync-batchnorm takes mean and variance over all ranks' rows and follows the
    single process (to ~1e-5: the normalization is computed by other kernels, and batch norm's
    1/std amplifies the rounding over the steps)."""
    pytest.importorskip("torch")
    spec = tmp_path / "bn.yaml"
    spec.write_text(
        TINY.replace("  - {type: Flatten}", "  - {type: BatchNormalization}\n  - {type: Flatten}")
    )
    common = ("--limit", "201", "--epochs", "1")
    _train(spec, tmp_path / "one", *common)
    _train(spec, tmp_path / "sync", *common, "--nproc", "2", "--sync-batchnorm")
    _train(spec, tmp_path / "local", *common, "--nproc", "2")
    synced = _worst(tmp_path / "one", tmp_path / "sync")
    local = _worst(tmp_path / "one", tmp_path / "local")
    assert synced <= 5e-5, f"--sync-batchnorm differs from one process by {synced}"
    assert local > 100 * synced, (local, synced)
    assert json.loads((tmp_path / "sync" / "run.json").read_text())["sync_batchnorm"] is True


def test_gpu_check_says_no_cuda_and_succeeds_without_a_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run bench/gpu_check.sh itself")
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh")],
        env={**_env(), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "gpu_check: no CUDA device" in done.stdout


def test_nproc_with_an_invalid_spec_exits_1_with_one_message(tmp_path):
    """Every rank refuses the spec alike: the launcher exits with their code, and only rank
    0's message reaches the terminal."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(TINY.replace("units: 10", "units: -3"))
    done = _train(spec, tmp_path / "run", "--nproc", "2", check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("units must be") == 1, done.stderr
    assert "[rank 1]" not in done.stderr and "Traceback" not in done.stderr


def test_nproc_resume_refused_by_rank_0_exits_2_with_its_message(tmp_path):
    """Only rank 0 checks the run folder: a --resume with nothing to resume ends the job
    with rank 0's exit code and one message; no rank writes anything."""
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "run"
    done = _train(spec, out, "--nproc", "2", "--resume", check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("nothing to resume") == 1, done.stderr
    assert "[rank 1]" not in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() or all(p.name.startswith(".specc") for p in out.iterdir())


def test_device_resolution_with_and_without_gpus(monkeypatch):
    """The choice of device, whatever this machine has (torch.cuda answers are patched)."""
    torch = pytest.importorskip("torch")
    from specc.runner.devices import DeviceError, check_precision, parse_device, resolve_device

    assert parse_device("CUDA:1") == ("cuda", 1)
    for bad in ("gpu", "cpu:0", "cuda:x", "auto:1"):
        with pytest.raises(ValueError):
            parse_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=1, world_size=2) == torch.device("cuda", 1)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="names one GPU"):
        resolve_device("cuda:1", local_rank=0, world_size=2)
    with pytest.raises(DeviceError, match="device 2 does not exist"):
        resolve_device("cuda", local_rank=2, world_size=3)
    with pytest.raises(DeviceError, match="gradient scaler on CUDA only"):
        check_precision("fp16", torch.device("cpu"))
    check_precision("fp16", torch.device("cuda", 0))
    check_precision("bf16", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Old GPU")
    with pytest.raises(DeviceError, match="Old GPU has no bf16"):
        check_precision("bf16", torch.device("cuda", 0))


@pytest.mark.slow
def test_keras_two_workers_from_tf_config_equal_one_device(tmp_path):
    """docs/distributed.md's two-worker example on this machine: the same command with
    TF_CONFIG naming two workers on localhost (MultiWorkerMirroredStrategy); each worker
    writes its own run folder, and both end with the single-device weights."""
    pytest.importorskip("keras")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    _keras(spec, tmp_path / "one", "--limit", "201")
    ports = [_free_port(), _free_port()]
    workers = []
    for index in (0, 1):
        config = {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
        cmd = [sys.executable, "-m", "specc", "train", str(spec), "--backend", "keras",
               "--limit", "201", "--out", str(tmp_path / f"worker{index}"), "--quiet",
               "--threads", "1"]  # fmt: skip
        env = {**_env(), "TF_CONFIG": json.dumps(config)}
        workers.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True))
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr[-3000:]
    for index in (0, 1):
        folder = tmp_path / f"worker{index}"
        assert _worst(tmp_path / "one", folder) <= 1e-5
        run = json.loads((folder / "run.json").read_text())
        assert run["replicas"] == 2
        assert run["device"].startswith(f"MultiWorkerMirroredStrategy(worker {index}:")


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_after_the_same_step_and_resume_matches(tmp_path):
    """SIGINT to the `--nproc` launcher: passed on to the ranks, which agree on the step to
    stop after; rank 0 saves a checkpoint with every rank's random state (Dropout, uneven
    shards 4 + 5) and prints the resume command with --nproc; exit 130. The resumed run ends
    with the weights of an uninterrupted one."""
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        TINY.replace(
            "  - {type: Flatten}\n", "  - {type: Flatten}\n  - {type: Dropout, rate: 0.3}\n"
        )
    )
    args = ["--epochs", "3", "--batch-size", "9", "--nproc", "2"]
    whole = tmp_path / "whole"
    _train(spec, whole, *args)

    stopped = tmp_path / "stopped"
    cmd = [sys.executable, "-m", "specc", "train", str(spec), "--backend", "pytorch", "--out",
           str(stopped), "--quiet", "--threads", "1", *args]  # fmt: skip
    launcher = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stderr=subprocess.PIPE, text=True)
    pointer = stopped / "checkpoint.json"
    deadline = time.time() + 300
    while not pointer.exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # inside epoch 2
    assert launcher.poll() is None, "the run finished before it could be interrupted"
    launcher.send_signal(signal.SIGINT)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 130, stderr
    assert "interrupted: saved a checkpoint at epoch" in stderr, stderr
    assert "--resume --nproc 2" in stderr, stderr
    info = json.loads(pointer.read_text())
    assert info["epoch"] == 1 and info["step"] > 0, info  # mid-epoch 2
    assert not (stopped / "metrics.json").exists()

    _train(spec, stopped, *args, "--resume")
    assert [r["epoch"] for r in json.loads((stopped / "history.json").read_text())] == [1, 2, 3]
    worst = _worst(whole, stopped)
    assert worst <= 1e-6, f"the resumed DDP run differs from the uninterrupted one by {worst}"


def test_the_launcher_blames_the_rank_that_caused_the_failure():
    import signal

    from specc.runner.distributed import LOST_PEER_EXIT, _culprit

    kill, abort = -signal.SIGKILL, -signal.SIGABRT
    # rank 1 was killed; rank 0's gloo ended it with SIGABRT in the same moment
    assert _culprit([abort, kill], (0, abort)) == (1, kill, None)
    # rank 1 was killed; rank 0 said it lost contact and left first
    assert _culprit([LOST_PEER_EXIT, kill], (0, LOST_PEER_EXIT)) == (1, kill, None)
    # rank 0 refused the run (usage, exit 2): its own message says why, the job exits 2
    assert _culprit([2, LOST_PEER_EXIT], (1, LOST_PEER_EXIT)) == (0, 2, 2)
    # rank 1 failed on its own (exit 3), rank 0 lost it: rank 1 is named
    assert _culprit([LOST_PEER_EXIT, 3], (0, LOST_PEER_EXIT)) == (1, 3, None)
    # every rank refused the spec alike (exit 1)
    assert _culprit([1, 1, 1], (2, 1)) == (0, 1, 1)
    # all ranks lost each other (a timeout): the first seen is named
    assert _culprit([LOST_PEER_EXIT, LOST_PEER_EXIT], (1, LOST_PEER_EXIT)) == (
        1, LOST_PEER_EXIT, None)  # fmt: skip
