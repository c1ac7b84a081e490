"""Smoke test of the benchmarks: `bench/run.py --quick` runs and writes sane numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_quick(tmp_path):
    name = "smoke_test"
    out = ROOT / "bench" / "results" / f"{name}.json"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--runs", "1", "--name", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert elapsed < 60
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
