"""The `specc` command line.

Exit codes: 0 success, 1 invalid spec (diagnostics printed), 2 usage error (bad option,
missing file, unwritable output), 3 the run cannot proceed (dataset or framework missing).
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path

import typer

from . import __version__

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_RUN = 3  # the spec is fine but the run cannot proceed (missing data or framework)

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
    from .pipeline import check_file

    return check_file(path)


def _print_diagnostics(diagnostics) -> None:
    for diag in diagnostics:
        typer.echo(diag.format(), err=True)


def _is_usage_problem(result) -> bool:
    return any(d.code == "io" for d in result.diagnostics)


@app.command()
def validate(
    specs: list[Path] = typer.Argument(
        ..., help="Spec files (.yaml, .yml or .json).", show_default=False
    ),
    format: DiagnosticFormat = typer.Option(
        DiagnosticFormat.text, "--format", "-f", help="Output format."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only problems."),
) -> None:
    """Check specs: syntax, fields, graph and shapes. Reports every problem of every file."""
    reports = []
    status = EXIT_OK
    for path in specs:
        result = _check(path)
        if _is_usage_problem(result):
            status = max(status, EXIT_USAGE)
        elif not result.ok:
            status = max(status, EXIT_INVALID)
        reports.append((path, result))
        if format is DiagnosticFormat.text:
            _print_diagnostics(result.diagnostics)
            if result.ok and not quiet:
                model = result.model
                typer.echo(
                    f"{path}: ok ({model.name}: {len(model.layers)} layers, "
                    f"{model.total_params:,} params)"
                )
    if format is DiagnosticFormat.json:
        payload = [
            {
                "file": str(path),
                "ok": result.ok,
                "diagnostics": [d.to_dict() for d in result.diagnostics],
            }
            for path, result in reports
        ]
        typer.echo(json.dumps(payload, indent=2))
    raise typer.Exit(status)


@app.command()
def summary(
    spec: Path = typer.Argument(..., help="Spec file.", show_default=False),
    format: SummaryFormat = typer.Option(
        SummaryFormat.text, "--format", "-f", help="Output format."
    ),
) -> None:
    """Print each layer's output shape, parameters and MACs, and the totals, as Keras counts them."""
    from .summary import format_markdown, format_text, summarize

    result = _check(spec)
    _print_diagnostics(result.diagnostics)
    if not result.ok:
        raise typer.Exit(EXIT_USAGE if _is_usage_problem(result) else EXIT_INVALID)
    if format is SummaryFormat.json:
        typer.echo(json.dumps(summarize(result.model), indent=2))
    elif format is SummaryFormat.markdown:
        typer.echo(format_markdown(result.model), nl=False)
    else:
        typer.echo(format_text(result.model), nl=False)


@app.command()
def schema(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
) -> None:
    """Print the JSON Schema of the spec language (for editors' YAML language servers)."""
    from .schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    _write(output, text)


def _write(path: Path, text: str) -> None:
    """Write atomically (nothing half-written); an unwritable path is a usage error."""
    from .fsutil import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as exc:
        typer.echo(f"{path}: cannot write: {exc.strerror}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


class Target(str, Enum):
    keras = "keras"
    pytorch = "pytorch"
    onnx = "onnx"
    onnx_text = "onnx-text"


@app.command("compile")
def compile_(
    spec: Path = typer.Argument(..., help="Spec file.", show_default=False),
    target: Target = typer.Option(
        ..., "--target", "-t", help="What to generate.", show_default=False
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file (required for --target onnx)."
    ),
    weights: Path | None = typer.Option(
        None, "--weights", help="ONNX: canonical weights .npz (default: seeded Keras-style init)."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX: opset version."),
    seed: int = typer.Option(
        0, "--seed", help="ONNX: seed of the initialization without --weights."
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
    from .codegen import CodegenError, generate
    from .diagnostics import SpecError

    result = _check(spec)
    _print_diagnostics(result.diagnostics)
    if not result.ok:
        raise typer.Exit(EXIT_USAGE if _is_usage_problem(result) else EXIT_INVALID)
    if target in (Target.keras, Target.pytorch):
        try:
            code = generate(result.model, target.value, result.source, with_training)
        except CodegenError as exc:
            _print_diagnostics(exc.diagnostics)
            raise typer.Exit(EXIT_INVALID) from None
        if output is None:
            typer.echo(code, nl=False)
            return
        _write(output, code)
        return
    if with_training:
        typer.echo("--with-training writes Python: use --target keras or pytorch", err=True)
        raise typer.Exit(EXIT_USAGE)
    if target is Target.onnx and output is None:
        typer.echo("--target onnx writes a binary file: give it with -o model.onnx", err=True)
        raise typer.Exit(EXIT_USAGE)
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        typer.echo("the ONNX target needs the onnx package: pip install 'specc[onnx]'", err=True)
        raise typer.Exit(EXIT_RUN)
    from .onnx_target import build_onnx, onnx_text, write_onnx

    try:
        canonical = _load_weights(weights) if weights is not None else None
        if target is Target.onnx:
            write_onnx(
                result.model, output, canonical, opset=opset, seed=seed, source=result.source
            )
            return
        text = onnx_text(
            build_onnx(result.model, canonical, opset=opset, seed=seed, source=result.source)
        )
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(EXIT_INVALID) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write(output, text)


def _load_weights(path: Path) -> dict:
    """A canonical weights file; an unreadable one is a usage error."""
    from . import weights as canonical

    try:
        return canonical.load(path)
    except (OSError, ValueError) as exc:
        typer.echo(f"{path}: cannot read weights: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


class Backend(str, Enum):
    keras = "keras"
    pytorch = "pytorch"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@app.command()
def train(
    spec: Path = typer.Argument(
        ..., help="Spec file with a training: section.", show_default=False
    ),
    backend: Backend = typer.Option(
        Backend.keras, "--backend", "-b", help="Framework to train with."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override training.epochs."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Override training.batch_size."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Override training.seed."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Where the dataset files are (else $SPECC_DATA_DIR, else the cache).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run folder (default runs/<name>-<backend>)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
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
) -> None:
    """Train the compiled model on the spec's dataset; write metrics, plots, model and weights."""
    from .diagnostics import SpecError
    from .runner.run import RunError, TrainOptions
    from .runner.run import train as run_training

    if nproc is not None:
        from .runner import distributed

        if backend != Backend.pytorch:
            typer.echo("error: --nproc trains with --backend pytorch (Keras: --devices)", err=True)
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
        limit=limit,
        progress=not quiet,
        download=not offline,
        precision=precision.value,
        threads=threads,
        device=device,
        sync_batchnorm=sync_batchnorm,
        devices=devices,
    )
    log = (lambda *_: None) if quiet else (lambda text: typer.echo(text, err=True))
    try:
        run_training(spec, options, log=log)
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(
            EXIT_USAGE if any(d.code == "io" for d in exc.diagnostics) else EXIT_INVALID
        ) from None
    except RunError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_RUN) from None
    except Exception as exc:  # dataset problems carry their own readable messages
        from .data import DatasetError

        if isinstance(exc, DatasetError):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_RUN) from None
        raise


class CrosscheckFormat(str, Enum):
    text = "text"
    json = "json"


@app.command()
def crosscheck(
    spec: Path = typer.Argument(..., help="Spec file.", show_default=False),
    backends: str = typer.Option(
        "keras,pytorch,onnx", "--backends", help="Comma-separated backends to compare."
    ),
    weights: Path | None = typer.Option(
        None, "--weights", help="Canonical weights .npz (default: seeded random weights)."
    ),
    run: Path | None = typer.Option(
        None, "--run", help="A `specc train` run folder: its weights, and its test set predicted."
    ),
    batch: int = typer.Option(8, "--batch", min=1, help="Samples in the seeded input batch."),
    atol: float = typer.Option(1e-5, "--atol", min=0.0, help="Absolute tolerance."),
    rtol: float = typer.Option(1e-4, "--rtol", min=0.0, help="Relative tolerance."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights, inputs and labels."),
    train_step: bool = typer.Option(
        True,
        "--train-step/--no-train-step",
        help="Also compare one SGD and one Adam step in Keras and PyTorch.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="With --run: where the dataset files are."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="With --run: predict only the first N test samples."
    ),
    format: CrosscheckFormat = typer.Option(
        CrosscheckFormat.text, "--format", "-f", help="Output format."
    ),
) -> None:
    """Check that the Keras, PyTorch and ONNX builds agree (forward, training step, trained
    weights); name the first diverging layer. Exit 1 when they disagree."""
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
        )
    except CrosscheckError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if format is CrosscheckFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.format_text(), nl=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_INVALID)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
