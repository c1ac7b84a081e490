"""BENCHMARKS.md from the results of `bench/run.py` (`python bench/run.py --markdown-from
bench/results/full.json` rewrites it without measuring again)."""

from __future__ import annotations

# --------------------------------------------------------------------------- formatting


def ms(x: float) -> str:
    if x < 1e-3:
        return f"{x * 1e6:.0f} µs"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def rate(x: float) -> str:
    return f"{x:,.0f}"


def spread_text(row: dict, fmt=ms) -> str:
    return f"{fmt(row['min'])} - {fmt(row['max'])}, IQR {fmt(row['iqr'])}"


def load_text(load: dict | None) -> str:
    if not load:
        return "n/a"
    before, after = load.get("before"), load.get("after")
    return f"{before[0]:.2f} -> {after[0]:.2f}" if before and after else "n/a"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _vs(rows: dict, a: str, b: str) -> str:
    if a not in rows or b not in rows:
        return "n/a"
    return ratio(rows[a]["median"], rows[b]["median"])


def baseline_of(name: str) -> str | None:
    """The hand-written contender measured in the same process as ``name``."""
    if name.startswith("specc PyTorch"):
        return name.replace("specc PyTorch", "hand-written PyTorch").replace(", bf16", "")
    if name.startswith("specc Keras"):
        return "hand-written Keras"
    return None


# What the exploration of the PyTorch path found, and what is proposed (prose; the numbers
# it refers to are in the tables the sections above generate).
EXPLORATION: list[str] = [
    "## What brings the PyTorch path closer to the limit",
    "",
    "Tried on the CNN (where the gap to the machine's peak is largest), measured in sections "
    "(f) and (i):",
    "",
    "1. **The allocator (applied, default on)**: glibc serves blocks above its mmap "
    "threshold (128 KiB in a fresh process) with fresh `mmap` pages and unmaps them on free, "
    "so training steps page-faulted their activation and gradient buffers in again (a batch "
    "of 64 through the first convolution is 5.5 MB). glibc raises the threshold by itself "
    "once the process frees a large mapped block, which in `specc train` happens in the "
    "first validation pass, so the slow steps were those of epoch 1 (and of every epoch of "
    "a run without validation data); how slow depends on the process's allocation history "
    "(2x in a fresh process during development; the benchmark workers, which build several "
    "models first, hardly see it). `specc.runner.torch_backend.tune_allocator()` sets the "
    "mmap threshold to 32 MiB and the trim threshold to 64 MiB (`mallopt`, once per process, "
    "when a `TorchBackend` is made). Numerics are untouched: the two `specc train` runs "
    "with and without it (`SPECC_MALLOC_TUNE=0`) in (h) have the same per-epoch test "
    "accuracy; compare their first epochs. TensorFlow has its own allocator and gains "
    "nothing from it.",
    "2. **bf16 autocast (opt-in: `specc train --precision bf16`)**: this CPU has "
    "AVX512_BF16 and its bf16 matmul peak is about 4x the fp32 one (e). The training forward "
    "pass runs under `torch.autocast('cpu', dtype=torch.bfloat16)`; the weights, optimizer "
    "state, loss (from float32 logits) and evaluation stay float32, so the saved model and "
    "the ONNX export are ordinary float32 models. Section (h) shows the same test accuracy "
    "as fp32 after 5 epochs. Opt-in because it changes the numerics (a run no longer "
    "matches Keras's to 1e-5).",
    "3. **Threads (available: `specc train --threads N`)**: on an idle machine torch's "
    "default (2 threads) is fastest; when other jobs keep the cores busy, OpenMP's "
    "spin-waiting threads lose their time slices and 2 threads fall below 1 thread (seen "
    "during development at a load average of 4-5 on these 2 cores: CNN 516 samples/s with 2 "
    "threads vs 2,382 with 1). `--threads 1` is the robust choice on a busy shared machine; "
    "it also sets TensorFlow's intra/inter-op threads for `--backend keras`.",
    "4. **channels-last** (`module.to(memory_format=torch.channels_last)`): no gain (i); the "
    "generated module's `permute` of the NHWC input is already a channels-last tensor that "
    "oneDNN takes as is. Not applied.",
    "5. **`torch.compile`** (inductor, CPU): no gain (i) and seconds of compilation per "
    "process (10-25 s without inductor's cache): the convolutions are oneDNN calls either "
    "way, and they dominate. Not applied.",
    "6. **Converting the dataset to a tensor once**: nothing to gain: the loop's batches are "
    "gathered float32 arrays that `torch.from_numpy` wraps without a copy, and the input "
    "pipeline alone runs at millions of samples/s (`data.batches only` in (f)).",
    "",
    "## The Keras path",
    "",
    "specc's loop trains a Keras epoch through `specc.runner.keras_backend.fit_batches`: "
    "Keras's compiled train step (`model.train_function`, the function `fit` and "
    "`train_on_batch` call) on each of the loop's batches, the loss and metric trackers "
    "reset once per epoch as `fit` resets them. Measured on the MLP (short steps, where "
    "overhead shows), two costs had kept it below a hand-written `model.fit`:",
    "",
    "1. **`model.fit` once per epoch** (the previous fit path) builds a `tf.data` pipeline "
    "(its functions traced again) and its callbacks on every call: about 50 ms per call "
    "here, plus concatenating the epoch's batches; a hand-written `fit(epochs=N)` pays it "
    "once. `train_on_batch` instead resets the trackers and copies its logs to Python on "
    "every call. The step loop pays neither.",
    "2. **`keras.utils.set_random_seed` every epoch** (the loop reseeds so that a resumed "
    "run continues exactly) calls `tf.random.set_seed`, which clears TensorFlow's kernel "
    "caches: the next call of every compiled function is instantiated again (30 ms for a "
    "small model's step, measured). Keras's TensorFlow backend never draws from that seed "
    "(its random ops are stateless, fed by Keras seed generators), so the per-epoch reseed "
    "now sets everything but it (`keras_backend.set_random_seed`); the run still seeds "
    "TensorFlow once, before the model is built. Dropout and GaussianNoise runs give the "
    "same weights bit for bit either way.",
    "",
    "Numerics are unchanged: tests/test_keras_fit_epoch.py checks the weights against one "
    "`train_on_batch` per batch bit for bit (dropout included), the Ctrl-C-inside-an-epoch "
    "checkpoint and an exact resume; tests/test_kill_resume.py kills and resumes real runs.",
    "",
    "## Proposals (not applied: they touch the core or other engineers' files)",
    "",
    "1. **Pause the cyclic GC while parsing and checking** in-process (`gc.disable()` / "
    "`gc.enable()` around `load_source` + `check_source`, or `gc.freeze()` after parsing): "
    "see the GC-paused column at 10,000 layers in (b): linear growth from 10 to 10,000 "
    "layers. (The console entry's fast path already runs with the GC off: a short-lived "
    "process.)",
    "2. **Multi-tensor (`torch._foreach_*`) Keras optimizers** in `specc/runner/torch_optim.py`: "
    "the per-parameter Python loop issues ~6 small ops per parameter per step; under load "
    "each is an OpenMP parallel region. Same update rule, fewer dispatches.",
    "3. (Keras epochs without per-call overhead: applied, see above.)",
    "4. **YAML**: a `SafeLoader` subclass with a smaller implicit resolver table (only the "
    "int / float / bool / null patterns a spec uses) would cut the per-scalar cost of big "
    "YAML specs.",
    "",
]

# --------------------------------------------------------------------------- sections


def headline(results: dict) -> list[str]:
    lines = ["## Headlines (ratios of medians taken in this run)", ""]
    cold = results["cold"]
    base = cold["specc summary"]["median"]
    others = [
        f"{'Keras' if 'keras' in name else 'PyTorch'} {row['ratio_to_specc']:.0f}x slower"
        for name, row in cold.items()
        if not name.startswith("specc")
    ]
    lines.append(
        f"- **Static analysis**: a cold `specc summary` of the MNIST CNN takes {ms(base)}"
        + (
            f" (`specc validate` {ms(cold['specc validate']['median'])})"
            if "specc validate" in cold
            else ""
        )
        + f"; building the model in the framework to get the same answer: {', '.join(others)}."
    )
    perf = results.get("perf")
    if perf:
        b = perf["bundled_all"]
        zoo = perf["zoo"]
        ratios = []
        for stem, row in zoo.items():
            k, t = row.get("keras build + summary"), row.get("torch build + count")
            if k and t:
                ratios.append(
                    f"{stem} {ms(row['specc summary']['median'])} "
                    f"(Keras {k['ratio_to_specc']:.0f}x, PyTorch {t['ratio_to_specc']:.0f}x slower)"
                )
        flat = zoo.get("flat400", {}).get("specc summary")
        lines.append(
            f"- **Cold checks of every bundled spec** ({len(perf['bundled'])} files, a fresh "
            f"process each): `specc summary` median {ms(b['summary']['median'])}, `specc "
            f"validate` median {ms(b['validate']['median'])} (issue 20's target: 0.15 s)"
            + (f"; a 400-layer flat spec {ms(flat['median'])} (target 0.2 s)" if flat else "")
            + ("; zoo specs: " + "; ".join(ratios) if ratios else "")
            + "."
        )
        parts = []
        if "onnx_vgg16" in perf:
            o = perf["onnx_vgg16"]
            parts.append(
                f"`specc compile --target onnx` of VGG16 (138 M parameters, "
                f"{o['bytes'] / 1e6:.0f} MB) {ms(o['median'])}"
            )
        g = perf.get("onnx_big")
        if g and "seconds" in g:
            parts.append(
                f"a {g['params'] / 1e6:.0f} M-parameter spec ({g['data_bytes'] / 1e9:.2f} GB) in "
                f"{ms(g['seconds'])}, to ONNX's external-data format"
            )
        elif g:
            parts.append(
                "the >2 GB export "
                + (f"skipped ({g['skipped']})" if "skipped" in g else f"failed: {g['failed']}")
            )
        if parts:
            lines.append("- **Big-model export**: " + "; ".join(parts) + ".")
    training = results.get("training", {})
    cnn = training.get("mnist_cnn", {}).get("contenders", {})
    if cnn:
        parts = []
        for model, block in training.items():
            rows = block["contenders"]
            parts.append(
                f"{model.replace('mnist_', '').upper()}: PyTorch "
                f"{_vs(rows, 'specc PyTorch', 'hand-written PyTorch')} (1 thread: "
                f"{_vs(rows, 'specc PyTorch, 1 thread', 'hand-written PyTorch, 1 thread')}), "
                f"Keras {_vs(rows, 'specc Keras', 'hand-written Keras')}"
                + (
                    f" (best epochs: {ratio(rows['specc Keras']['max'], rows['hand-written Keras']['max'])})"
                    if "specc Keras" in rows and "hand-written Keras" in rows
                    else ""
                )
            )
        load = results.get("load", {}).get("training")
        cpus = (results.get("machine") or {}).get("cpus") or 1
        busy = load and max(load["before"][0], load["after"][0]) > 1.5 * cpus
        lines.append(
            "- **Training throughput, specc-generated vs hand-written** (samples/s ratio of "
            "medians, same architecture, optimizer and batch size, default settings): "
            + "; ".join(parts)
            + "."
            + (
                f" The machine's load average reached {max(load['before'][0], load['after'][0]):.1f} "
                f"on {cpus} CPUs during this section: torch's 2-thread rows collapse whenever "
                "other jobs take a core (see 'Threads' below; a single epoch's spread in (f) "
                "shows it), so the 1-thread rows are the ones to compare."
                if busy
                else ""
            )
        )
        keras_bf16 = [
            f"{model.replace('mnist_', '').upper()} "
            f"{_vs(block['contenders'], 'specc Keras, bf16', 'specc Keras')}"
            for model, block in training.items()
            if "specc Keras, bf16" in block["contenders"]
        ]
        accuracy = results.get("accuracy", {})
        k32 = accuracy.get("mnist_cnn keras")
        k16 = accuracy.get("mnist_cnn keras --precision bf16")
        if keras_bf16:
            lines.append(
                "- **Keras bf16 vs fp32** (`specc train --backend keras --precision bf16`, "
                "Keras's `mixed_bfloat16` policy): samples/s "
                + ", ".join(keras_bf16)
                + (
                    f"; full MNIST CNN, 5 epochs: final test accuracy "
                    f"{k16['final_test_accuracy']:.2%} vs {k32['final_test_accuracy']:.2%}, "
                    f"final train loss {k16['train_loss']:.4f} vs {k32['train_loss']:.4f}, "
                    f"{k16['train_seconds']:.0f} vs {k32['train_seconds']:.0f} s of training"
                    if k16 and k32 and "train_loss" in k16
                    else ""
                )
                + "."
            )
        best = max(
            (name for name in cnn if name.startswith("specc PyTorch")),
            key=lambda name: cnn[name]["median"],
        )
        lines.append(
            f"- **Fastest CNN training**: `{best}` at {rate(cnn[best]['median'])} samples/s = "
            f"{cnn[best]['gflops']:.0f} GFLOP/s, {cnn[best]['fraction_of_fp32_peak']:.0%} of "
            f"the measured fp32 matmul peak ({max(results['peak']['fp32_gflops'].values()):.0f} "
            f"GFLOP/s; bf16's own peak is ~4x that); `specc PyTorch` (fp32): "
            f"{cnn['specc PyTorch']['fraction_of_fp32_peak']:.0%} of it."
        )
    inference = results.get("inference", {})
    if inference:
        one = inference["1"]
        ort = one["onnxruntime (specc ONNX)"]
        lines.append(
            f"- **Inference, batch 1**: onnxruntime on specc's ONNX {ms(ort['median'])} per "
            f"image; PyTorch eager {one['PyTorch eager (generated module)']['ratio_to_onnxruntime']:.1f}x "
            f"and Keras `predict_on_batch` {one['Keras predict_on_batch']['ratio_to_onnxruntime']:.0f}x "
            "slower. Batch 64: "
            + ", ".join(
                f"{name.split(' (')[0]} {rate(row['samples_per_second'])}/s"
                for name, row in inference["64"].items()
            )
            + "."
        )
    accuracy = results.get("accuracy", {})
    tuned = accuracy.get("mnist_cnn pytorch")
    untuned = accuracy.get("mnist_cnn pytorch SPECC_MALLOC_TUNE=0")
    bf16 = accuracy.get("mnist_cnn pytorch --precision bf16")
    if tuned and untuned:
        same = tuned["val_accuracy"] == untuned["val_accuracy"]
        lines.append(
            "- **Runner speed-up, `specc train specs/mnist_cnn.yaml --backend pytorch`** "
            "(full MNIST, 5 epochs): the allocator setting makes epoch 1 "
            f"{ratio(untuned['epoch_seconds'][0], tuned['epoch_seconds'][0])} as fast "
            f"({untuned['epoch_seconds'][0]:.1f} -> {tuned['epoch_seconds'][0]:.1f} s)"
            + (", with identical per-epoch test accuracy" if same else "")
            + "; the later epochs gain nothing (glibc raises its threshold itself after the "
            "first validation pass), so the 5-epoch training time goes "
            f"{untuned['train_seconds']:.0f} -> {tuned['train_seconds']:.0f} s, within this "
            "run's noise"
            + (
                f"; `--precision bf16` on top: {bf16['train_seconds']:.0f} s "
                f"({ratio(untuned['train_seconds'], bf16['train_seconds'])}), final test "
                f"accuracy {bf16['final_test_accuracy']:.2%} vs "
                f"{tuned['final_test_accuracy']:.2%}."
                if bf16
                else "."
            )
        )
    acc_load = results.get("load", {}).get("accuracy")
    acc_cpus = (results.get("machine") or {}).get("cpus") or 1
    if tuned and acc_load and max(acc_load["before"][0], acc_load["after"][0]) > 1.5 * acc_cpus:
        lines[-1] += (
            f" (Read with care: the load average was {acc_load['before'][0]:.1f} -> "
            f"{acc_load['after'][0]:.1f} on {acc_cpus} CPUs during these runs, and the "
            "PyTorch runs use 2 threads, which collapse when other jobs take a core: their "
            "times here measure the machine's load more than the setting.)"
        )
    if accuracy:
        parts = []
        for label, row in accuracy.items():
            final = row["final_test_accuracy"]
            reached = (
                f"reached {row['target']:.1%} at epoch {row['epochs_to_target']} "
                f"({row['train_seconds_to_target']:.0f} s of training)"
                if row["epochs_to_target"]
                else f"{final:.2%} after {len(row['val_accuracy'])} epochs"
            )
            model, _, rest = label.partition(" ")
            parts.append(
                f"{model.replace('mnist_', '').upper()} {rest}: {reached}, final {final:.2%}"
            )
        lines.append("- **Accuracy on full MNIST (spec settings)**: " + "; ".join(parts) + ".")
    lines.append("")
    return lines


def machine_section(results: dict) -> list[str]:
    m, v = results["machine"], results["versions"]
    lines = [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cpus']} vCPUs (AVX512, AVX512_BF16; a shared VM) |",
        f"| Memory | {m['memory']} |",
        f"| OS | {m['os']} {m['machine']} |",
        f"| Python | {v['python']} |",
        f"| specc | {v.get('specc')} (pydantic {v.get('pydantic')}, PyYAML {v.get('PyYAML')}, "
        f"typer {v.get('typer')}) |",
        f"| Frameworks | keras {v.get('keras')} on tensorflow-cpu {v.get('tensorflow')}; "
        f"torch {v.get('torch')}; onnx {v.get('onnx')}, onnxruntime {v.get('onnxruntime')}; "
        f"numpy {v.get('numpy')} |",
        f"| Date | {results['date']}, `{results['command']}` ({results['elapsed_s'] / 60:.1f} min) |",
        "",
        "The machine is shared with other jobs. The 1-minute load average before and after "
        "each section (2.0 = both cores busy; the benchmark's own processes count for 1-2 of "
        "it while they run):",
        "",
        "| Section | Seconds | Load (1 min) before -> after |",
        "|---|---:|---|",
    ]
    for key, load in results.get("load", {}).items():
        lines.append(f"| {key} | {load['seconds']:.0f} | {load_text(load)} |")
    lines.append("")
    return lines


def cold_section(results: dict) -> list[str]:
    lines = [
        "## (a) Cold: the summary of `specs/mnist_cnn.yaml` in a fresh process",
        "",
        "| Measurement | Command | Median | Spread (min - max, IQR) | Ratio |",
        "|---|---|---:|---|---:|",
    ]
    labels = {
        "specc summary": "specc",
        "specc validate": "specc validate",
        "keras model.summary()": "Keras",
        "torch parameter count": "PyTorch",
    }
    for name, row in results["cold"].items():
        median = ms(row["median"])
        lines.append(
            f"| {labels.get(name, name)} | `{row['command']}` | "
            f"{'**' + median + '**' if name == 'specc summary' else median} | "
            f"{spread_text(row)} | {row['ratio_to_specc']:.1f}x |"
        )
    slowest = results["cold"]["specc summary"]["max"]
    lines += [
        "",
        "All three find 104,202 parameters (the benchmark checks it). specc needs no framework; "
        f"its slowest run here took {ms(slowest)}. `specc` is the console script pip writes "
        "for the `[project.scripts]` entry point (`specc.entry:main`: plain `validate` / "
        "`summary` command lines run without importing typer; see section (p)). Every "
        "contender runs with Python's bytecode cache on, as installed packages have it.",
        "",
    ]
    return lines


def warm_section(results: dict) -> list[str]:
    lines = [
        "## (b) Warm: validation + inference in-process, 10 to 10,000 layers",
        "",
        "Generated specs: a repeating Dense / BatchNormalization / Activation / Dropout block "
        "with a residual Add (a DAG, not only a chain) on 64 features. `check_data` takes a "
        "dict (validation, graph resolution, inference); `check_text` also parses the YAML text.",
        "",
        "| Layers | `check_data(dict)` | per layer | `check_text(yaml)` | per layer | "
        "`check_text(yaml)`, GC paused | per layer |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, rows in results["warm"].items():
        cells = []
        for key in ("check_data", "check_text_yaml", "check_text_yaml_gc_off"):
            row = rows[key]
            cells.append(
                f"{ms(row['median'])} ({ms(row['min'])} - {ms(row['max'])}) | "
                f"{row['per_layer_us']:.0f} µs"
            )
        lines.append(f"| {int(n):,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Up to 1,000 layers the time per layer is flat (linear growth). At 10,000 layers "
        "`check_text` rises, and the last column shows why: with Python's cyclic garbage "
        "collector paused the same parse + check costs about what it costs per layer at 1,000 "
        "layers. The rise is the GC repeatedly walking the large object graph that parsing "
        "builds (the YAML node tree, the data, the located positions, the pydantic models), "
        "not an algorithm in specc: profiling `resolve`, `infer` and the topological sort at "
        "2,000 and 20,000 layers gives the same cost per layer. Most of the remaining YAML "
        "cost is PyYAML's per-scalar implicit-type resolver (about 30% of `check_text` under "
        "cProfile).",
        "",
    ]
    return lines


def import_section(results: dict) -> list[str]:
    lines = [
        "## (c) Cold import",
        "",
        "| Command | Median | Spread (min - max, IQR) |",
        "|---|---:|---|",
    ]
    for name, row in results["import"].items():
        if name == "importtime_top":
            continue
        code = "pass" if name.startswith("python -c pass") else name
        lines.append(f'| `python -c "{code}"` | {ms(row["median"])} | {spread_text(row)} |')
    top = results["import"].get("importtime_top", [])[:5]
    lines += [
        "",
        "`import specc` is lazy (a few ms over the bare interpreter). The pipeline's cost is "
        "pydantic and building the spec language's pydantic model classes; the largest "
        "self import times (`python -X importtime`): "
        + ", ".join(f"`{r['module']}` {r['self_ms']:.0f} ms" for r in top)
        + ". The full command line adds typer (~50 ms; plain `specc validate` / `specc summary` skip it, see (a)) and PyYAML (~15 ms).",
        "",
    ]
    return lines


def compile_section(results: dict) -> list[str]:
    lines = [
        "## (d) Compile: cold `specc compile` per target",
        "",
        "A fresh process per run, the targets round-robin. Size of what it writes.",
        "",
        "| Spec | Target | Command | Median | Spread (min - max, IQR) | Output |",
        "|---|---|---|---:|---|---:|",
    ]
    for spec, rows in results["compile"].items():
        for target, row in rows.items():
            size = f"{row['bytes']:,} B" + (f", {row['lines']} lines" if "lines" in row else "")
            lines.append(
                f"| {spec} | {target} | `{row['command']}` | {ms(row['median'])} | "
                f"{spread_text(row)} | {size} |"
            )
    lines += [
        "",
        "The Keras and PyTorch targets need neither framework (the time is the CLI's start-up "
        "and the check); ONNX imports `onnx` and writes the seeded initial weights, hence the "
        "size (4 bytes per parameter).",
        "",
    ]
    return lines


def peak_section(results: dict) -> list[str]:
    peak = results["peak"]
    lines = [
        "## (e) This machine's matrix-multiply peak",
        "",
        f"`torch.matmul` of two {peak.get('n', 2048)} x {peak.get('n', 2048)} float matrices, "
        f"best of 7, best of {peak['runs']} fresh processes (2 n^3 flops per product):",
        "",
        "| dtype | " + " | ".join(f"{t} thread(s)" for t in peak["fp32_gflops"]) + " |",
        "|---|" + "---:|" * len(peak["fp32_gflops"]),
    ]
    for key, label in (("fp32_gflops", "float32"), ("bf16_gflops", "bfloat16")):
        lines.append(
            f"| {label} | " + " | ".join(f"{v:.0f} GFLOP/s" for v in peak[key].values()) + " |"
        )
    lines.append("")
    return lines


TRAINING_NOTES = [
    "Three processes per model, one per configuration (the thread count is process-wide): "
    "PyTorch at torch's default threads (2 here), PyTorch with `torch.set_num_threads(1)` "
    "(`specc train --threads 1`; rows `..., 1 thread`), and Keras. Inside a process the "
    "contenders take turns one epoch each, so load drift hits them alike, and the `vs "
    "hand-written` column compares contenders of the same process. Keras runs in blocks of "
    "epochs (order H S S H), the first epoch of each block not counted.",
    "",
    "What they run:",
    "",
    "- `specc PyTorch`: the module `specc compile --target pytorch` generates, trained "
    "through `specc train`'s backend (`specc.runner.torch_backend.TorchBackend`: Keras's loss "
    "and RMSprop update rule) on the loop's batches, as `specc.runner.loop.fit` does minus "
    "the per-epoch validation pass and checkpoint.",
    "- `hand-written PyTorch` (`bench/baselines/torch_mnist.py`): an NCHW `nn.Sequential` "
    "ending in logits, `nn.CrossEntropyLoss`, `torch.optim.RMSprop(lr=1e-3, alpha=0.9, "
    "eps=1e-7)`, a `DataLoader` over a `TensorDataset` built once.",
    "- `specc Keras`: the generated `build_model()` through the backend's epoch "
    "(`specc.runner.keras_backend.fit_batches`: Keras's compiled train step, "
    "`model.train_function`, on each of the loop's batches; every epoch reseeded as "
    "`specc train` does); `hand-written Keras` (`bench/baselines/keras_mnist.py`): the "
    "tutorial's Sequential model and one `model.fit(x, y, batch_size, epochs=4)` call per "
    "block, epochs timed by a callback (fit's set-up is not counted).",
    "- `, bf16`: `specc train --precision bf16`. PyTorch: bf16 autocast in the forward pass; "
    "weights, optimizer, loss and evaluation in float32. Keras: the `mixed_bfloat16` dtype "
    "policy (bf16 compute, float32 variables).",
    "- `data.batches only`: the loop's input pipeline alone (shuffle, gather).",
    "",
    "GFLOP/s = 3 x 2 x MACs per sample (specc's count; forward, and two matmuls of the same "
    "size in the backward pass) x samples/s; the fraction is of the best fp32 matmul peak "
    "above (bf16 runs can exceed it: bf16's own peak is about 4x).",
    "",
]


def training_section(results: dict) -> list[str]:
    training = results["training"]
    first = next(iter(training.values()))
    lines = [
        "## (f) Training throughput on real MNIST",
        "",
        f"The first {first['samples']:,} training images (a slice, to fit the time budget), "
        f"batch size and optimizer from the spec; one warm-up epoch, then "
        f"{first['measured_epochs']} measured epochs per contender; samples/s median (min - max).",
        "",
        *TRAINING_NOTES,
    ]
    for model, block in training.items():
        rows = block["contenders"]
        lines += [
            f"### {model} ({block['macs_per_sample']:,} MACs per sample)",
            "",
            "| Contender | samples/s | min - max | vs hand-written | GFLOP/s | of fp32 peak | "
            "last epoch train acc |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for name, row in rows.items():
            if name == "data.batches only":
                continue
            base = rows.get(baseline_of(name) or "")
            vs = ratio(row["median"], base["median"]) if base else ""
            acc = row["last_epoch"].get("accuracy")
            lines.append(
                f"| {name} | {rate(row['median'])} | {rate(row['min'])} - {rate(row['max'])} | "
                f"{vs} | {row['gflops']:.1f} | {row['fraction_of_fp32_peak']:.1%} | "
                f"{'' if acc is None else f'{acc:.3f}'} |"
            )
        data_only = rows.get("data.batches only")
        if data_only:
            lines += [
                "",
                f"Input pipeline alone (`data.batches`): {rate(data_only['median'])} samples/s.",
            ]
        lines.append("")
    return lines


def inference_section(results: dict) -> list[str]:
    inference = results["inference"]
    lines = [
        "## (g) Inference: the CNN, batch 1 and batch 64",
        "",
        "One fresh process per framework (onnxruntime's and TensorFlow's thread pools keep "
        "spinning after a call and would slow whichever framework runs next in the same "
        f"process); the processes take turns, {inference['process_rounds']} times; per-call "
        "wall time, pooled. onnxruntime runs `specc compile --target onnx` output with default "
        "session options; PyTorch runs the generated module in `eval()` under "
        "`torch.inference_mode()`; Keras runs the generated model.",
        "",
        "| Batch | Contender | median per call | p90 | min - max | samples/s | vs onnxruntime |",
        "|---:|---|---:|---:|---|---:|---:|",
    ]
    for batch in ("1", "64"):
        for name, row in inference[batch].items():
            lines.append(
                f"| {batch} | {name} | {ms(row['median'])} | {ms(row['p90'])} | "
                f"{ms(row['min'])} - {ms(row['max'])} | {rate(row['samples_per_second'])} | "
                f"{row['ratio_to_onnxruntime']:.1f}x |"
            )
    lines.append("")
    return lines


def explore_section(results: dict) -> list[str]:
    explore = results["explore"]
    variants = explore["variants"]
    base = variants["specc PyTorch (fp32)"]["median"]
    lines = [
        "## (i) Options tried on the PyTorch path (CNN)",
        "",
        f"`bench/workers.py explore`: the first {explore['samples']:,} images, "
        f"{explore['threads']} threads, the runner's allocator settings, one warm-up epoch "
        "(it includes `torch.compile`'s compilation), then measured epochs, the variants "
        "taking turns.",
        "",
        "| Variant | samples/s | min - max | vs fp32 | warm-up epoch |",
        "|---|---:|---|---:|---:|",
    ]
    for name, row in variants.items():
        lines.append(
            f"| {name} | {rate(row['median'])} | {rate(row['min'])} - {rate(row['max'])} | "
            f"{ratio(row['median'], base)} | {row['warmup_seconds']:.1f} s |"
        )
    lines.append("")
    return lines


def accuracy_section(results: dict) -> list[str]:
    accuracy = results["accuracy"]
    lines = [
        "## (h) Accuracy: `specc train` to the tutorials' results",
        "",
        "Full MNIST (60,000 training images), the spec's settings (RMSprop, 5 epochs, batch 64 "
        "for the CNN and 128 for the MLP, seed 42), one run each. The specs use "
        "`validation_split: test`, so the per-epoch validation accuracy in `history.json` is "
        "the test accuracy. Targets: CNN 99.1% (Chollet, listing 8.1), MLP 97.8% (chapter 2).",
        "",
        "| Run | test accuracy per epoch | reached the target | train s (to target) | "
        "samples/s | wall s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in accuracy.values():
        per_epoch = " / ".join(f"{a:.4f}" for a in row["val_accuracy"])
        reached = (
            f"epoch {row['epochs_to_target']}"
            if row["epochs_to_target"]
            else f"no (best {max(row['val_accuracy']):.2%})"
        )
        to_target = (
            f" ({row['train_seconds_to_target']:.0f})" if row["train_seconds_to_target"] else ""
        )
        lines.append(
            f"| `{row['command']}` | {per_epoch} | {reached} | "
            f"{row['train_seconds']:.0f}{to_target} | {rate(row['samples_per_second'])} | "
            f"{row['wall_seconds']:.0f} |"
        )
    lines += [
        "",
        "Wall time includes start-up, data loading, the per-epoch test evaluation and "
        "checkpoints, and the final reports, saved model, weights and ONNX export.",
        "",
    ]
    return lines


def benchmarks_md(results: dict, exploration: list[str] | None = None) -> str:
    lines = [
        "# Benchmarks",
        "",
        "specc against what users would do instead, and against the machine's limit. Produced "
        "by `bench/run.py` (`make bench`, about "
        f"{results['elapsed_s'] / 60:.0f} minutes here; `make bench-quick` / "
        "`python bench/run.py --quick` is a smoke run of under a minute, without the accuracy "
        "runs). Raw numbers, every sample included, are in `bench/results/full.json`; "
        "`python bench/run.py --markdown-from bench/results/full.json` rewrites this file.",
        "",
        "Each figure is the median of several runs with its spread (min - max, and the "
        "interquartile range). Contenders take turns (round-robin) so that changes in the "
        "machine's load hit all of them alike, and every ratio compares medians from the same "
        "run. MNIST is read from `$SPECC_DATA_DIR` or `../shared/datasets`.",
        "",
        *headline(results),
        *machine_section(results),
        *cold_section(results),
        *warm_section(results),
        *import_section(results),
        *compile_section(results),
    ]
    if "peak" in results:
        lines += peak_section(results)
    if "training" in results:
        lines += training_section(results)
    if "inference" in results:
        lines += inference_section(results)
    if "accuracy" in results:
        lines += accuracy_section(results)
    if "perf" in results:
        from perf import perf_section  # bench/perf.py

        lines += ["<!-- section p: start -->", *perf_section(results), "<!-- section p: end -->"]
    if "explore" in results:
        lines += explore_section(results)
    lines += exploration or []
    return "\n".join(lines).rstrip() + "\n"
