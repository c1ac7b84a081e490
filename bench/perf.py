"""Section (p) of `bench/run.py`: cold checks at zoo scale and big-model export (issue 20).

  python bench/run.py --only-perf [--runs N] [--big]   # this section alone -> results/perf.json
                                                        # and its part of BENCHMARKS.md

* cold `specc summary` / `specc validate` of every bundled spec and of the zoo specs
  (bench/specs: ResNet50, MobileNetV2, VGG16 and a 400-layer flat chain), each in a fresh
  process, against a fresh Python that builds the same model in Keras (the code specc
  generates, then model.summary()) and one that builds it in PyTorch and counts its
  parameters; the contenders take turns. Python's bytecode cache is on for everyone
  (``PYTHONPYCACHEPREFIX`` in a temporary folder, warmed by one run), as in an installed
  package: this machine's ``PYTHONDONTWRITEBYTECODE=1`` would make every run recompile;
* cold `specc compile --target onnx` of VGG16 (138 M parameters);
* with ``--big``: the export of a 603 M-parameter spec (2.4 GB of weights), which goes to
  ONNX's external-data format.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)


def console_script() -> Path:
    """The `specc` command as `pip install` writes it for this checkout: a script that
    imports the ``[project.scripts]`` entry point of pyproject.toml and calls it. The
    environment's own script is used when it is that script; one written to a temporary
    folder otherwise (an editable install made before the entry point moved keeps the old
    one until it is reinstalled)."""
    import re

    import tomllib

    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["specc"]
    module, _, func = entry.partition(":")
    text = (
        f"#!{PYTHON}\nimport sys\nfrom {module} import {func}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n"
        f"    sys.exit({func}())\n"
    )
    installed = PYTHON.parent / "specc"
    if installed.is_file() and re.sub(r"^#!.*\n", "", installed.read_text()) == re.sub(
        r"^#!.*\n", "", text
    ):
        return installed
    folder = Path(tempfile.mkdtemp(prefix="specc-bin-"))
    script = folder / "specc"
    script.write_text(text)
    script.chmod(0o755)
    return script


SPECC = console_script()
ZOO = ["bench/specs/resnet50.yaml", "bench/specs/mobilenet_v2.yaml", "bench/specs/vgg16.yaml",
       "bench/specs/flat400.yaml"]  # fmt: skip

KERAS_BUILD = """
import os, sys, importlib.util
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
spec = importlib.util.spec_from_file_location("m", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
model = m.build_model()
model.summary()
print("PARAMS", model.count_params())
"""

TORCH_BUILD = """
import sys, importlib.util
spec = importlib.util.spec_from_file_location("m", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
net = getattr(m, sys.argv[2])()
print("PARAMS", sum(p.numel() for p in net.parameters())
      + sum(b.numel() for n, b in net.named_buffers() if n.endswith(("_mean", "_var"))))
"""


def _env(cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"PYTHONPYCACHEPREFIX": cache, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return env


def _time(cmd, env, must: str = "") -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or must not in proc.stdout:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        )
    return elapsed


def _stats(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "runs": len(s), "samples": s}


def _params(spec: str) -> int:
    sys.path.insert(0, str(ROOT))
    from specc.pipeline import check_file

    return check_file(ROOT / spec).model.total_params


def bench_perf(
    runs: int,
    frameworks: bool,
    big: bool = False,
    data_dir: str | None = None,
    zoo_framework_runs: int = 3,
    keras_training: bool = False,
) -> dict:
    from importlib import metadata

    cache = tempfile.mkdtemp(prefix="specc-pycache-")
    work = Path(tempfile.mkdtemp(prefix="specc-perf-"))
    env = _env(cache)
    bundled = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").iterdir()
                     if p.suffix in (".yaml", ".json"))  # fmt: skip
    out: dict = {"runs": runs, "bytecode_cache": True, "zoo_framework_runs": zoo_framework_runs}
    out["command"] = str(SPECC)

    # every bundled spec: summary and validate, cold
    rows = {}
    for spec in bundled:
        rows[spec] = {"summary": [], "validate": []}
    for spec in bundled:  # warm the bytecode and file caches
        _time([str(SPECC), "summary", spec], env)
    for _ in range(runs):
        for spec in bundled:
            rows[spec]["summary"].append(_time([str(SPECC), "summary", spec], env))
            rows[spec]["validate"].append(_time([str(SPECC), "validate", spec], env, ": ok"))
    out["bundled"] = {spec: {k: _stats(v) for k, v in r.items()} for spec, r in rows.items()}
    all_summary = [t for r in rows.values() for t in r["summary"]]
    all_validate = [t for r in rows.values() for t in r["validate"]]
    out["bundled_all"] = {"summary": _stats(all_summary), "validate": _stats(all_validate)}

    # zoo specs: specc vs Keras vs PyTorch building the same model
    have = {d: _installed(metadata, d) for d in ("keras", "torch")}
    zoo = {}
    for spec in ZOO:
        stem = Path(spec).stem
        params = _params(spec)
        contenders = {"specc summary": ([str(SPECC), "summary", spec], f"{params:,}")}
        if frameworks and have["keras"] and stem != "flat400":
            path = work / f"{stem}_keras.py"
            _time([str(SPECC), "compile", spec, "--target", "keras", "-o", str(path)], env)
            contenders["keras build + summary"] = (
                [str(PYTHON), "-c", KERAS_BUILD, str(path)],
                f"PARAMS {params}",
            )
        if frameworks and have["torch"] and stem != "flat400":
            path = work / f"{stem}_torch.py"
            _time([str(SPECC), "compile", spec, "--target", "pytorch", "-o", str(path)], env)
            sys.path.insert(0, str(ROOT))
            from specc.pipeline import check_file
            from specc.targets.pytorch.codegen import plan

            cls = plan(check_file(ROOT / spec).model).class_name
            contenders["torch build + count"] = (
                [str(PYTHON), "-c", TORCH_BUILD, str(path), cls],
                f"PARAMS {params}",
            )
        samples = {name: [] for name in contenders}
        _time(contenders["specc summary"][0], env, contenders["specc summary"][1])  # warm
        for k in range(runs):
            for name, (cmd, must) in contenders.items():
                # the frameworks take 5-20 s a build: zoo_framework_runs of them, enough
                # for a ratio of 15-20x; specc every round
                if name == "specc summary" or k < zoo_framework_runs:
                    samples[name].append(_time(cmd, env, must))
        row = {name: _stats(s) for name, s in samples.items()}
        base = row["specc summary"]["median"]
        for name in row:
            row[name]["ratio_to_specc"] = row[name]["median"] / base
        row["layers"] = len(_layers(spec))
        row["params"] = params
        zoo[stem] = row
    out["zoo"] = zoo

    # ONNX export of VGG16, cold
    if _installed(metadata, "onnx"):
        target = work / "vgg16.onnx"
        cmd = [
            str(SPECC),
            "compile",
            "bench/specs/vgg16.yaml",
            "--target",
            "onnx",
            "-o",
            str(target),
        ]
        samples = [_time(cmd, env) for _ in range(max(1, min(runs, 3)))]
        out["onnx_vgg16"] = {**_stats(samples), "bytes": target.stat().st_size}
        target.unlink()
        if big:  # 2.4 GB written; what stops it is recorded instead of the numbers
            import shutil

            free = shutil.disk_usage(work).free
            if free < 6e9:
                out["onnx_big"] = {"skipped": f"{free / 1e9:.1f} GB free in {work.parent}"}
            else:
                try:
                    out["onnx_big"] = _big_export(work, env)
                except (RuntimeError, MemoryError, OSError) as exc:
                    out["onnx_big"] = {"failed": str(exc).strip().splitlines()[-1][:300]}
    if frameworks and have["keras"] and data_dir and keras_training:
        out["keras_training"] = _keras_training(data_dir)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    return out


def _keras_training(data_dir: str) -> dict:
    """specc's Keras loop (a whole epoch through model.fit) vs hand-written model.fit, MNIST
    slice of 12,000 samples, 3 measured epochs each (bench/workers.py train)."""
    import json

    out = {}
    for model in ("mnist_mlp", "mnist_cnn"):
        proc = subprocess.run(
            [str(PYTHON), str(ROOT / "bench" / "workers.py"), "train", "--framework", "keras",
             "--model", model, "--samples", "12000", "--epochs", "3", "--data-dir", data_dir],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        rows = json.loads(proc.stdout.strip().splitlines()[-1])["contenders"]
        out[model] = {
            name: {"samples_per_s": row["median"], "min": row["min"], "max": row["max"]}
            for name, row in rows.items()
        }
    return out


def _big_export(work: Path, env: dict) -> dict:
    import yaml

    spec = work / "huge.yaml"
    spec.write_text(yaml.safe_dump({
        "version": 1, "name": "huge", "inputs": [{"name": "x", "shape": [16384]}],
        "layers": [{"type": "Dense", "units": 16384}, {"type": "Dense", "units": 16384},
                   {"type": "Dense", "units": 4096}],
    }))  # fmt: skip
    target = work / "huge.onnx"
    seconds = _time([str(SPECC), "compile", str(spec), "--target", "onnx", "-o", str(target)], env)
    data = work / "huge.onnx.data"
    row = {"seconds": seconds, "params": _params_of(spec), "model_bytes": target.stat().st_size,
           "data_bytes": data.stat().st_size if data.exists() else 0}  # fmt: skip
    import onnx

    start = time.perf_counter()
    onnx.checker.check_model(str(target), full_check=True)
    row["checker_seconds"] = time.perf_counter() - start
    for p in (spec, target, data):
        p.unlink(missing_ok=True)
    return row


def _params_of(spec: Path) -> int:
    from specc.pipeline import check_file

    return check_file(spec).model.total_params


def _layers(spec: str) -> list:
    import yaml

    return yaml.safe_load((ROOT / spec).read_text())["layers"]


def _installed(metadata, dist: str) -> bool:
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


# --------------------------------------------------------------------------- BENCHMARKS.md


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def perf_section(results: dict) -> list[str]:
    perf = results["perf"]
    b = perf["bundled_all"]
    lines = [
        "## (p) Cold checks at zoo scale, big-model export",
        "",
        f"Fresh processes, bytecode cache on (as installed), {perf['runs']} runs per contender, "
        "round-robin. `bench/run.py --only-perf` measures this section alone.",
        "",
        f"Every bundled spec (`specs/`, {len(perf['bundled'])} files): `specc summary` median "
        f"**{ms(b['summary']['median'])}** ({ms(b['summary']['min'])} - {ms(b['summary']['max'])}), "
        f"`specc validate` median **{ms(b['validate']['median'])}** "
        f"({ms(b['validate']['min'])} - {ms(b['validate']['max'])}).",
        "",
        "| Spec | Layers | Parameters | specc summary | Keras build + summary | PyTorch build + count |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stem, row in perf["zoo"].items():
        cells = []
        for name in ("keras build + summary", "torch build + count"):
            r = row.get(name)
            cells.append(f"{ms(r['median'])} ({r['ratio_to_specc']:.1f}x)" if r else "n/a")
        s = row["specc summary"]
        lines.append(
            f"| {stem} | {row['layers']} | {row['params']:,} | **{ms(s['median'])}** "
            f"({ms(s['min'])} - {ms(s['max'])}) | {cells[0]} | {cells[1]} |"
        )
    lines.append("")
    if "onnx_vgg16" in perf:
        o = perf["onnx_vgg16"]
        lines += [
            f"`specc compile bench/specs/vgg16.yaml --target onnx` (138,357,544 parameters, "
            f"{o['bytes'] / 1e6:.0f} MB): median **{ms(o['median'])}** over {o['runs']} runs "
            f"({ms(o['min'])} - {ms(o['max'])})" + (f"; {o['note']}." if o.get("note") else "."),
            "",
        ]
    if "onnx_big" in perf and ("skipped" in perf["onnx_big"] or "failed" in perf["onnx_big"]):
        g = perf["onnx_big"]
        why = f"skipped ({g['skipped']})" if "skipped" in g else f"failed: {g['failed']}"
        lines += [f"The >2 GB export (a 604 M-parameter spec): {why}.", ""]
    elif "onnx_big" in perf:
        g = perf["onnx_big"]
        lines += [
            f"A {g['params']:,}-parameter spec: written in {ms(g['seconds'])} as a "
            f"{g['model_bytes'] / 1e3:.0f} kB model + {g['data_bytes'] / 1e9:.2f} GB of external "
            f"data; the path-based checker takes {ms(g['checker_seconds'])}.",
            "",
        ]
    if "keras_training" in perf:
        lines += [
            "Keras training, MNIST slice (12,000 samples, 3 measured epochs, samples/s, median): "
            "specc's loop runs each epoch through `model.fit` over exactly its batches.",
            "",
            "| Model | specc Keras | hand-written Keras (`model.fit`) | Ratio |",
            "|---|---:|---:|---:|",
        ]
        for model, rows in perf["keras_training"].items():
            a, b = rows.get("specc Keras"), rows.get("hand-written Keras")
            if a and b:
                lines.append(
                    f"| {model} | {a['samples_per_s']:,.0f} | {b['samples_per_s']:,.0f} | "
                    f"**{a['samples_per_s'] / b['samples_per_s']:.2f}x** |"
                )
        lines.append("")
    load = results.get("load", {}).get("perf")
    if load:
        cpus = (results.get("machine") or {}).get("cpus") or 1
        lines.append(
            f"Load average during the section: {load['before']} -> {load['after']} ({cpus} CPUs)."
        )
        if max(load["before"][0], load["after"][0]) > 2 * cpus:
            lines.append(
                "The machine was heavily shared while this ran: absolute times are inflated "
                "several-fold; the ratios compare interleaved runs of the same moment."
            )
        lines.append("")
    return lines
