"""specc benchmarks: cold CLI vs Keras / PyTorch, warm validation + inference, import time.

    python bench/run.py            # full run  -> bench/results/full.json
    python bench/run.py --quick    # smoke run -> bench/results/quick.json (< 60 s)
    python bench/run.py --name x   # -> bench/results/x.json

Every number is a median over several runs, with its spread (min, max, and the
interquartile range). Ratios compare medians taken in the same run, with the contenders'
runs interleaved (round-robin) so that drift in the machine's load hits all of them alike.

Measures:
  (a) cold `specc summary specs/mnist_cnn.yaml` (the venv's console script, a fresh
      process each time) vs a fresh Python that builds the same model in Keras and prints
      model.summary(), and vs one that builds it in PyTorch and counts its parameters;
  (b) warm, in-process validation + inference (`check_data`) and parse + validation +
      inference (`check_text` of YAML) of generated specs of 10 .. 10,000 layers, with the
      time per layer (flat per-layer time = linear growth);
  (c) cold `python -c "import specc"` and `python -c "import specc.pipeline"`, plus the
      modules that cost most to import (`python -X importtime`);
  (d) cold `specc compile` per target (keras, pytorch, onnx) and the generated code's size;
  (e) this machine's matrix-multiply peak (torch.matmul 2048 x 2048, fp32 and bf16);
  (f) training throughput on real MNIST (a slice, one warm-up epoch, then measured epochs)
      of the CNN and the MLP: specc-generated Keras vs hand-written Keras, specc-generated
      PyTorch vs a hand-written PyTorch loop, with thread and bf16 variants; achieved
      FLOP/s from specc's MAC count as a fraction of the peak;
  (g) CNN inference latency (batch 1) and throughput (batch 64): onnxruntime on specc's
      ONNX vs PyTorch eager vs Keras;
  (h) full mode only: `specc train` of both specs with both backends to the tutorials'
      accuracy (per-epoch test accuracy, wall time).

The framework measurements run in fresh processes (`bench/workers.py`). A full run writes
BENCHMARKS.md (`--no-markdown` to skip); `/proc/loadavg` is recorded before and after each
section because the machine is shared.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = Path(sys.executable)
SPECC = PYTHON.parent / "specc"
SPEC = "specs/mnist_cnn.yaml"
PARAMS = 104_202  # what all three must find for specs/mnist_cnn.yaml

KERAS_SCRIPT = """
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
from keras import layers
model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(32, 3, activation="relu"),
    layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation="relu"),
    layers.MaxPooling2D(2),
    layers.Conv2D(128, 3, activation="relu"),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
], name="mnist_cnn")
model.summary()
print("PARAMS", model.count_params())
"""

TORCH_SCRIPT = """
import torch
from torch import nn
model = nn.Sequential(
    nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(64, 128, 3), nn.ReLU(),
    nn.Flatten(), nn.Linear(1152, 10), nn.Softmax(dim=1),
)
print("PARAMS", sum(p.numel() for p in model.parameters()))
"""


# --------------------------------------------------------------------------- helpers


def spread(samples: list[float]) -> dict:
    """Median and spread of timing samples (seconds)."""
    ordered = sorted(samples)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "iqr": q3 - q1,
        "runs": len(ordered),
        "samples": ordered,
    }


def run_cold(cmd: list[str], must_contain: str, env: dict | None = None) -> float:
    """Wall time of one fresh process; checks that it did the work."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or must_contain not in proc.stdout:
        raise RuntimeError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
            f"{proc.stderr[-2000:]}"
        )
    return elapsed


def installed(dist: str) -> bool:
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("specc", "pydantic", "pydantic-core", "PyYAML", "typer", "keras"):
        out[dist] = metadata.version(dist) if installed(dist) else None
    for dist in ("tensorflow-cpu", "tensorflow"):
        if installed(dist):
            out["tensorflow"] = metadata.version(dist)
            break
    out["torch"] = metadata.version("torch") if installed("torch") else None
    return out


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


# --------------------------------------------------------------------------- (a) cold CLI


def bench_cold(runs: int) -> dict:
    contenders = {
        "specc summary": ([str(SPECC), "summary", SPEC], "104,202", None),
    }
    if installed("keras"):
        contenders["keras model.summary()"] = (
            [str(PYTHON), "-c", KERAS_SCRIPT],
            f"PARAMS {PARAMS}",
            {"TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    if installed("torch"):
        contenders["torch parameter count"] = (
            [str(PYTHON), "-c", TORCH_SCRIPT],
            f"PARAMS {PARAMS}",
            None,
        )
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for cmd, want, env in contenders.values():  # warm the OS file cache once
        run_cold(cmd, want, env)
    for _ in range(runs):  # round-robin
        for name, (cmd, want, env) in contenders.items():
            samples[name].append(run_cold(cmd, want, env))
    out = {
        name: {"command": " ".join(_short(c) for c in contenders[name][0]), **spread(s)}
        for name, s in samples.items()
    }
    base = out["specc summary"]["median"]
    for name in out:
        out[name]["ratio_to_specc"] = out[name]["median"] / base
    return out


def _short(part: str) -> str:
    if part == KERAS_SCRIPT:
        return "'<keras: build mnist_cnn, model.summary()>'"
    if part == TORCH_SCRIPT:
        return "'<torch: build mnist_cnn, count parameters>'"
    try:
        return str(Path(part).relative_to(ROOT))
    except ValueError:
        return part


# --------------------------------------------------------------------------- (b) warm scaling


def generated_spec(n_layers: int) -> dict:
    """A valid spec of ``n_layers`` layers: a repeating Dense / BatchNorm / Activation /
    Dropout block on 64 features, with a residual Add every block (a DAG, not just a chain)."""
    layers: list[dict] = []
    previous = "x"
    block_in = "x"
    i = 0
    while len(layers) < n_layers:
        kind = i % 5
        name = f"l{i}"
        if kind == 0:
            layer = {"type": "Dense", "units": 64, "name": name, "inputs": [previous]}
            block_in = previous
        elif kind == 1:
            layer = {"type": "BatchNormalization", "name": name, "inputs": [previous]}
        elif kind == 2:
            layer = {"type": "Activation", "activation": "relu", "name": name, "inputs": [previous]}
        elif kind == 3:
            layer = {"type": "Dropout", "rate": 0.1, "name": name, "inputs": [previous]}
        else:
            layer = {"type": "Add", "name": name, "inputs": [previous, block_in]}
        layers.append(layer)
        previous = name
        i += 1
    return {
        "version": 1,
        "name": f"generated_{n_layers}",
        "inputs": [{"name": "x", "shape": [64]}],
        "layers": layers,
    }


def bench_warm(sizes: list[int], repeats: int) -> dict:
    import yaml

    from specc.pipeline import check_data, check_text

    check_data(generated_spec(10))  # import and warm everything first
    out = {}
    for n in sizes:
        data = generated_spec(n)
        text = yaml.safe_dump(data, sort_keys=False)
        result = check_data(data)
        assert result.ok and len(result.model.layers) == n, [
            d.format() for d in result.diagnostics[:3]
        ]
        rows = {}
        for label, call, collect in (
            ("check_data", lambda d=data: check_data(d), True),
            ("check_text_yaml", lambda t=text: check_text(t, format="yaml"), True),
            # the same with the cyclic GC paused: shows what Python's GC adds on big specs
            ("check_text_yaml_gc_off", lambda t=text: check_text(t, format="yaml"), False),
        ):
            samples = []
            for _ in range(repeats):
                gc.collect()
                if not collect:
                    gc.disable()
                try:
                    start = time.perf_counter()
                    call()
                    samples.append(time.perf_counter() - start)
                finally:
                    gc.enable()
            stats = spread(samples)
            stats["per_layer_us"] = stats["median"] / n * 1e6
            rows[label] = stats
        out[str(n)] = rows
    return out


# --------------------------------------------------------------------------- (c) import


def bench_import(runs: int) -> dict:
    out = {}
    for label, code in (
        ("import specc", "import specc"),
        ("import specc.pipeline", "import specc.pipeline"),
        ("python -c pass (baseline)", "pass"),
    ):
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([str(PYTHON), "-c", code], cwd=ROOT, check=True)
            samples.append(time.perf_counter() - start)
        out[label] = spread(samples)
    out["importtime_top"] = importtime_top()
    return out


def importtime_top(n: int = 12) -> list[dict]:
    """Modules with the largest self import time for `check_file(SPEC)` (python -X importtime)."""
    code = f"from specc.pipeline import check_file; check_file({SPEC!r})"
    proc = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, module = line[len("import time:") :].split("|")
        rows.append(
            {
                "module": module.strip(),
                "self_ms": int(self_us) / 1000,
                "cumulative_ms": int(cumulative_us) / 1000,
            }
        )
    rows.sort(key=lambda r: r["self_ms"], reverse=True)
    return rows[:n]


# --------------------------------------------------------------------------- report


def markdown(results: dict) -> str:
    lines = [
        "| Measurement | Command | Median | Spread (min - max, IQR) | Ratio |",
        "|---|---|---:|---|---:|",
    ]

    def ms(x: float) -> str:
        return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"

    for name, row in results["cold"].items():
        lines.append(
            f"| cold: {name} | `{row['command']}` | {ms(row['median'])} | "
            f"{ms(row['min'])} - {ms(row['max'])}, IQR {ms(row['iqr'])} | "
            f"{row['ratio_to_specc']:.1f}x |"
        )
    for name, row in results["import"].items():
        if name == "importtime_top":
            continue
        lines.append(
            f'| cold import | `python -c "{name.replace("python -c ", "")}"` | '
            f"{ms(row['median'])} | {ms(row['min'])} - {ms(row['max'])}, IQR {ms(row['iqr'])} | |"
        )
    for n, rows in results["warm"].items():
        for label, row in rows.items():
            lines.append(
                f"| warm: {label}, {int(n):,} layers | `{label}(spec)` in-process | "
                f"{ms(row['median'])} | {ms(row['min'])} - {ms(row['max'])}, "
                f"IQR {ms(row['iqr'])} | {row['per_layer_us']:.0f} µs/layer |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 60 s)")
    parser.add_argument("--name", help="results file name (default: quick or full)")
    parser.add_argument("--runs", type=int, help="cold runs per contender")
    args = parser.parse_args(argv)

    quick = args.quick
    cold_runs = args.runs or (2 if quick else 10)
    sizes = [10, 100, 1000] if quick else [10, 100, 1000, 10000]
    repeats = 3 if quick else 7
    name = args.name or ("quick" if quick else "full")

    sys.path.insert(0, str(ROOT))
    started = time.time()
    results = {
        "name": name,
        "quick": quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "versions": versions(),
        "cold": bench_cold(cold_runs),
        "import": bench_import(3 if quick else 10),
        "warm": bench_warm(sizes, repeats),
    }
    results["elapsed_s"] = time.time() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwrote {path.relative_to(ROOT)} in {results['elapsed_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
