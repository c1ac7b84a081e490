"""`specc train`: train the model `specc compile` generates, on the spec's dataset, and
leave a complete report in the run folder.

The model code is generated exactly as `specc compile --target <backend>` writes it, saved
in the run folder (``model_keras.py`` / ``model_pytorch.py``) and imported from there: the
trained model is the compiled model, not a second builder that could drift.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from .. import diagcodes as codes
from ..diagnostics import Diagnostic, SpecError
from ..fsutil import WriteError, atomic_write_text, reason_of
from ..ir import ModelIR
from .runfolder import (
    RunDamaged,
    RunFolder,
    read_json,
    resume_differences,
)

BACKENDS = ("keras", "pytorch")

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) is noise in a run's output
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class RunError(Exception):
    """A run cannot proceed (missing data, framework, or a run folder in the way)."""


class ResumeRefused(Exception):
    """``--resume`` cannot continue (nothing to resume, or a different run): exit 2."""


class RunInterrupted(Exception):
    """Ctrl-C: a checkpoint was saved; the message says where and how to resume (exit 130)."""


# The files `specc train` writes into its run folder (recorded in the manifest before any
# is written; a file of the user's with one of these names is refused, never replaced).
OUTPUT_FILES = (
    "run.json",
    "checkpoint.json",
    "history.csv",
    "history.json",
    "curves.png",
    "confusion_matrix.png",
    "predictions.png",
    "metrics.json",
    "weights.npz",
    "model.onnx",
    "normalization.json",
)


def output_files(backend: str) -> tuple[str, ...]:
    saved = ("model.keras", ".model.keras.tmp.keras") if backend == "keras" else ("model.pt",)
    return (*OUTPUT_FILES, f"model_{backend}.py", *saved)


def resume_command(argv: list[str] | None = None) -> str:
    """The command line that continues this run: the same arguments plus --resume."""
    import shlex

    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in args:
        args.append("--resume")
    nproc = os.environ.get("SPECC_NPROC")  # a rank started by `--nproc N` (distributed.launch)
    if argv is None and nproc and not any(a.startswith("--nproc") for a in args):
        args += ["--nproc", nproc]
    return shlex.join(["specc", *args])


@dataclass
class TrainOptions:
    backend: str = "keras"
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    data_dir: str | None = None
    out_dir: str | None = None
    resume: bool = False
    force: bool = False  # --resume: accept a different epoch count or data folder
    allow_nonfinite: bool = False  # accept NaN/Inf in the dataset's inputs
    limit: int | None = None  # use only the first N train and test samples (smoke runs)
    progress: bool = True
    progress_interval: float = 10.0  # seconds between progress lines when not on a terminal
    tensorboard: str | None = None  # folder for TensorBoard scalars (specc.runner.tensorboard)
    export_onnx: bool = True
    download: bool = True  # fetch missing official dataset files (checksum-verified)
    precision: str = "fp32"  # "bf16" / "fp16": autocast (mixed precision), opt-in
    threads: int | None = None  # framework intra-op threads (None: the framework's default)
    device: str = "auto"  # PyTorch: auto | cpu | cuda | cuda:N (specc.runner.devices)
    sync_batchnorm: bool = False  # data parallel: batch statistics over the global batch
    devices: int | None = None  # Keras: MirroredStrategy over N local devices


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
    device=None,
    comm=None,
    sync_batchnorm: bool = False,
    devices: int | None = None,
):
    """Generate the model code into ``code_path``, import it, build the model and its backend.

    PyTorch: on ``device`` (default CPU); with ``comm`` (a distributed.Communicator) the
    backend trains through DistributedDataParallel. Keras: a tf.distribute strategy for
    ``devices`` / TF_CONFIG (specc.runner.keras_distribute), the precision as its policy."""
    from .. import targets

    if backend == "keras":  # before the generated code's `import keras`
        from ..frameworks import import_keras

        import_keras()  # quietly: no TensorFlow start-up lines on stderr
    atomic_write_text(code_path, targets.get(backend).emit(model))
    module = import_generated(code_path, f"specc_generated_{backend}_{model.name}")
    if backend == "keras":
        import keras

        from .keras_backend import KerasBackend
        from .keras_distribute import DistributedKerasBackend, make_strategy, set_precision

        if threads is not None:  # before TensorFlow runs its first op
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        strategy = make_strategy(devices)  # also before the first op (logical devices)
        set_precision(precision)
        keras.utils.set_random_seed(training.seed)  # the initial weights are part of the run
        if strategy is not None:
            return DistributedKerasBackend(module.build_model, training, strategy)
        return KerasBackend(module.build_model(), training)
    import torch

    torch.manual_seed(training.seed)

    from ..codegen.pyformat import class_name
    from .torch_backend import TorchBackend

    cls = getattr(module, class_name(model.name))
    assert issubclass(cls, torch.nn.Module)
    kwargs = {"precision": precision, "threads": threads, "device": device or "cpu"}
    if comm is not None:
        from .distributed import data_parallel_backend

        return data_parallel_backend(cls(), training, comm, sync_bn=sync_batchnorm, **kwargs)
    return TorchBackend(cls(), training, **kwargs)


def _framework_version(backend: str) -> dict:
    if backend == "keras":
        import keras
        import tensorflow as tf

        return {"keras": keras.__version__, "tensorflow": tf.__version__}
    import torch

    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def _require(backend: str) -> None:
    from ..extras import message

    modules = ("keras", "tensorflow") if backend == "keras" else ("torch",)
    for module in (*modules, "numpy", "matplotlib"):
        if importlib.util.find_spec(module) is None:
            raise RunError(message(module, f"training with the {backend} backend"))


def train(spec_path: str | Path, options: TrainOptions, log=print, say_result=print) -> dict:
    """Run training; returns the metrics written to metrics.json. Raises SpecError / RunError.

    ``log`` gets progress and information (the CLI sends it to stderr), ``say_result`` the
    line with every test metric (stdout)."""
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
                    code=codes.NO_TRAINING,
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
    if options.devices is not None and options.backend != "keras":
        raise RunError("--devices is a Keras option; PyTorch runs one device per rank (--nproc)")

    out_dir = Path(options.out_dir or f"runs/{model.name}-{options.backend}")
    config = {
        "spec": str(spec_path),
        "spec_sha256": spec_hash(model),
        "model": model.name,
        "backend": options.backend,
        "dataset": _dataset_name(training.dataset),
        "data_dir": str(Path(options.data_dir).resolve()) if options.data_dir else None,
        # where the data was found without --data-dir, so that evaluate, predict and
        # crosscheck --run find it again in a shell without the variable
        "data_env": None if options.data_dir else _data_env(),
        "limit": options.limit,
        "seed": training.seed,
        "batch_size": training.batch_size,
        "precision": options.precision,
        "epochs_target": training.epochs,
    }
    # devices and data parallel ranks (specc.runner.distributed); None / None: one CPU process
    from .distributed import setup

    comm, device = setup(options, training)
    if comm is not None and not comm.is_main:
        # the other ranks take no lock and write nothing: rank 0 owns the run folder
        quiet = lambda *_: None  # noqa: E731
        return _train_locked(
            spec_path, model, training, options, None, config, quiet, quiet, comm, device,
            out_dir,
        )  # fmt: skip
    created = not Path(out_dir).exists()
    try:
        with RunFolder(out_dir) as run:
            return _train_locked(
                spec_path, model, training, options, run, config, log, say_result, comm, device
            )
    except BaseException:
        if created:
            _remove_if_unused(Path(out_dir))
        raise


def _remove_if_unused(folder: Path) -> None:
    """Remove a run folder this run created when the run stopped before writing anything
    but specc's lock and manifest (a dataset refused, say): no empty run folder is left."""
    from .runfolder import LOCK_NAME, MANIFEST_NAME

    try:
        if {p.name for p in folder.iterdir()} <= {LOCK_NAME, MANIFEST_NAME}:
            for name in (LOCK_NAME, MANIFEST_NAME):
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass  # best effort: the run's own error is what the user needs to see


def _caused_by_ctrl_c(exc: BaseException | None) -> bool:
    for _ in range(10):
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _record_new_target(out_dir: Path, config: dict) -> None:
    """A resumed run that trains to a new epoch count (or from a moved data folder)."""
    recorded = read_json(out_dir / "run.json", "the run's record")
    changed = {k: config[k] for k in ("epochs_target", "data_dir") if recorded.get(k) != config[k]}
    if changed:
        recorded.update(changed, status="running")
        atomic_write_text(out_dir / "run.json", json.dumps(recorded, indent=2) + "\n")


def _data_env() -> str | None:
    """$SPECC_DATA_DIR as an absolute folder, when it names one (None when unset or a list:
    then later commands need the variable or --data-dir)."""
    parts = [p.strip() for p in os.environ.get("SPECC_DATA_DIR", "").split(os.pathsep)]
    parts = [p for p in parts if p]
    return str(Path(parts[0]).expanduser().resolve()) if len(parts) == 1 else None


def run_data_dir(info: dict) -> str | None:
    """Where a run's data is: its --data-dir, else the $SPECC_DATA_DIR it trained with."""
    return info.get("data_dir") or info.get("data_env")


def _dataset_name(dataset) -> str:
    if isinstance(dataset, str):
        return dataset
    data = dataset if isinstance(dataset, dict) else dataset.model_dump()
    return json.dumps(data, sort_keys=True, default=str)


def _check_resume(run: RunFolder, config: dict, options: TrainOptions, log) -> None:
    """Refuse a --resume that has nothing to continue or would continue a different run."""
    from .loop import checkpoint_info, read_loop_state

    out_dir = run.path
    pointer = checkpoint_info(out_dir)
    if pointer is None:
        raise ResumeRefused(
            f"nothing to resume in {out_dir}: it holds no checkpoint; start the run without --resume"
        )
    recorded = read_json(out_dir / "run.json", "the run's record")
    loop = read_loop_state(out_dir / pointer["folder"] / "loop.json").__dict__
    done = loop["epoch"]
    target = recorded.get("epochs_target", recorded.get("epochs"))
    if not isinstance(target, int) or isinstance(target, bool):
        raise RunDamaged(out_dir / "run.json", f"epochs_target is {target!r}, not a number")
    trained = loop.get("stopped_early") or (
        target is not None and done >= int(target) and not loop.get("step")
    )
    # a run stopped after its last epoch but before its results were written (status
    # "running") resumes to write them; only a run with its results is finished
    finished = trained and recorded.get("status") != "running"
    differences = resume_differences(recorded, config)
    if finished:
        if loop.get("stopped_early"):
            raise ResumeRefused(
                f"the run in {out_dir} stopped early at epoch {done} (early_stopping); "
                "there is nothing to resume"
            )
        if options.epochs is None or config["epochs_target"] <= done:
            raise ResumeRefused(
                f"the run in {out_dir} finished all its epochs ({done}); to train further give a "
                f"larger --epochs (e.g. --epochs {done * 2}) with --resume"
            )
        # extending a finished run with an explicit larger --epochs is the documented way
        differences = [d for d in differences if d[0] != "epochs"]
    unsafe = [d for d in differences if not d[3]]
    safe = [d for d in differences if d[3]]
    if unsafe or (safe and not options.force):
        lines = "; ".join(
            f"{label}: {old!r} in run.json, now {new!r}" for label, old, new, _ in differences
        )
        hint = (
            "these can be accepted with --force"
            if not unsafe
            else "start a new run with another --out (a resumed run must be the same run)"
        )
        raise ResumeRefused(f"cannot resume {out_dir}: the run differs: {lines}; {hint}")
    seconds = float(loop.get("train_seconds", 0.0)) + float(loop.get("epoch_seconds", 0.0))
    step = int(loop.get("step", 0))
    where = f"epoch {done + 1}, step {step}" if step else f"the end of epoch {done}"
    if trained and not finished:
        log(f"the run in {out_dir} trained all its epochs; writing its results")
    elif finished:
        log(
            f"extending the finished run in {out_dir} from {done} to {config['epochs_target']} epochs"
        )
    else:
        log(f"resuming {out_dir} from {where} ({seconds:.1f} s of training so far)")


def _barrier(comm) -> None:
    """Wait for every rank; a rank 0 that refused the run (its message says why) or a lost
    peer ends the others with one line (exit 3), not a traceback."""
    from .distributed import DistributedError, is_collective_failure

    try:
        comm.barrier()
    except Exception as exc:
        if not is_collective_failure(exc):
            raise
        raise DistributedError(
            f"rank {comm.rank} of {comm.world_size} lost the other ranks before training "
            "began (rank 0 refused the run or stopped: see its message)"
        ) from None


def _train_locked(
    spec_path, model, training, options, run: RunFolder | None, config, log, say_result=print,
    comm=None, device=None, out_dir: Path | None = None,
) -> dict:  # fmt: skip
    """The run, with the run folder locked (``run``); ``run`` is None on a data-parallel
    rank other than 0, which reads and writes nothing there."""
    main = run is not None
    if main:
        out_dir = run.path
        if options.resume:
            _check_resume(run, config, options, log)
        elif (out_dir / "checkpoint.json").exists():
            raise RunError(
                f"{out_dir} already holds a run; continue it with --resume or choose another --out"
            )
        run.claim(*output_files(options.backend))

    from ..data import prepare

    started = time.time()
    if comm is not None and not main:
        _barrier(comm)  # rank 0 checks the run folder and fetches a missing dataset first
    output_units = model.shape_of(model.outputs[0])[-1]
    data = prepare(
        training,
        model.inputs[0].shape,
        options.data_dir,
        output_units=output_units,
        output_size=math.prod(model.shape_of(model.outputs[0])),
        base_dir=Path(spec_path).parent,
        limit=options.limit,
        download=options.download and os.environ.get("SPECC_OFFLINE", "") in ("", "0"),
        integer=model.inputs[0].dtype in ("int32", "int64"),
        allow_nonfinite=options.allow_nonfinite,
    )
    if main and not options.resume:
        # written once the data is ready: a dataset refused (exit 3) leaves no run.json
        # saying "running" (nor replaces the record of an earlier run in the folder)
        atomic_write_text(
            out_dir / "run.json", json.dumps({**config, "status": "running"}, indent=2) + "\n"
        )
    if comm is not None and main:
        _barrier(comm)
    log(
        f"{model.name}: {model.total_params:,} params; {data.dataset}: "
        f"{len(data.x_train):,} train / {0 if data.x_val is None else len(data.x_val):,} validation / "
        f"{len(data.x_test):,} test samples; backend {options.backend}"
    )

    from .distributed import code_folder, guarded
    from .distributed import run_record as parallel_record
    from .loop import Interrupted, Progress, fit
    from .results import data_record, result_line

    if comm is not None:
        from .distributed import global_batch_line

        log(global_batch_line(training.batch_size, comm.world_size))

    progress = Progress(enabled=options.progress and main, interval=options.progress_interval)
    if options.tensorboard and main:
        from .tensorboard import with_tensorboard

        progress = with_tensorboard(progress, options.tensorboard)
    try:  # the live bar gives the terminal back even when training stops with an error
        with guarded(comm):
            backend = build_backend(
                model,
                options.backend,
                code_folder(out_dir, main) / f"model_{options.backend}.py",
                training,
                precision=options.precision,
                threads=options.threads,
                device=device,
                comm=comm,
                sync_batchnorm=options.sync_batchnorm,
                devices=options.devices,
            )
            if not options.resume:  # a resumed run's checkpoint holds the adapted statistics
                _adapt(model, data, backend, log)
            resumed = None
            if options.resume and main:  # the checkpoint loads before run.json records the
                from .loop import load_checkpoint  # new target

                resumed = load_checkpoint(out_dir, backend)
                _record_new_target(out_dir, config)
            state = fit(
                backend,
                data,
                training,
                epochs=training.epochs,
                batch_size=training.batch_size,
                seed=training.seed,
                out_dir=run,
                state=resumed,
                progress=progress,
            )
            parallel = parallel_record(backend, comm, device, options, training, state)
    except Interrupted as stop:
        where = (
            f"epoch {stop.state.epoch + 1}, step {stop.state.step}"
            if stop.state.step
            else f"the end of epoch {stop.state.epoch}"
        )
        raise RunInterrupted(
            f"interrupted: saved a checkpoint at {where} in {stop.folder}; continue with:\n"
            f"  {resume_command()}"
        ) from None
    finally:
        progress.close()
    if not main:
        return {}
    from .loop import _InterruptFlag

    try:
        # a first Ctrl-C waits for the results (a few seconds); a second one stops at once
        with _InterruptFlag():
            metrics = write_outputs(out_dir, model, training, data, backend, state, options)
    except Exception as exc:
        if not _caused_by_ctrl_c(exc):  # Ctrl-C inside an import becomes an ImportError
            raise
        raise RunInterrupted(
            f"interrupted while writing the results; the checkpoint of epoch {state.epoch} is "
            f"complete; write them with:\n  {resume_command()}"
        ) from None
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted while writing the results; the checkpoint of epoch {state.epoch} is "
            f"complete; write them with:\n  {resume_command()}"
        ) from None
    run_record = {
        **config,
        "status": "finished",
        "epochs": state.epoch,
        "stopped_early": state.stopped_early,
        **parallel,
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
        "data": data_record(options, training, data),
    }
    from ..weights import regularizers

    factors = regularizers(model)
    if factors:  # what `specc evaluate --engine onnx` adds to the loss, as training did
        run_record["data"]["regularizers"] = {k: list(v) for k, v in factors.items()}
    atomic_write_text(out_dir / "run.json", json.dumps(run_record, indent=2) + "\n")
    say_result(result_line(metrics, out_dir))  # the result: stdout (progress goes to stderr)
    return metrics


def _adapt(model: ModelIR, data, backend, log) -> None:
    """Normalization layers without mean/variance in the spec: computed from the training
    split, as Keras's ``adapt`` does (specc.runner.adapt)."""
    from .adapt import AdaptError, apply, statistics, to_adapt

    if not to_adapt(model):
        return
    try:
        stats = statistics(model, data.x_train)
    except AdaptError as exc:
        raise RunError(str(exc)) from None
    apply(backend, model, stats)
    names = ", ".join(layer.name for layer in to_adapt(model))
    log(f"adapted {names} (Normalization) to {len(data.x_train):,} training samples")


def write_outputs(out_dir: Path, model: ModelIR, training, data, backend, state, options) -> dict:
    """metrics.json, history files, plots, the saved model, canonical weights, model.onnx."""
    from .. import weights as canonical
    from .report import write_history, write_json, write_report
    from .results import final_epoch_metrics, report_test_split

    outputs, test_loss = backend.evaluate(data.x_test, data.y_test, training.batch_size)
    metrics = report_test_split(outputs, test_loss, data.y_test, data, training)
    metrics.update(final_epoch_metrics(state.history, training))
    write_history(out_dir, state.history)
    write_report(
        out_dir,
        model.name,
        options.backend,
        data,
        training,
        state.history,
        metrics,
        outputs,
        precision=options.precision,
    )
    write_json(out_dir / "metrics.json", metrics)

    if options.backend == "keras":
        from ..fsutil import atomic_write_bytes

        tmp = out_dir / ".model.keras.tmp.keras"
        try:
            backend.model.save(tmp)
            atomic_write_bytes(out_dir / "model.keras", tmp.read_bytes())
        except OSError as exc:
            raise WriteError(out_dir / "model.keras", reason_of(exc)) from None
        finally:
            tmp.unlink(missing_ok=True)
        weights = canonical.from_keras(backend.model, model)
    else:
        import io

        import torch

        from ..fsutil import atomic_write_bytes

        buffer = io.BytesIO()
        torch.save({k: v.cpu() for k, v in backend.module.state_dict().items()}, buffer)
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
