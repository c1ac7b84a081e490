"""Benchmark workers that need a framework: `bench/run.py` runs each in a fresh process and
reads the JSON it prints on its last line.

    python bench/workers.py peak
    python bench/workers.py train --framework torch|keras --model mnist_cnn|mnist_mlp \
        --samples 12000 --epochs 3 --data-dir D
    python bench/workers.py infer --onnx model.onnx --rounds 5

Within one process the contenders take turns (round-robin, one epoch or one round each), so
drift in the machine's load hits all of them alike; the ratios compare medians of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SPECS = {"mnist_cnn": "specs/mnist_cnn.yaml", "mnist_mlp": "specs/mnist_mlp.json"}


def stats(samples: list[float]) -> dict:
    ordered = sorted(samples)
    q1, q3 = (
        statistics.quantiles(ordered, n=4)[::2] if len(ordered) >= 4 else (ordered[0], ordered[-1])
    )
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "iqr": q3 - q1,
        "runs": len(ordered),
        "samples": ordered,
    }


def load_spec(name: str):
    from specc.pipeline import check_file
    from specc.spec import Training

    result = check_file(ROOT / SPECS[name])
    assert result.ok
    model = result.model
    return model, Training.model_validate(model.training)


# --------------------------------------------------------------------------- peak


def matmul_peak(threads: int | None, dtype: str = "float32", n: int = 2048, reps: int = 7):
    """Best-of-``reps`` GFLOP/s of an n x n torch.matmul (2 n^3 flops)."""
    import torch

    default = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n).to(getattr(torch, dtype))
        b = torch.randn(n, n).to(getattr(torch, dtype))
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(reps))
    finally:
        torch.set_num_threads(default)
    return 2 * n**3 / best / 1e9


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def cmd_peak(args) -> dict:
    import torch

    default = torch.get_num_threads()
    n, reps = args.n, args.reps
    return {
        "default_threads": default,
        "n": n,
        "fp32_gflops": {
            str(default): matmul_peak(None, n=n, reps=reps),
            "1": matmul_peak(1, n=n, reps=reps),
        },
        "bf16_gflops": {
            str(default): matmul_peak(None, "bfloat16", n, reps),
            "1": matmul_peak(1, "bfloat16", n, reps),
        },
    }


# --------------------------------------------------------------------------- training


def specc_epoch(backend, data, training, epoch: int) -> dict:
    """What `specc train`'s loop (specc.runner.loop.fit) does in one epoch, minus the
    validation pass and the checkpoint: reseed, then the backend's own epoch (Keras: model.fit
    over the loop's batches) or one train_step per batch."""
    backend.seed(training.seed * 1000 + epoch)
    whole = getattr(backend, "train_epoch", None)
    done = whole(data.batches(training.batch_size, epoch)) if whole is not None else None
    if done is not None:
        loss_sum, acc_sum, seen, _ = done
        return {"loss": loss_sum / seen, "accuracy": acc_sum / seen}
    loss_sum = acc_sum = 0.0
    seen = 0
    for xb, yb in data.batches(training.batch_size, epoch):
        loss, acc = backend.train_step(xb, yb)
        loss_sum += loss * len(xb)
        acc_sum += acc * len(xb)
        seen += len(xb)
    return {"loss": loss_sum / seen, "accuracy": acc_sum / seen}


def cmd_train(args) -> dict:
    from specc.data import prepare
    from specc.runner.run import build_backend

    model, training = load_spec(args.model)
    data = prepare(
        training,
        model.inputs[0].shape,
        args.data_dir,
        output_units=10,
        limit=args.samples,
        download=False,
    )
    n = len(data.x_train)
    tmp = Path(tempfile.mkdtemp(prefix="specc-bench-"))

    def data_only(epoch):  # the input pipeline alone: shuffle + gather the loop's batches
        for _ in data.batches(training.batch_size, epoch):
            pass
        return {}

    seconds: dict[str, list[float]] = {}
    logs: dict[str, dict] = {}
    warmup: dict[str, float] = {}

    def record(name: str, elapsed: float, epoch_logs: dict, warm: bool) -> None:
        if warm:
            warmup.setdefault(name, elapsed)
        else:
            seconds.setdefault(name, []).append(elapsed)
        logs[name] = epoch_logs

    if args.framework == "torch":
        import torch
        from baselines import torch_mnist

        from specc.runner.torch_backend import tune_allocator

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.untuned_allocator:
            # glibc's start-up thresholds (128 KiB), fixed: what a fresh process has before
            # it frees its first large block (glibc then raises the mmap threshold itself)
            import ctypes

            libc = ctypes.CDLL(None)
            libc.mallopt(-3, 128 * 1024)
            libc.mallopt(-1, 128 * 1024)
            tuned = False
        else:
            tuned = tune_allocator()
        suffix = (", 1 thread" if args.threads == 1 else "") + (
            "" if tuned else ", untuned allocator"
        )
        contenders = {}
        if args.data_only:
            contenders["data.batches only"] = data_only
        hand = torch_mnist.Trainer(
            args.model, data.x_train, data.y_train, training.batch_size, training.seed
        )
        contenders["hand-written PyTorch" + suffix] = lambda e: hand.epoch()
        for precision in ("fp32", "bf16") if tuned else ("fp32",):
            backend = build_backend(
                model, "pytorch", tmp / f"model_{precision}.py", training, precision=precision
            )
            label = "specc PyTorch" + (", bf16" if precision == "bf16" else "") + suffix
            contenders[label] = lambda e, b=backend: specc_epoch(b, data, training, e)
        # round-robin: every contender runs epoch e before any runs e + 1
        for epoch in range(args.epochs + 1):  # epoch 0 is the warm-up
            for name, run in contenders.items():
                start = time.perf_counter()
                epoch_logs = run(epoch)
                record(name, time.perf_counter() - start, epoch_logs, epoch == 0)
        threads = torch.get_num_threads()
    else:
        import keras
        from baselines import keras_mnist

        from specc.runner.keras_distribute import set_precision

        backend = build_backend(model, "keras", tmp / "model_keras.py", training)
        keras.utils.set_random_seed(training.seed)
        hand = keras_mnist.build(args.model)
        timer = keras_mnist.EpochTimer()
        # `specc train --precision bf16`: Keras's mixed_bfloat16 policy, set before the model
        # is built; float32 again for anything built afterwards
        bf16 = build_backend(
            model, "keras", tmp / "model_keras_bf16.py", training, precision="bf16"
        )
        set_precision("fp32")
        specc_backends = {"specc Keras": backend, "specc Keras, bf16": bf16}

        def hand_block(block: int) -> None:
            # as a user trains: one fit() call for several epochs; per-epoch times from a
            # callback, so fit()'s per-call set-up is not counted (it is, in its first epoch)
            history = hand.fit(
                data.x_train,
                data.y_train,
                batch_size=training.batch_size,
                epochs=args.epochs + 1,
                shuffle=True,
                verbose=0,
                callbacks=[timer],
            )
            for epoch, elapsed in enumerate(timer.seconds):
                epoch_logs = {k: v[epoch] for k, v in history.history.items()}
                record("hand-written Keras", elapsed, epoch_logs, epoch == 0)

        def specc_block(block: int) -> None:
            for epoch in range(args.epochs + 1):  # fp32 and bf16 take turns, epoch by epoch
                for name, b in specc_backends.items():
                    start = time.perf_counter()
                    epoch_logs = specc_epoch(b, data, training, block * 100 + epoch)
                    record(name, time.perf_counter() - start, epoch_logs, epoch == 0)

        # blocks of (1 + epochs) epochs, in the order H S S H; the first epoch of each block
        # is not counted
        for block, run in enumerate((hand_block, specc_block, specc_block, hand_block)):
            run(block)
        threads = None
    out = {}
    for name, samples in seconds.items():
        row = stats([n / s for s in samples])  # samples per second, one per measured epoch
        row["epoch_seconds"] = stats(samples)
        row["warmup_seconds"] = warmup[name]
        row["threads"] = threads
        row["last_epoch"] = {k: float(v) for k, v in logs[name].items()}
        out[name] = row
    return {"framework": args.framework, "model": args.model, "samples": n, "contenders": out}


def cmd_explore(args) -> dict:
    """The options tried on the PyTorch path (CNN, default threads, tuned allocator), taking
    turns one epoch each: channels-last weights and activations, torch.compile, bf16."""
    import torch

    from specc.data import prepare
    from specc.runner.run import build_backend

    model, training = load_spec("mnist_cnn")
    data = prepare(
        training,
        model.inputs[0].shape,
        args.data_dir,
        output_units=10,
        limit=args.samples,
        download=False,
    )
    tmp = Path(tempfile.mkdtemp(prefix="specc-bench-"))
    variants = {
        "specc PyTorch (fp32)": ("fp32", False, False),
        "channels_last": ("fp32", True, False),
        "torch.compile": ("fp32", False, True),
        "bf16 autocast": ("bf16", False, False),
        "bf16 autocast + channels_last": ("bf16", True, False),
    }
    contenders = {}
    for name, (precision, channels_last, compiled) in variants.items():
        backend = build_backend(
            model, "pytorch", tmp / f"m{len(contenders)}.py", training, precision=precision
        )
        if channels_last:
            backend.module.to(memory_format=torch.channels_last)
        if compiled:
            backend.module = torch.compile(backend.module)
        contenders[name] = backend
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    warmup: dict[str, float] = {}
    for epoch in range(args.epochs + 1):
        for name, backend in contenders.items():
            start = time.perf_counter()
            specc_epoch(backend, data, training, epoch)
            elapsed = time.perf_counter() - start
            if epoch:
                seconds[name].append(elapsed)
            else:
                warmup[name] = elapsed
    n = len(data.x_train)
    out = {}
    for name, samples in seconds.items():
        out[name] = stats([n / x for x in samples])
        out[name]["warmup_seconds"] = warmup[name]
    return {"samples": n, "threads": torch.get_num_threads(), "variants": out}


# --------------------------------------------------------------------------- inference


def inference_contenders(framework: str, onnx_path: str) -> dict:
    """name -> call(x) for one framework (one framework per process: onnxruntime's and
    TensorFlow's thread pools keep spinning after a call and would slow the next one)."""
    import numpy as np

    from specc.codegen import generate
    from specc.codegen.pyformat import class_name
    from specc.runner.run import import_generated

    model, _ = load_spec("mnist_cnn")
    tmp = Path(tempfile.mkdtemp(prefix="specc-bench-"))
    if framework == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return {"onnxruntime (specc ONNX)": lambda x: session.run(None, {name: x})[0]}
    if framework == "torch":
        import torch

        (tmp / "gen_torch.py").write_text(generate(model, "pytorch"))
        generated = import_generated(tmp / "gen_torch.py", "bench_gen_torch")
        module = getattr(generated, class_name("mnist_cnn"))().eval()
        default = torch.get_num_threads()

        def torch_call(threads):
            def call(x):
                torch.set_num_threads(threads or default)
                with torch.inference_mode():
                    return module(torch.from_numpy(x)).numpy()

            return call

        return {
            "PyTorch eager (generated module)": torch_call(None),
            "PyTorch eager, 1 thread": torch_call(1),
        }
    (tmp / "gen_keras.py").write_text(generate(model, "keras"))
    kmodel = import_generated(tmp / "gen_keras.py", "bench_gen_keras").build_model()
    return {
        "Keras predict_on_batch": lambda x: kmodel.predict_on_batch(x),
        "Keras model(x, training=False)": lambda x: np.asarray(kmodel(x, training=False)),
    }


def cmd_infer(args) -> dict:
    """Per-call wall times (seconds) at batch 1 and 64; the caller takes the statistics."""
    import numpy as np

    contenders = inference_contenders(args.framework, args.onnx)
    rng = np.random.default_rng(0)
    out: dict = {}
    for batch, calls in ((1, args.calls_b1), (64, args.calls_b64)):
        x = rng.random((batch, 28, 28, 1), dtype=np.float32)
        for call in contenders.values():  # warm-up (graph tracing, allocations)
            for _ in range(5):
                assert np.asarray(call(x)).shape == (batch, 10)
        per_call: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, call in contenders.items():
                for _ in range(calls):
                    per_call[name].append(_timed(lambda c=call, x=x: c(x)))
        out[str(batch)] = per_call
    return {"framework": args.framework, "calls": out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    peak = sub.add_parser("peak")
    peak.add_argument("--n", type=int, default=2048, help="matrix size")
    peak.add_argument("--reps", type=int, default=7, help="best of this many products")
    train = sub.add_parser("train")
    train.add_argument("--framework", choices=("torch", "keras"), required=True)
    train.add_argument("--model", choices=tuple(SPECS), required=True)
    train.add_argument("--samples", type=int, default=12000)
    train.add_argument("--epochs", type=int, default=3, help="measured epochs after the warm-up")
    train.add_argument("--data-dir", required=True)
    train.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    train.add_argument("--data-only", action="store_true", help="also time data.batches alone")
    train.add_argument(
        "--untuned-allocator", action="store_true", help="glibc's initial malloc thresholds"
    )
    explore = sub.add_parser("explore")
    explore.add_argument("--samples", type=int, default=6000)
    explore.add_argument("--epochs", type=int, default=2)
    explore.add_argument("--data-dir", required=True)
    infer = sub.add_parser("infer")
    infer.add_argument("--framework", choices=("onnxruntime", "torch", "keras"), required=True)
    infer.add_argument("--onnx", required=True)
    infer.add_argument("--rounds", type=int, default=3)
    infer.add_argument("--calls-b1", type=int, default=100)
    infer.add_argument("--calls-b64", type=int, default=10)
    args = parser.parse_args(argv)
    result = {"peak": cmd_peak, "train": cmd_train, "explore": cmd_explore, "infer": cmd_infer}[
        args.command
    ](args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
