"""`specc train`: train the model `specc compile` generates, on the spec's dataset, and
leave a complete report in the run folder.

The model code is generated exactly as `specc compile --target <backend>` writes it, saved
in the run folder (``model_keras.py`` / ``model_pytorch.py``) and imported from there: the
trained model is the compiled model, not a second builder that could drift.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..diagnostics import Diagnostic, SpecError
from ..fsutil import atomic_write_text
from ..ir import ModelIR

BACKENDS = ("keras", "pytorch")

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) is noise in a run's output
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class RunError(Exception):
    """A run cannot proceed (missing data, framework, or a run folder in the way)."""


@dataclass
class TrainOptions:
    backend: str = "keras"
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    data_dir: str | None = None
    out_dir: str | None = None
    resume: bool = False
    limit: int | None = None  # use only the first N train and test samples (smoke runs)
    progress: bool = True
    export_onnx: bool = True
    download: bool = True  # fetch missing official dataset files (checksum-verified)
    precision: str = "fp32"  # "bf16": bf16 autocast in the PyTorch forward pass (opt-in)
    threads: int | None = None  # framework intra-op threads (None: the framework's default)


def spec_hash(model: ModelIR) -> str:
    return model.sha256()


def import_generated(path: Path, name: str):
    """Import generated code from its file (a fresh module each time)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_backend(
    model: ModelIR,
    backend: str,
    code_path: Path,
    training,
    *,
    precision: str = "fp32",
    threads: int | None = None,
):
    """Generate the model code into ``code_path``, import it, build the model and its backend."""
    from .. import targets

    atomic_write_text(code_path, targets.get(backend).emit(model))
    module = import_generated(code_path, f"specc_generated_{backend}_{model.name}")
    if backend == "keras":
        import keras

        from .keras_backend import KerasBackend

        if threads is not None:  # before TensorFlow runs its first op
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        keras.utils.set_random_seed(training.seed)  # the initial weights are part of the run
        return KerasBackend(module.build_model(), training)
    import torch

    torch.manual_seed(training.seed)

    from ..codegen.pyformat import class_name
    from .torch_backend import TorchBackend

    cls = getattr(module, class_name(model.name))
    assert issubclass(cls, torch.nn.Module)
    return TorchBackend(cls(), training, precision=precision, threads=threads)


def _framework_version(backend: str) -> dict:
    if backend == "keras":
        import keras
        import tensorflow as tf

        return {"keras": keras.__version__, "tensorflow": tf.__version__}
    import torch

    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def _require(backend: str) -> None:
    module = "keras" if backend == "keras" else "torch"
    if importlib.util.find_spec(module) is None:
        extra = "keras" if backend == "keras" else "torch"
        raise RunError(
            f"the {backend} backend needs {module}, which is not installed; "
            f"install it with: pip install 'specc[{extra}]' -c constraints.txt"
        )


def train(spec_path: str | Path, options: TrainOptions, log=print) -> dict:
    """Run training; returns the metrics written to metrics.json. Raises SpecError / RunError."""
    from ..pipeline import check_file
    from ..spec import Training

    if options.backend not in BACKENDS:
        raise RunError(f"unknown backend {options.backend!r}; choose one of {', '.join(BACKENDS)}")
    result = check_file(spec_path)
    if not result.ok:
        raise SpecError(result.diagnostics)
    model = result.model
    if model.training is None:
        raise SpecError(
            [
                Diagnostic(
                    "the spec has no 'training:' section, so there is nothing to train on",
                    file=str(spec_path),
                    hint="add training: {dataset: mnist, ...}; see docs/spec.md",
                    code="no-training",
                )
            ]
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise RunError("`specc train` trains models with one input and one output")
    overrides = {
        k: v
        for k, v in (
            ("epochs", options.epochs),
            ("batch_size", options.batch_size),
            ("seed", options.seed),
        )
        if v is not None
    }
    training = Training.model_validate({**model.training, **overrides})
    _require(options.backend)
    if options.precision != "fp32" and options.backend != "pytorch":
        raise RunError(f"--precision {options.precision} is available with --backend pytorch")

    out_dir = Path(options.out_dir or f"runs/{model.name}-{options.backend}")
    if out_dir.exists() and (out_dir / "checkpoint.json").exists() and not options.resume:
        raise RunError(
            f"{out_dir} already holds a run; continue it with --resume or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)

    from ..data import prepare

    started = time.time()
    output_units = model.shape_of(model.outputs[0])[-1]
    data = prepare(
        training,
        model.inputs[0].shape,
        options.data_dir,
        output_units=output_units,
        base_dir=Path(spec_path).parent,
        limit=options.limit,
        download=options.download and os.environ.get("SPECC_OFFLINE", "") in ("", "0"),
        integer=model.inputs[0].dtype in ("int32", "int64"),
    )
    log(
        f"{model.name}: {model.total_params:,} params; {data.dataset}: "
        f"{len(data.x_train):,} train / {0 if data.x_val is None else len(data.x_val):,} validation / "
        f"{len(data.x_test):,} test samples; backend {options.backend}"
    )

    from .loop import Progress, fit

    backend = build_backend(
        model,
        options.backend,
        out_dir / f"model_{options.backend}.py",
        training,
        precision=options.precision,
        threads=options.threads,
    )
    state = fit(
        backend,
        data,
        training,
        epochs=training.epochs,
        batch_size=training.batch_size,
        seed=training.seed,
        out_dir=out_dir,
        resume=options.resume,
        progress=Progress(enabled=options.progress),
    )
    metrics = write_outputs(out_dir, model, training, data, backend, state, options)
    run = {
        "spec": str(spec_path),
        "spec_sha256": spec_hash(model),
        "model": model.name,
        "backend": options.backend,
        "dataset": data.dataset,
        "data_dir": str(Path(options.data_dir).resolve()) if options.data_dir else None,
        "epochs": state.epoch,
        "stopped_early": state.stopped_early,
        "batch_size": training.batch_size,
        "precision": options.precision,
        "seed": training.seed,
        "train_seconds": round(state.train_seconds, 3),
        "wall_seconds": round(time.time() - started, 3),
        "samples_per_second": round(state.samples_seen / state.train_seconds, 1)
        if state.train_seconds
        else None,
        "versions": {
            "specc": __version__,
            "python": platform.python_version(),
            **_framework_version(options.backend),
        },
        "command": sys.argv,
    }
    atomic_write_text(out_dir / "run.json", json.dumps(run, indent=2) + "\n")
    log(
        f"test loss {metrics['test_loss']:.4f}"
        + (f", test accuracy {metrics['accuracy']:.4f}" if "accuracy" in metrics else "")
        + f"; wrote {out_dir}/"
    )
    return metrics


def write_outputs(out_dir: Path, model: ModelIR, training, data, backend, state, options) -> dict:
    """metrics.json, history files, plots, the saved model, canonical weights, model.onnx."""
    from .. import weights as canonical
    from .losses import predicted_classes, probabilities
    from .report import (
        classification_metrics,
        plot_confusion,
        plot_history,
        plot_predictions,
        write_history,
        write_json,
    )

    outputs, test_loss = backend.evaluate(data.x_test, data.y_test, training.batch_size)
    metrics: dict = {"test_loss": test_loss}
    write_history(out_dir, state.history)
    if state.history:
        plot_history(state.history, out_dir / "curves.png")
    if training.loss != "mse":
        probs = probabilities(outputs, training.loss, training.from_logits)
        truth = data.class_indices(data.y_test)
        predicted = predicted_classes(probs)
        metrics.update(classification_metrics(truth, predicted, data.class_names))
        plot_confusion(
            metrics["confusion_matrix"], data.class_names, out_dir / "confusion_matrix.png"
        )
        images = data.raw_test_images(25) if hasattr(data, "raw_test_images") else data.x_test[:25]
        if len(data.sample_shape) in (2, 3):
            images = images.reshape((len(images), *data.sample_shape))
            plot_predictions(
                images, truth[:25], predicted[:25], data.class_names, out_dir / "predictions.png"
            )
    write_json(out_dir / "metrics.json", metrics)

    if options.backend == "keras":
        from ..fsutil import atomic_write_bytes

        tmp = out_dir / ".model.keras.tmp.keras"
        backend.model.save(tmp)
        atomic_write_bytes(out_dir / "model.keras", tmp.read_bytes())
        tmp.unlink()
        weights = canonical.from_keras(backend.model, model)
    else:
        import io

        import torch

        from ..fsutil import atomic_write_bytes

        buffer = io.BytesIO()
        torch.save(backend.module.state_dict(), buffer)
        atomic_write_bytes(out_dir / "model.pt", buffer.getvalue())
        weights = canonical.from_torch(backend.module, model)
    canonical.save(out_dir / "weights.npz", weights)
    if options.export_onnx and importlib.util.find_spec("onnx") is not None:
        from .. import targets
        from ..diagnostics import SpecError
        from ..fsutil import atomic_write_bytes

        try:
            graph = targets.get("onnx").emit(model, weights=weights)
        except SpecError as exc:  # a layer the ONNX target refuses: the run is still good
            print(f"model.onnx not written: {exc.diagnostics[0].message}", file=sys.stderr)
        else:
            atomic_write_bytes(out_dir / "model.onnx", graph)
    write_json(out_dir / "normalization.json", data.normalization)
    return metrics
