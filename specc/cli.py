"""The `specc` command line.

Exit codes: 0 success, 1 invalid spec (diagnostics printed; with --strict also warnings),
2 usage error (bad option, missing file, unwritable output), 3 the run cannot proceed
(dataset, framework or another optional package missing).

One grammar on every command: ``--format/-f`` for what is printed, ``--out/-o`` for what is
written (``--output`` is an alias), ``--quiet/-q``, ``--batch-size``, ``--seed``,
``--data-dir``, ``--limit``; ``--backend`` picks one framework (train), ``--backends`` a
comma-separated list (crosscheck; ``--backend`` is accepted there too).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from enum import Enum
from pathlib import Path

import typer

from . import __version__, checkcmd
from . import diagcodes as codes

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_RUN = 3  # the spec is fine but the run cannot proceed (missing data or framework)
MAX_COUNT = 1_000_000_000  # the spec's epochs and batch_size (specc.layers.base.PositiveInt)
MAX_SEED = 2**32 - 1  # specc.spec.MAX_SEED (not imported: pydantic would slow every start)
EXIT_INTERRUPTED = 130  # Ctrl-C (after `specc train` saved a checkpoint)

app = typer.Typer(
    name="specc",
    help="A declarative model-spec compiler: validate, summarize and compile neural-network specs.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class SummaryFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


class DiagnosticFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"  # SARIF 2.1.0 log (specc/formats.py)
    github = "github"  # GitHub Actions workflow annotations (specc/formats.py)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"specc {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """specc: write a model once, check it in milliseconds, compile it anywhere."""


def _check(path: Path):
    return checkcmd.check(path)


SPEC_SUFFIXES = checkcmd.SPEC_SUFFIXES


def _spec_files(paths: list[Path]) -> list[Path]:
    """Files as given; directories replaced by the spec files under them (recursively,
    *.yaml, *.yml, *.json, sorted). A directory without any is a usage error."""
    try:
        return checkcmd.spec_files(paths, typer.echo)
    except checkcmd.UsageExit as exc:
        raise typer.Exit(exc.code) from None


def _status(result, strict: bool = False) -> int:
    """The exit status for one checked spec."""
    return checkcmd.status_of(result, strict)


def _wrote(path: Path, what: str, quiet: bool = False) -> None:
    """Every success that writes a file says what it wrote (on stderr, so stdout stays data)."""
    if quiet:
        return
    import stat

    try:
        info = path.stat()
        regular = stat.S_ISREG(info.st_mode)  # a device or pipe has no size to tell
        size = f", {info.st_size:,} bytes" if regular else ""
    except OSError:
        size = ""
    typer.echo(f"wrote {path} ({what}{size})", err=True)


def _print_diagnostics(diagnostics) -> None:
    checkcmd.print_diagnostics(diagnostics, typer.echo)


def _is_usage_problem(result) -> bool:
    return checkcmd.is_usage_problem(result)


@app.command(short_help="Check specs: syntax, fields, graph, shapes and training section.")
def validate(
    specs: list[Path] = typer.Argument(
        ...,
        help="Spec files (.yaml, .yml or .json) or directories (searched recursively).",
        show_default=False,
    ),
    format: DiagnosticFormat = typer.Option(
        DiagnosticFormat.text,
        "--format",
        "-f",
        help="Output format: text, json, sarif (SARIF 2.1.0) or github (workflow annotations).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only problems."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too (for CI jobs)."),
) -> None:
    """Check specs: syntax, fields, graph, shapes, and that the training section fits the
    model. Reports every problem of every file, each located with a caret under the value.

    Exit 0 when every spec is valid, 1 when one has errors (or warnings with --strict),
    2 when a file cannot be read."""
    try:
        status = checkcmd.validate(specs, format.value, quiet, strict, typer.echo)
    except checkcmd.UsageExit as exc:
        raise typer.Exit(exc.code) from None
    raise typer.Exit(status)


@app.command(short_help="Print layer shapes, parameters and MACs as Keras counts them.")
def summary(
    specs: list[Path] = typer.Argument(
        ...,
        help="Spec files or directories (searched recursively for *.yaml, *.yml, *.json).",
        show_default=False,
    ),
    format: SummaryFormat = typer.Option(
        SummaryFormat.text, "--format", "-f", help="Output format: text, json or markdown."
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
    depth: int | None = typer.Option(
        None,
        "--depth",
        min=0,
        help="Show block instances nested deeper than this as one row with their totals "
        "(0: every top-level instance is one row). Default: every layer.",
    ),
) -> None:
    """Print each layer's output shape, parameters and MACs, and the totals, as Keras counts
    them. With several specs, one summary after another (json: a list)."""
    try:
        status = checkcmd.summary(specs, format.value, strict, depth, typer.echo)
    except checkcmd.UsageExit as exc:
        raise typer.Exit(exc.code) from None
    raise typer.Exit(status)


@app.command(short_help="Print the JSON Schema of the spec language.")
def schema(
    output: Path | None = typer.Option(
        None, "--out", "-o", "--output", help="Write to this file instead of stdout."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not say what was written."),
) -> None:
    """Print the JSON Schema of the spec language (for editors' YAML language servers)."""
    from .schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    _write(output, text)
    _wrote(output, "JSON Schema", quiet)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one regular file (through symlinks, hard links and ``..``);
    a terminal or a pipe never is (``/dev/stdin`` and ``/dev/stdout`` may be the same tty).
    Two paths not written yet are the same file when they resolve alike."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(a).st_mode):
            return False
        return os.path.samefile(a, b)
    except FileNotFoundError:
        try:
            return Path(a).resolve() == Path(b).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
    except (OSError, ValueError):
        return False


def _refuse_overwriting(output: Path | None, *inputs: tuple[str, Path | None]) -> None:
    """Exit 2 before any work when ``output`` is one of the command's other files (given as
    (what it is, path)): writing it would destroy what the command reads
    (``compile spec.yaml -o spec.yaml``)."""
    if output is None:
        return
    for what, path in inputs:
        if path is not None and _same_file(output, path):
            typer.echo(
                f"error: refusing to write {output}: it is {what}; write somewhere else",
                err=True,
            )
            raise typer.Exit(EXIT_USAGE)


def _run_files(run_dir: Path, verb: str) -> list[tuple[str, Path]]:
    """The files a run folder's manifest says specc wrote there (run.json, the model, ...),
    as _refuse_overwriting's inputs: ``predict -o RUN/run.json`` would destroy the run."""
    try:
        files = json.loads((run_dir / ".specc-manifest.json").read_text(encoding="utf-8"))
        names = [n for n in files["files"] if isinstance(n, str)]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        names = []
    names += ["run.json", "normalization.json", "metrics.json"]  # older runs: no manifest
    return [(f"a file of the run {verb} ({run_dir})", run_dir / n) for n in names]


def _write(path: Path, content: str | bytes) -> None:
    """Write atomically (nothing half-written); an unwritable path is a usage error."""
    from .fsutil import atomic_write_bytes

    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # fsutil.WriteError: "cannot write PATH: reason"
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


class Target(str, Enum):
    keras = "keras"
    pytorch = "pytorch"
    onnx = "onnx"
    onnx_text = "onnx-text"


@app.command("compile", short_help="Generate Keras or PyTorch code, or an ONNX graph.")
def compile_(
    spec: Path = typer.Argument(..., help="Spec file.", show_default=False),
    target: Target = typer.Option(
        ...,
        "--target",
        "-t",
        help="What to generate: keras, pytorch, onnx (binary) or onnx-text.",
        show_default=False,
    ),
    output: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        "--output",
        help="Write to this file instead of stdout (required for --target onnx).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not say what was written."),
    weights: Path | None = typer.Option(
        None, "--weights", help="ONNX: canonical weights .npz (default: seeded Keras-style init)."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX: opset version."),
    seed: int = typer.Option(
        0,
        "--seed",
        min=0,
        max=MAX_SEED,
        help="ONNX: seed of the initialization without --weights.",
    ),
    with_training: bool = typer.Option(
        False,
        "--with-training",
        help="Keras/PyTorch: append a runnable training script for the spec's training section.",
    ),
) -> None:
    """Generate a Keras build_model(), a PyTorch nn.Module, or an ONNX graph from a spec.

    Keras and PyTorch code needs neither framework installed; ONNX needs the onnx package.
    Nothing is written when the spec or the request is refused.
    """
    from . import targets
    from .diagnostics import SpecError

    _refuse_overwriting(output, ("the spec being compiled", spec), ("the --weights file", weights))
    result = _check(spec)
    _print_diagnostics(result.diagnostics)
    if not result.ok:
        raise typer.Exit(EXIT_USAGE if _is_usage_problem(result) else EXIT_INVALID)
    name = "onnx" if target is Target.onnx_text else target.value
    plugin = targets.get(name)
    binary = target is Target.onnx
    if with_training and name not in ("keras", "pytorch"):
        typer.echo("--with-training writes Python: use --target keras or pytorch", err=True)
        raise typer.Exit(EXIT_USAGE)
    if binary and output is None:
        typer.echo(f"--target {target.value} writes a binary file: give it with -o FILE", err=True)
        raise typer.Exit(EXIT_USAGE)
    if name == "onnx" and importlib.util.find_spec("onnx") is None:
        from .extras import message

        typer.echo(f"error: {message('onnx', 'the ONNX target')}", err=True)
        raise typer.Exit(EXIT_RUN)
    options: dict = {"with_training": with_training}
    data = None  # ONNX external data written beside the model
    if name == "onnx":
        canonical = _load_weights(weights) if weights is not None else None
        options = {
            "weights": canonical,
            "opset": opset,
            "seed": seed,
            "format": "binary" if binary else "text",
        }
    try:
        if binary:  # the target writes it: above 2 GB of weights, as model + external data
            options.pop("format")
            data = plugin.write(result.model, output, result.source, **options)
            produced = None
        else:
            produced = plugin.emit(result.model, result.source, **options)
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:  # fsutil.WriteError: "cannot write PATH: reason"
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if produced is None:
        pass  # written above
    elif isinstance(produced, bytes):
        _write(output, produced)
    elif output is None:
        typer.echo(produced, nl=False)
    else:
        _write(output, produced)
    if output is not None:
        if name == "onnx":
            what = f"ONNX {'model' if binary else 'text'}, opset {opset}"
            if data is not None:  # the weights, beside the model
                _wrote(data, "ONNX external data", quiet)
        else:
            what = f"{name} code" + (" with a training script" if with_training else "")
        _wrote(output, what, quiet)


def _load_weights(path: Path) -> dict:
    """A canonical weights file; an unreadable one is a usage error."""
    import zipfile

    from . import weights as canonical

    try:
        loaded = canonical.load(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = "empty file" if path.is_file() and path.stat().st_size == 0 else exc
        typer.echo(f"{path}: cannot read weights: {reason}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    problem = _nonfinite(loaded)
    if problem:
        typer.echo(f"{path}: {problem}; weights must be finite numbers", err=True)
        raise typer.Exit(EXIT_USAGE)
    return loaded


def _nonfinite(arrays: dict) -> str | None:
    """'KEY holds N NaN/Inf values, the first at index [...]' for the first bad array."""
    import numpy as np

    for key, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(value)
        count = int(bad.sum())
        if count:
            first = [int(i) for i in np.argwhere(bad)[0]]
            return f"{key} holds {count:,} NaN/Inf value{'s' if count != 1 else ''}, the first at index {first}"
    return None


VERBOSE_HELP = "Also show the frameworks' own log lines (TensorFlow's start-up messages)."


def _set_verbose(value: bool) -> None:
    from .frameworks import set_verbose

    if value:
        set_verbose(True)


class Backend(str, Enum):
    keras = "keras"
    pytorch = "pytorch"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@app.command(short_help="Train on the spec's dataset; write metrics, plots, model, weights.")
def train(
    spec: Path = typer.Argument(
        ..., help="Spec file with a training: section.", show_default=False
    ),
    backend: Backend = typer.Option(
        Backend.keras, "--backend", "-b", help="Framework to train with."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, max=MAX_COUNT, help="Override training.epochs."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, max=MAX_COUNT, help="Override training.batch_size."
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, max=MAX_SEED, help="Override training.seed."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Where the dataset files are (else $SPECC_DATA_DIR, else the cache).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", "--output", help="Run folder (default runs/<name>-<backend>)."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in --out (refused when it holds a different run; see docs/runs.md).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="With --resume: accept a different --epochs or --data-dir than the run recorded.",
    ),
    allow_nonfinite: bool = typer.Option(
        False,
        "--allow-nonfinite",
        help="Train even when the dataset's inputs hold NaN or Inf values (refused by default).",
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Use only the first N train/test samples."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Never download datasets (also: SPECC_OFFLINE=1)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    precision: Precision = typer.Option(
        Precision.fp32,
        "--precision",
        help="fp32; bf16: bf16 autocast in the forward pass (faster on GPUs and CPUs with "
        "AVX512_BF16/AMX); fp16: float16 autocast with a gradient scaler (CUDA). Weights, "
        "optimizer, loss and evaluation stay float32. Keras: its mixed precision policies.",
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        help="PyTorch: auto (CUDA when available), cpu, cuda or cuda:N.",
    ),
    nproc: int | None = typer.Option(
        None,
        "--nproc",
        min=1,
        help="PyTorch: train data parallel on N processes of this machine (DDP; gloo on CPU, "
        "nccl on CUDA). For several machines start `torchrun ... -m specc train` instead.",
    ),
    sync_batchnorm: bool = typer.Option(
        False,
        "--sync-batchnorm",
        help="Data parallel: batch-norm statistics over the global batch, not per rank.",
    ),
    devices: int | None = typer.Option(
        None,
        "--devices",
        min=1,
        help="Keras: MirroredStrategy over N local devices (GPUs, else N logical CPUs).",
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="Intra-op threads (default: the framework's; 1 is fastest on a busy machine).",
    ),
    progress_interval: float = typer.Option(
        10.0,
        "--progress-interval",
        min=0.0,
        help="Seconds between progress lines when stderr is not a terminal (a pipe, a CI log).",
    ),
    tensorboard: Path | None = typer.Option(
        None,
        "--tensorboard",
        help="Write loss, metrics and learning rate per step and per epoch for TensorBoard "
        "into this folder (view with: tensorboard --logdir DIR).",
    ),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Train the compiled model on the spec's dataset; write metrics, plots, model and weights."""
    _set_verbose(verbose)
    from .diagnostics import SpecError
    from .fsutil import WriteError
    from .runner.devices import parse_device
    from .runner.run import ResumeRefused, RunError, RunInterrupted, TrainOptions
    from .runner.run import train as run_training
    from .runner.runfolder import RunDamaged, RunFolderBusy, RunFolderConflict

    try:  # a device name that is none is a usage error; one not present here is exit 3
        parse_device(device)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if nproc is not None:
        from .runner import distributed

        if backend != Backend.pytorch:
            typer.echo("error: --nproc trains with --backend pytorch (Keras: --devices)", err=True)
            raise typer.Exit(EXIT_USAGE)
        ranks = max(64, 4 * (os.cpu_count() or 1))
        if os.environ.get("WORLD_SIZE") is None and nproc > ranks:
            typer.echo(
                f"error: --nproc {nproc:,} would start {nproc:,} processes, each loading PyTorch; "
                f"this machine has {os.cpu_count()} CPUs (at most {ranks} ranks)",
                err=True,
            )
            raise typer.Exit(EXIT_USAGE)
        if os.environ.get("WORLD_SIZE") is None:
            if nproc > 1:
                if "train" not in sys.argv[1:]:  # called in-process, not from a command line
                    typer.echo("error: --nproc starts `python -m specc train` itself", err=True)
                    raise typer.Exit(EXIT_USAGE)
                raise typer.Exit(distributed.launch(distributed.strip_nproc(sys.argv[1:]), nproc))
        elif int(os.environ["WORLD_SIZE"]) != nproc:
            typer.echo(
                f"error: --nproc {nproc} under a launcher with WORLD_SIZE="
                f"{os.environ['WORLD_SIZE']}; leave --nproc out under torchrun",
                err=True,
            )
            raise typer.Exit(EXIT_USAGE)
    options = TrainOptions(
        backend=backend.value,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        data_dir=str(data_dir) if data_dir else None,
        out_dir=str(out) if out else None,
        resume=resume,
        force=force,
        allow_nonfinite=allow_nonfinite,
        limit=limit,
        progress=not quiet,
        progress_interval=progress_interval,
        tensorboard=str(tensorboard) if tensorboard else None,
        download=not offline,
        precision=precision.value,
        threads=threads,
        device=device,
        sync_batchnorm=sync_batchnorm,
        devices=devices,
    )
    log = (lambda *_: None) if quiet else (lambda text: typer.echo(text, err=True))
    try:
        run_training(spec, options, log=log, say_result=typer.echo)
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(
            EXIT_USAGE if any(d.code == codes.IO for d in exc.diagnostics) else EXIT_INVALID
        ) from None
    except RunError as exc:
        typer.echo(f"error: {exc}", err=True)
        from .runner.distributed import LOST_PEER_EXIT, DistributedError, launched_rank

        if isinstance(exc, DistributedError) and launched_rank():
            raise typer.Exit(LOST_PEER_EXIT) from None  # the launcher names the cause
        raise typer.Exit(EXIT_RUN) from None
    except (WriteError, RunFolderBusy, RunFolderConflict, ResumeRefused) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except RunDamaged as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_RUN) from None
    except RunInterrupted as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except KeyboardInterrupt:  # before training began (loading data, building the model)
        typer.echo(
            "interrupted; the run folder keeps its last complete checkpoint, if any", err=True
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as exc:  # a framework's own save that failed (full disk, read-only)
        import errno

        from .fsutil import reason_of

        if exc.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EACCES):
            raise
        where = getattr(exc, "filename", None) or out or "the run folder"
        typer.echo(f"error: cannot write {where}: {reason_of(exc)}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # dataset problems carry their own readable messages
        from .data import DatasetError

        if isinstance(exc, DatasetError):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_RUN) from None
        if _caused_by_ctrl_c(exc):  # Ctrl-C inside an import becomes an ImportError
            typer.echo(
                "interrupted; the run folder keeps its last complete checkpoint, if any", err=True
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        raise


def _caused_by_ctrl_c(exc: BaseException) -> bool:
    for _ in range(10):
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class CrosscheckFormat(str, Enum):
    text = "text"
    json = "json"


def _crosscheck_log(format):
    """What crosscheck is doing, on stderr (text output only: JSON output stays clean)."""
    if format is not CrosscheckFormat.text:
        return None
    return lambda text: typer.echo(f"crosscheck: {text}", err=True)


@app.command(short_help="Check that the Keras, PyTorch and ONNX builds agree.")
def crosscheck(
    spec: Path = typer.Argument(..., help="Spec file.", show_default=False),
    backends: str = typer.Option(
        "keras,pytorch,onnx",
        "--backends",
        "--backend",
        help="Comma-separated backends to compare (keras, pytorch, onnx).",
    ),
    weights: Path | None = typer.Option(
        None, "--weights", help="Canonical weights .npz (default: seeded random weights)."
    ),
    run: Path | None = typer.Option(
        None, "--run", help="A `specc train` run folder: its weights, and its test set predicted."
    ),
    batch: int = typer.Option(
        8, "--batch-size", "--batch", min=1, help="Samples in the seeded input batch."
    ),
    atol: float = typer.Option(1e-5, "--atol", min=0.0, help="Absolute tolerance."),
    rtol: float = typer.Option(1e-4, "--rtol", min=0.0, help="Relative tolerance."),
    seed: int = typer.Option(
        0, "--seed", min=0, max=MAX_SEED, help="Seed of the random weights, inputs and labels."
    ),
    train_step: bool = typer.Option(
        True,
        "--train-step/--no-train-step",
        help="Also compare one SGD and one Adam step in Keras and PyTorch.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="With --run: where the dataset files are."
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        min=1,
        help="With --run: predict only the first N test samples (default: the run's --limit).",
    ),
    format: CrosscheckFormat = typer.Option(
        CrosscheckFormat.text, "--format", "-f", help="Output format: text or json."
    ),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Check that the Keras, PyTorch and ONNX builds agree (forward, training step, trained
    weights); name the first diverging layer. Exit 1 when they disagree."""
    _set_verbose(verbose)
    from .crosscheck import CrosscheckError
    from .crosscheck import crosscheck as run_crosscheck

    result = _check(spec)
    _print_diagnostics(result.diagnostics)
    if not result.ok:
        raise typer.Exit(EXIT_USAGE if _is_usage_problem(result) else EXIT_INVALID)
    if weights is not None and run is not None:
        typer.echo("give --weights or --run, not both", err=True)
        raise typer.Exit(EXIT_USAGE)
    canonical = _load_weights(weights) if weights is not None else None
    names = [b.strip() for b in backends.split(",") if b.strip()]
    try:
        report = run_crosscheck(
            result.model,
            spec_path=str(spec),
            backends=names,
            weights=canonical,
            weights_label=f"file {weights}" if weights is not None else None,
            run_dir=run,
            batch=batch,
            atol=atol,
            rtol=rtol,
            seed=seed,
            train_step=train_step,
            data_dir=str(data_dir) if data_dir else None,
            limit=limit,
            log=_crosscheck_log(format),
        )
    except CrosscheckError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if format is CrosscheckFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.format_text(), nl=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_INVALID)


class PlotFormat(str, Enum):
    dot = "dot"
    mermaid = "mermaid"
    markdown = "markdown"
    svg = "svg"
    png = "png"


class RankDir(str, Enum):
    TB = "TB"
    LR = "LR"


@app.command(short_help="Draw the model graph (SVG, PNG, DOT or Mermaid).")
def plot(
    spec: Path = typer.Argument(..., help="Spec file.", show_default=False),
    output: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        "--output",
        help="model.svg, .png (need Graphviz), .dot/.gv, .mmd (Mermaid) or .md (Mermaid block); "
        "default: DOT on stdout.",
    ),
    format: PlotFormat | None = typer.Option(
        None, "--format", "-f", help="Output format (default: from the -o suffix, else dot)."
    ),
    rankdir: RankDir = typer.Option(
        RankDir.TB, "--rankdir", help="TB: top to bottom, LR: left to right."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not say what was written."),
) -> None:
    """Draw the model graph as Keras's plot_model does: layer name and type, output shape,
    parameters. DOT and Mermaid need nothing; SVG and PNG need Graphviz's `dot`."""
    from .plot import SUFFIXES, PlotError
    from .plot import plot as draw

    if format is None:
        if output is None:
            format = PlotFormat.dot
        else:
            suffix = output.suffix.lower()
            if suffix not in SUFFIXES:
                typer.echo(
                    f"{output}: cannot tell the format from '{suffix or output.name}'; use "
                    f"{', '.join(SUFFIXES)} or give --format",
                    err=True,
                )
                raise typer.Exit(EXIT_USAGE)
            format = PlotFormat(SUFFIXES[suffix])
    if format is PlotFormat.png and output is None:
        typer.echo("PNG is binary: give a file with -o model.png", err=True)
        raise typer.Exit(EXIT_USAGE)
    _refuse_overwriting(output, ("the spec being drawn", spec))
    result = _check(spec)
    _print_diagnostics(result.diagnostics)
    if not result.ok:
        raise typer.Exit(EXIT_USAGE if _is_usage_problem(result) else EXIT_INVALID)
    try:
        data = draw(result.model, format.value, rankdir.value)
    except PlotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_RUN) from None
    if output is None:
        typer.echo(data.decode("utf-8"), nl=False)
        return
    _write(output, data)
    _wrote(output, f"{format.value} graph", quiet)


@app.command(short_help="Open a spec or an ONNX model in the Netron viewer.")
def view(
    model: Path = typer.Argument(
        ..., help="A spec file, or an ONNX model (.onnx).", show_default=False
    ),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Netron's port."),
    browse: bool = typer.Option(
        True, "--browse/--no-browse", help="Open the browser (else only print the address)."
    ),
) -> None:
    """Open the model in Netron: a spec is compiled to ONNX first (needs the onnx and netron
    packages: pip install 'specc[view]'). Serves until Ctrl-C."""
    from .viewer import ViewError, serve

    try:
        serve(model, port=port, browse=browse, log=lambda text: typer.echo(text, err=True))
    except ViewError as exc:
        typer.echo(str(exc) if exc.located else f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@app.command(short_help="Run the language server for editors (stdin/stdout).")
def lsp() -> None:
    """Run the specc language server on stdin/stdout (for editors: diagnostics, hover with
    shapes and parameters, completion, go-to-definition, inlay hints). Needs pygls:
    pip install 'specc[lsp]'."""
    import importlib.util

    if importlib.util.find_spec("pygls") is None:
        from .extras import message

        typer.echo(f"error: {message('pygls', 'the language server')}", err=True)
        raise typer.Exit(EXIT_RUN)
    from .lsp import main as serve_lsp

    serve_lsp()


@app.command("import", short_help="Turn a Keras model or an ONNX graph into a spec.")
def import_(
    source: Path = typer.Argument(
        ...,
        help="A Keras model (.keras, .h5, .json config) or an ONNX graph (.onnx).",
        show_default=False,
    ),
    output: Path | None = typer.Option(
        None, "--out", "-o", "--output", help="Write the spec here (default: stdout)."
    ),
    weights_out: Path | None = typer.Option(
        None, "--weights-out", help="Write the model's weights as a canonical .npz."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Run the imported spec in every installed target with the imported weights and "
        "compare with the original model's outputs.",
    ),
    blocks: bool = typer.Option(
        False,
        "--blocks",
        help="Fold repeated structures (runs of layers named <prefix>_...) into blocks.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not say what was written."),
) -> None:
    """Turn an existing Keras model or ONNX graph into a spec (and its canonical weights).

    Anything the spec language cannot express stops the import with the full list (exit 1);
    options that only affect training are reported as notes. No code from the file runs.
    """
    from .importers import ImportRefused, import_model

    _refuse_overwriting(output, ("the model being imported", source))
    _refuse_overwriting(
        weights_out, ("the model being imported", source), ("also the -o spec file", output)
    )
    need_weights = weights_out is not None or check
    try:
        result = import_model(source, with_weights=need_weights)
    except ImportRefused as exc:
        typer.echo(f"{source}: cannot import:", err=True)
        for item in exc.items:
            typer.echo(f"  - {item}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if blocks:
        from .importers.fold_blocks import fold_blocks

        result.spec, folded = fold_blocks(result.spec)
        result.notes.extend(folded)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    text = result.yaml()
    if need_weights and result.weights is None:
        typer.echo(f"{source} holds no weights (a config only): random weights are used", err=True)
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write(output, text)
        _wrote(output, "spec", quiet)
    if weights_out is not None and result.weights is not None:
        from . import weights as canonical
        from .fsutil import reason_of

        try:
            canonical.save(weights_out, result.weights)
        except OSError as exc:
            typer.echo(f"error: cannot write {weights_out}: {reason_of(exc)}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        _wrote(weights_out, f"canonical weights, {len(result.weights)} arrays", quiet)
    if check:
        _import_check(source, result)


def _import_check(source: Path, result) -> None:
    from . import weights as canonical
    from .importers import ImportRefused
    from .importers.check import check_import
    from .pipeline import check_data

    model = check_data(result.spec, file=str(source)).model
    weights = result.weights or canonical.random_weights(model, 0)
    try:
        rows = check_import(source, result.source_format, model, weights)
    except ImportRefused as exc:
        for item in exc.items:
            typer.echo(item, err=True)
        raise typer.Exit(exc.exit_code) from None
    typer.echo(f"check against the original ({result.source_format}), random inputs:")
    worst = 0.0
    for row in rows:
        if row.refused:
            typer.echo(f"  {row.target:8s} not compared: {row.refused}")
            continue
        typer.echo(
            f"  {row.target:8s} {row.output}: max abs {row.max_abs:.3g}, max rel {row.max_rel:.3g}"
        )
        worst = max(worst, row.max_abs)
    if worst > 1e-4:
        typer.echo("FAIL: the imported model differs from the original", err=True)
        raise typer.Exit(EXIT_INVALID)


class Engine(str, Enum):
    backend = "backend"
    onnx = "onnx"


class PredictFormat(str, Enum):
    text = "text"
    csv = "csv"
    json = "json"


def _run_error(exc) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(exc.exit_code) from None


@app.command(short_help="Predict classes for images or arrays with a trained run.")
def predict(
    run_dir: Path = typer.Argument(..., help="A `specc train` run folder.", show_default=False),
    inputs: Path = typer.Argument(
        ...,
        help="An .npy, an .npz (x, optional y labels), an image file or a folder of images.",
        show_default=False,
    ),
    engine: Engine = typer.Option(
        Engine.backend,
        "--engine",
        help="backend: the run's model in its framework; onnx: the run's model.onnx in "
        "onnxruntime (fast, no training framework needed).",
    ),
    top_k: int = typer.Option(3, "--top-k", min=1, help="How many top classes to list."),
    output: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        "--output",
        help="Write to this file (.csv, .json or text) instead of stdout.",
    ),
    format: PredictFormat | None = typer.Option(
        None, "--format", "-f", help="Output format (default: from -o's suffix, else text)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not say what was written."),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Predict class, confidence and top-k classes with a trained run, preprocessing the
    inputs exactly as the run did (normalization.json)."""
    from .runner.predict import PredictError, TrainedRun, format_predictions, read_inputs
    from .runner.predict import predict as run_predict

    _set_verbose(verbose)
    _refuse_overwriting(
        output, ("the inputs being predicted", inputs), *_run_files(run_dir, "predict uses")
    )
    if format is None:
        suffix = output.suffix.lower() if output is not None else ""
        format = {".csv": PredictFormat.csv, ".json": PredictFormat.json}.get(
            suffix, PredictFormat.text
        )
    try:
        run = TrainedRun(run_dir, engine.value)
        result = run_predict(run, read_inputs(inputs, run), top_k=top_k)
    except PredictError as exc:
        _run_error(exc)
    text = format_predictions(result, format.value)
    if result.get("nonfinite_outputs"):
        typer.echo(
            f"warning: the run's model gave NaN/Inf outputs for {result['nonfinite_outputs']} of "
            f"{result['samples']} samples (a diverged training?); their classes mean nothing",
            err=True,
        )
    if output is None:
        typer.echo(text, nl=False)
        return
    _write(output, text)
    _wrote(output, f"{result['samples']} predictions, {format.value}", quiet)
    if "accuracy" in result:
        typer.echo(f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['samples']})")


@app.command(short_help="Recompute a run's test metrics and compare with metrics.json.")
def evaluate(
    run_dir: Path = typer.Argument(..., help="A `specc train` run folder.", show_default=False),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where the dataset files are (default: where the run found them)."
    ),
    engine: Engine = typer.Option(
        Engine.backend, "--engine", help="backend (the run's framework) or onnx (onnxruntime)."
    ),
    format: CrosscheckFormat = typer.Option(
        CrosscheckFormat.text, "--format", "-f", help="Output format."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Never download datasets (also: SPECC_OFFLINE=1)."
    ),
    verbose: bool = typer.Option(False, "--verbose", help=VERBOSE_HELP),
) -> None:
    """Recompute a run's test metrics (same data options and preprocessing as the run) and
    compare them with its metrics.json. Exit 1 when they differ."""
    import os

    from .runner.predict import (
        PredictError,
        TrainedRun,
        compare_metrics,
        evaluate_run,
        read_run_json,
    )

    _set_verbose(verbose)
    try:
        run = TrainedRun(run_dir, engine.value)
        recorded = read_run_json(Path(run_dir) / "metrics.json")  # before the work
        metrics = evaluate_run(
            run,
            str(data_dir) if data_dir else None,
            download=not offline and os.environ.get("SPECC_OFFLINE", "") in ("", "0"),
        )
    except PredictError as exc:
        _run_error(exc)
    # the backend recomputes exactly; onnxruntime's outputs and the numpy loss differ from
    # the framework's in the last float32 bits
    tolerance = 1e-6 if engine is Engine.backend else 1e-4
    differ = compare_metrics(metrics, recorded, tolerance)
    if format is CrosscheckFormat.json:
        payload = {"engine": engine.value, "samples": metrics.get("samples"), **metrics}
        payload["matches_metrics_json"] = not differ
        payload["differ"] = differ
        from .runner.report import finite_json

        typer.echo(json.dumps(finite_json(payload), indent=2, default=str))
    else:
        from .runner.results import result_line

        typer.echo(
            result_line(metrics) + f" ({metrics.get('samples', '?')} samples, {engine.value})"
        )
        if differ:
            typer.echo(f"differs from {run_dir}/metrics.json in: {', '.join(differ)}")
        else:
            typer.echo(f"equal to {run_dir}/metrics.json (tolerance {tolerance:g})")
    raise typer.Exit(EXIT_INVALID if differ else EXIT_OK)


@app.command(short_help="Redraw a run's plots; overlay the curves of several runs.")
def report(
    run_dirs: list[Path] = typer.Argument(
        ..., help="One or more `specc train` run folders.", show_default=False
    ),
    output: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        "--output",
        help="Folder for the plots (default: the run folder, when one run is given).",
    ),
) -> None:
    """Redraw a run's plots (curves, confusion matrix, most confident mistakes); with several
    runs, also overlay their curves in compare_curves.png (backend vs backend, fp32 vs bf16)."""
    from .runner.report import draw_run, load_run, plot_overlay

    if output is None and len(run_dirs) > 1:
        typer.echo("give -o DIR for the plots of several runs", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        runs = [load_run(d) for d in run_dirs]
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    out = output or run_dirs[0]
    written = []
    try:
        for run in runs:
            folder = out if len(runs) == 1 else out / run["dir"].resolve().name
            folder.mkdir(parents=True, exist_ok=True)
            written += draw_run(
                run["dir"], folder, run["info"], run["history"], run["metrics"], run["class_names"]
            )
        if len(runs) > 1:
            plot_overlay(runs, out / "compare_curves.png")
            written.append(out / "compare_curves.png")
    except OSError as exc:
        typer.echo(f"error: cannot write the plots: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:  # a run file edited by hand
        typer.echo(
            f"error: {run['dir']}: cannot draw the plots from its files ({type(exc).__name__}: "
            f"{exc}); a damaged metrics.json, history.json or test_predictions.npz?",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE) from None
    for path in written:
        _wrote(path, "plot")


def main() -> None:
    """Console entry point."""
    # pydantic otherwise scans every installed distribution's entry points for plugins
    # (observability hooks for an application's own models) when the first validator is
    # built: a large share of a cold `specc validate` in a big environment. An explicit
    # setting of the user's wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from .extras import MissingPackage, message, missing_module

    try:
        try:
            app()
        except SystemExit as exc:
            if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # a data-parallel rank
                _leave_rank(exc.code)
            raise
        finally:
            if not sys.stdout.closed:  # the language server closes it when the client exits
                sys.stdout.flush()  # a full or closed stdout fails here, not at interpreter exit
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except MissingPackage as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_RUN)
    except ModuleNotFoundError as exc:  # an optional package imported deep inside a command
        module = missing_module(exc)
        if module is None:
            raise
        typer.echo(f"error: {message(module)}", err=True)
        sys.exit(EXIT_RUN)
    except OSError as exc:  # writing results to stdout failed (a full device, a closed pipe)
        _stdout_failed(exc)


def _leave_rank(code) -> None:
    """End a data-parallel rank (``--nproc N`` or torchrun) now: its files are written and
    closed, and a process group can abort the interpreter's shutdown (SIGABRT from a gloo
    thread, above all after a peer died), which would hide this rank's exit code."""
    status = code if isinstance(code, int) else (0 if code is None else 1)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(status)


def _stdout_failed(exc: OSError) -> None:
    """One line on stderr and exit 2, without Python's flush-at-exit traceback."""
    from .entry import stdout_failed

    stdout_failed(exc)


if __name__ == "__main__":
    main()
