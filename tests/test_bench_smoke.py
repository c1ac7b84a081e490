"""Smoke test of the benchmarks: `bench/run.py --quick` runs and writes sane numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_quick(tmp_path):
    name = "smoke_test"
    out = ROOT / "bench" / "results" / f"{name}.json"
    proc = subprocess.run(  # about 30 s on an idle 2-core machine; the timeout only stops a hang
        [sys.executable, "bench/run.py", "--quick", "--runs", "1", "--name", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    cold = results["cold"]
    assert cold["specc summary"]["runs"] == 1
    for row in cold.values():
        assert 0 < row["min"] <= row["median"] <= row["max"]
    # the frameworks are installed in the dev venv: specc must beat importing them
    if "keras model.summary()" in cold:
        assert cold["keras model.summary()"]["ratio_to_specc"] > 1
    warm = results["warm"]
    assert set(warm) == {"10", "100", "1000"}
    for rows in warm.values():
        for row in rows.values():
            assert row["median"] > 0 and row["per_layer_us"] > 0
    assert results["import"]["import specc"]["median"] > 0
    assert results["import"]["importtime_top"], "no -X importtime rows parsed"
    assert "| cold: specc summary |" in proc.stdout
    compiled = results["compile"]["mnist_cnn"]
    assert set(compiled) == {"keras", "pytorch", "onnx"}
    assert all(row["bytes"] > 0 and row["median"] > 0 for row in compiled.values())
    if "training" in results:  # frameworks and MNIST available
        rows = results["training"]["mnist_cnn"]["contenders"]
        for name in ("specc PyTorch", "hand-written PyTorch", "specc Keras", "hand-written Keras"):
            assert rows[name]["median"] > 0 and rows[name]["fraction_of_fp32_peak"] > 0, name
    if "inference" in results:
        assert results["inference"]["1"]["onnxruntime (specc ONNX)"]["median"] > 0


def test_gpu_bench_without_cuda_says_so_and_exits_0():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the benchmark would run")
    proc = subprocess.run(
        [sys.executable, "bench/gpu_bench.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        proc.stdout.strip()
        == f"gpu_bench: no CUDA device (torch {torch.__version__}): nothing measured"
    )


@pytest.mark.slow
def test_gpu_bench_code_paths_on_cpu(tmp_path):
    """--cpu-smoke: the generated ResNet50 (a 32x32 input) and MNIST CNN against their
    references, training and inference, with and without channels-last."""
    pytest.importorskip("torch")
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "bench/gpu_bench.py", "--cpu-smoke", "--only", "resnet50", "mnist_cnn",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {(r["model"], r["mode"], r["channels_last"]) for r in results["rows"]} == {
        (m, mode, cl)
        for m in ("resnet50", "mnist_cnn")
        for mode in ("train", "inference")
        for cl in (False, True)
    }
    for row in results["rows"]:
        assert row["generated_images_per_s"] > 0 and row["reference_images_per_s"] > 0
        assert row["ratio"] == pytest.approx(
            row["generated_images_per_s"] / row["reference_images_per_s"], rel=0.01
        )


def test_zoo_specs_match_keras_parameter_counts():
    """bench/specs: the keras.applications models' published parameter counts."""
    from specc.pipeline import check_file

    want = {"vgg16": 138_357_544, "resnet50": 25_636_712, "mobilenet_v2": 3_538_984}
    for name, params in want.items():
        result = check_file(ROOT / "bench" / "specs" / f"{name}.yaml")
        assert result.ok, [d.format() for d in result.diagnostics]
        assert result.model.total_params == params, name
    flat = check_file(ROOT / "bench" / "specs" / "flat400.yaml")
    assert flat.ok and len(flat.model.layers) == 400
