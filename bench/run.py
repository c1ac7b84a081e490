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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from perf import SPECC, bench_perf, perf_section  # bench/perf.py
from perf import _env as bytecode_env
from report import EXPLORATION, benchmarks_md  # bench/report.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = Path(sys.executable)
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
    """Wall time of one fresh process (``env``: its whole environment, default ours);
    checks that it did the work."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
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
    for dist in ("torch", "onnx", "onnxruntime", "numpy"):
        out[dist] = metadata.version(dist) if installed(dist) else None
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
    # every contender with Python's bytecode cache on, as installed packages have it (this
    # machine sets PYTHONDONTWRITEBYTECODE, which would make every run compile specc again)
    cache = bytecode_env(tempfile.mkdtemp(prefix="specc-pycache-"))
    contenders = {
        "specc summary": ([str(SPECC), "summary", SPEC], "104,202", cache),
        "specc validate": ([str(SPECC), "validate", SPEC], ": ok (", cache),
    }
    if installed("keras"):
        contenders["keras model.summary()"] = (
            [str(PYTHON), "-c", KERAS_SCRIPT],
            f"PARAMS {PARAMS}",
            cache,
        )
    if installed("torch"):
        contenders["torch parameter count"] = (
            [str(PYTHON), "-c", TORCH_SCRIPT],
            f"PARAMS {PARAMS}",
            cache,
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
    cache = bytecode_env(tempfile.mkdtemp(prefix="specc-pycache-"))  # as in bench_cold
    out = {}
    for label, code in (
        ("import specc", "import specc"),
        ("import specc.pipeline", "import specc.pipeline"),
        ("python -c pass (baseline)", "pass"),
    ):
        samples = []
        subprocess.run([str(PYTHON), "-c", code], cwd=ROOT, check=True, env=cache)  # warm
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([str(PYTHON), "-c", code], cwd=ROOT, check=True, env=cache)
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


# --------------------------------------------------------------------------- load


def loadavg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def section(results: dict, key: str, call, *args):
    """Run one section, recording the load average before and after it."""
    before = loadavg()
    started = time.perf_counter()
    value = call(*args)
    results.setdefault("load", {})[key] = {
        "before": before,
        "after": loadavg(),
        "seconds": time.perf_counter() - started,
    }
    results[key] = value
    print(
        f"  {key}: {time.perf_counter() - started:.1f} s, load {before} -> {loadavg()}",
        file=sys.stderr,
    )
    return value


def data_dir() -> str | None:
    for candidate in (os.environ.get("SPECC_DATA_DIR"), ROOT.parent / "shared" / "datasets"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return str(candidate)
    return None


def worker(*args: str, timeout: float = 1800, env: dict | None = None) -> dict:
    """Run `bench/workers.py ARGS` in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run(
        [str(PYTHON), str(ROOT / "bench" / "workers.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"workers.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- (d) compile

TARGETS = {"keras": "model_keras.py", "pytorch": "model_pytorch.py", "onnx": "model.onnx"}


def bench_compile(runs: int, out_dir: Path) -> dict:
    """Cold `specc compile` per target (round-robin) and the size of what it writes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = bytecode_env(tempfile.mkdtemp(prefix="specc-pycache-"))  # as in bench_cold
    out: dict = {}
    for spec in (SPEC, "specs/mnist_mlp.json"):
        stem = Path(spec).stem
        cmds = {
            target: [
                str(SPECC),
                "compile",
                spec,
                "--target",
                target,
                "-o",
                str(out_dir / f"{stem}_{name}"),
            ]
            for target, name in TARGETS.items()
        }
        samples: dict[str, list[float]] = {t: [] for t in cmds}
        for cmd in cmds.values():
            run_cold(cmd, "", cache)
        for _ in range(runs):
            for target, cmd in cmds.items():
                samples[target].append(run_cold(cmd, "", cache))
        rows = {}
        for target, cmd in cmds.items():
            path = Path(cmd[-1])
            row = {"command": " ".join(_short(c) for c in cmd[:-2]) + f" -o {path.name}"}
            row.update(spread(samples[target]))
            row["bytes"] = path.stat().st_size
            if target != "onnx":
                row["lines"] = len(path.read_text().splitlines())
            rows[target] = row
        out[stem] = rows
    return out


# --------------------------------------------------------------------------- (e)-(g) frameworks


def _summary_macs(spec: str) -> int:
    proc = subprocess.run(
        [str(SPECC), "summary", spec, "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(proc.stdout)["macs"])


def bench_peak(quick: bool) -> dict:
    """The fp32 / bf16 matmul peak, best of two worker runs (the machine is shared)."""
    args = ["--n", "1024", "--reps", "3"] if quick else []
    runs = [worker("peak", *args) for _ in range(1 if quick else 2)]
    best = runs[0]
    for other in runs[1:]:
        for key in ("fp32_gflops", "bf16_gflops"):
            for threads, value in other[key].items():
                best[key][threads] = max(best[key][threads], value)
    best["runs"] = len(runs)
    return best


def bench_training(quick: bool, data: str, peak: dict) -> dict:
    samples = (
        {"mnist_cnn": 256, "mnist_mlp": 512} if quick else {"mnist_cnn": 12000, "mnist_mlp": 12000}
    )
    epochs = "1" if quick else "3"
    models = ["mnist_cnn"] if quick else ["mnist_cnn", "mnist_mlp"]
    specs = {"mnist_cnn": SPEC, "mnist_mlp": "specs/mnist_mlp.json"}
    peak_fp32 = max(peak["fp32_gflops"].values())
    out: dict = {}
    for model in models:
        macs = _summary_macs(specs[model])
        rows: dict = {}
        common = ["--model", model, "--samples", str(samples[model]), "--epochs", epochs]
        common += ["--data-dir", data]
        # one process per configuration (threads are process-wide): torch at its default
        # threads, torch at 1 thread, Keras
        configs = [
            (["--framework", "torch", "--data-only"], None),
            (["--framework", "torch", "--threads", "1"], None),
            (["--framework", "keras"], None),
        ]
        for extra, env in configs[::2] if quick else configs:
            result = worker("train", *extra, *common, env=env)
            rows.update(result["contenders"])
            n = result["samples"]
        for row in rows.values():
            gflops = 6 * macs * row["median"] / 1e9
            row["gflops"] = gflops
            row["fraction_of_fp32_peak"] = gflops / peak_fp32
        out[model] = {
            "macs_per_sample": macs,
            "samples": n,
            "measured_epochs": int(epochs),
            "contenders": rows,
        }
    return out


def bench_inference(quick: bool, onnx_path: Path) -> dict:
    """One process per framework, the processes taking turns (``rounds`` times); per-call
    times pooled per contender."""
    rounds, b1, b64 = (1, 10, 2) if quick else (3, 100, 15)
    calls: dict[str, dict[str, list[float]]] = {"1": {}, "64": {}}
    for _ in range(rounds):
        # quick: Keras's ~5 s import is left out
        for framework in ("onnxruntime", "torch") if quick else ("onnxruntime", "torch", "keras"):
            args = ["infer", "--framework", framework, "--onnx", str(onnx_path)]
            args += ["--rounds", "3", "--calls-b1", str(b1), "--calls-b64", str(b64)]
            for batch, rows in worker(*args)["calls"].items():
                for name, samples in rows.items():
                    calls[batch].setdefault(name, []).extend(samples)
    out: dict = {"process_rounds": rounds}
    for batch, rows in calls.items():
        out[batch] = {}
        for name, samples in rows.items():
            row = spread(samples)
            row.pop("samples")
            row["p90"] = sorted(samples)[int(0.9 * (len(samples) - 1))]
            row["samples_per_second"] = int(batch) / row["median"]
            out[batch][name] = row
        base = out[batch]["onnxruntime (specc ONNX)"]["median"]
        for row in out[batch].values():
            row["ratio_to_onnxruntime"] = row["median"] / base
    return out


# --------------------------------------------------------------------------- (h) accuracy

TUTORIAL = {"mnist_cnn": 0.991, "mnist_mlp": 0.978}


def bench_accuracy(data: str, out_dir: Path, smoke: list[str] = ()) -> dict:
    """`specc train` with the spec's settings (5 epochs, full MNIST), once per backend; the
    per-epoch test accuracy from history.json (validation_split: test)."""
    runs = [
        ("mnist_cnn", SPEC, "keras", []),
        ("mnist_cnn", SPEC, "keras", ["--precision", "bf16"]),
        ("mnist_cnn", SPEC, "pytorch", []),
        ("mnist_cnn", SPEC, "pytorch", ["SPECC_MALLOC_TUNE=0"]),
        ("mnist_cnn", SPEC, "pytorch", ["--precision", "bf16"]),
        ("mnist_mlp", "specs/mnist_mlp.json", "keras", []),
        ("mnist_mlp", "specs/mnist_mlp.json", "pytorch", []),
    ]
    out: dict = {}
    for model, spec, backend, options in runs:
        label = f"{model} {backend}" + "".join(f" {e}" for e in options)
        env = dict(e.split("=", 1) for e in options if "=" in e)  # NAME=value: environment
        extra = [e for e in options if "=" not in e]
        run_dir = out_dir / label.replace(" ", "_").replace("--", "")
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        cmd = [
            str(SPECC),
            "train",
            spec,
            "--backend",
            backend,
            "--data-dir",
            data,
            "--out",
            str(run_dir),
            "--quiet",
            *extra,
            *smoke,
        ]
        start = time.perf_counter()
        subprocess.run(
            cmd,
            cwd=ROOT,
            check=True,
            capture_output=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        )
        wall = time.perf_counter() - start
        history = json.loads((run_dir / "history.json").read_text())
        run = json.loads((run_dir / "run.json").read_text())
        target = TUTORIAL[model]
        reached = next(
            (row["epoch"] for row in history if row.get("val_accuracy", 0) >= target), None
        )
        elapsed = 0.0
        reached_seconds = None
        for row in history:
            elapsed += row["seconds"]
            if reached is not None and row["epoch"] == reached:
                reached_seconds = elapsed
                break
        out[label] = {
            "command": " ".join(
                [
                    *(f"{k}={v}" for k, v in env.items()),
                    f"specc train {spec} --backend {backend} --data-dir $SPECC_DATA_DIR",
                    *extra,
                ]
            ),
            "model": model,
            "backend": backend,
            "options": extra,
            "target": target,
            "val_accuracy": [row.get("val_accuracy") for row in history],
            "epoch_seconds": [row["seconds"] for row in history],
            "final_test_accuracy": history[-1].get("val_accuracy"),
            "train_loss": history[-1].get("loss"),
            "test_loss": history[-1].get("val_loss"),
            "epochs_to_target": reached,
            "train_seconds_to_target": reached_seconds,
            "train_seconds": run["train_seconds"],
            "samples_per_second": run["samples_per_second"],
            "wall_seconds": wall,
        }
    return out


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


PERF_START, PERF_END = "<!-- section p: start -->", "<!-- section p: end -->"


def write_benchmarks_md(text: str) -> None:
    """BENCHMARKS.md, keeping the blocks other benchmarks wrote into it: each
    ``<!-- keep: NAME -->`` ... ``<!-- /keep: NAME -->`` block of the current file is
    appended unchanged (the data-parallel section is kept by ``make bench`` itself)."""
    import re

    md = ROOT / "BENCHMARKS.md"
    old = md.read_text() if md.exists() else ""
    blocks = [
        m.group(0)
        for m in re.finditer(r"<!-- keep: ([\w-]+) -->.*?<!-- /keep: \1 -->", old, flags=re.S)
    ]
    md.write_text(text.rstrip("\n") + "".join(f"\n\n{b}" for b in blocks) + "\n")


def only_perf(runs: int, big: bool) -> int:
    """Section (p) alone: bench/results/perf.json, and its part of BENCHMARKS.md replaced."""
    sys.path.insert(0, str(ROOT))
    from importlib.util import find_spec

    frameworks = all(find_spec(m) is not None for m in ("torch", "keras"))
    results: dict = {"name": "perf", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "machine": machine(), "versions": versions()}  # fmt: skip
    section(results, "perf", bench_perf, runs, frameworks, big, data_dir())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "perf.json").write_text(json.dumps(results, indent=2) + "\n")
    block = "\n".join([PERF_START, *perf_section(results), PERF_END])
    print(block)
    md = ROOT / "BENCHMARKS.md"
    text = md.read_text() if md.exists() else "# Benchmarks\n"
    if PERF_START in text and PERF_END in text:
        head, rest = text.split(PERF_START, 1)
        text = head + block + rest.split(PERF_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    md.write_text(text)
    print("wrote bench/results/perf.json and section (p) of BENCHMARKS.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 60 s)")
    parser.add_argument("--name", help="results file name (default: quick or full)")
    parser.add_argument("--runs", type=int, help="cold runs per contender")
    parser.add_argument(
        "--no-markdown", action="store_true", help="do not rewrite BENCHMARKS.md (full runs)"
    )
    parser.add_argument(
        "--markdown-from", metavar="JSON", help="only rewrite BENCHMARKS.md from a results file"
    )
    parser.add_argument(
        "--only-perf",
        action="store_true",
        help="only section (p): cold checks at zoo scale, ONNX export (bench/perf.py)",
    )
    parser.add_argument(
        "--big", action="store_true", help="--only-perf: also the >2 GB ONNX export"
    )
    parser.add_argument(
        "--no-big", action="store_true", help="full run: skip the >2 GB ONNX export (2.4 GB)"
    )
    args = parser.parse_args(argv)
    if args.only_perf:
        return only_perf(args.runs or 5, args.big)
    if args.markdown_from:
        results = json.loads(Path(args.markdown_from).read_text())
        write_benchmarks_md(benchmarks_md(results, EXPLORATION))
        print("wrote BENCHMARKS.md")
        return 0

    quick = args.quick
    cold_runs = args.runs or (2 if quick else 10)
    sizes = [10, 100, 1000] if quick else [10, 100, 1000, 10000]
    repeats = 3 if quick else 7
    name = args.name or ("quick" if quick else "full")

    sys.path.insert(0, str(ROOT))
    started = time.time()
    results: dict = {
        "name": name,
        "quick": quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python bench/run.py" + (" --quick" if quick else ""),
        "machine": machine(),
        "versions": versions(),
        "loadavg_start": loadavg(),
    }
    section(results, "cold", bench_cold, cold_runs)
    section(results, "import", bench_import, 3 if quick else 10)
    section(results, "warm", bench_warm, sizes, repeats)
    work = Path(tempfile.mkdtemp(prefix="specc-bench-"))
    try:
        section(results, "compile", bench_compile, args.runs or (1 if quick else 5), work)
        frameworks = installed("torch") and installed("keras") and installed("onnxruntime")
        data = data_dir()
        if frameworks:
            peak = section(results, "peak", bench_peak, quick)
            if data:
                section(results, "training", bench_training, quick, data, peak)
            section(results, "inference", bench_inference, quick, work / "mnist_cnn_model.onnx")
        if not quick:
            section(results, "perf", bench_perf, args.runs or 5, frameworks, not args.no_big, data)
        if frameworks and data and not quick:
            section(results, "explore", worker, "explore", "--data-dir", data)
            section(results, "accuracy", bench_accuracy, data, work / "runs")
        results["skipped"] = [
            what
            for what, ok in (
                ("frameworks (torch, keras, onnxruntime)", frameworks),
                ("MNIST", data),
            )
            if not ok
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_end"] = loadavg()
    results["elapsed_s"] = time.time() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    if not quick and not args.no_markdown:
        write_benchmarks_md(benchmarks_md(results, EXPLORATION))
        print("wrote BENCHMARKS.md")
    print(f"\nwrote {path.relative_to(ROOT)} in {results['elapsed_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
