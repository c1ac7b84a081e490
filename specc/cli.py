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

import json
import sys
from enum import Enum
from pathlib import Path

import typer

from . import __version__
from . import diagcodes as codes

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


SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def _spec_files(paths: list[Path]) -> list[Path]:
    """Files as given; directories replaced by the spec files under them (recursively,
    *.yaml, *.yml, *.json, sorted). A directory without any is a usage error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in SPEC_SUFFIXES and p.is_file()
            )
            if not found:
                typer.echo(f"error: {path}: no *.yaml, *.yml or *.json spec files", err=True)
                raise typer.Exit(EXIT_USAGE)
            files.extend(found)
        else:
            files.append(path)
    return files


def _status(result, strict: bool = False) -> int:
    """The exit status for one checked spec."""
    if _is_usage_problem(result):
        return EXIT_USAGE
    if not result.ok or (strict and result.warnings):
        return EXIT_INVALID
    return EXIT_OK


def _wrote(path: Path, what: str, quiet: bool = False) -> None:
    """Every success that writes a file says what it wrote (on stderr, so stdout stays data)."""
    if quiet:
        return
    try:
        size = f", {path.stat().st_size:,} bytes"
    except OSError:
        size = ""
    typer.echo(f"wrote {path} ({what}{size})", err=True)


def _print_diagnostics(diagnostics) -> None:
    for diag in diagnostics:
        typer.echo(diag.format(), err=True)


def _is_usage_problem(result) -> bool:
    return any(d.code == codes.IO for d in result.diagnostics)


@app.command(short_help="Check specs: syntax, fields, graph, shapes and training section.")
def validate(
    specs: list[Path] = typer.Argument(
        ...,
        help="Spec files (.yaml, .yml or .json) or directories (searched recursively).",
        show_default=False,
    ),
    format: DiagnosticFormat = typer.Option(
        DiagnosticFormat.text, "--format", "-f", help="Output format: text or json."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only problems."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too (for CI jobs)."),
) -> None:
    """Check specs: syntax, fields, graph, shapes, and that the training section fits the
    model. Reports every problem of every file, each located with a caret under the value.

    Exit 0 when every spec is valid, 1 when one has errors (or warnings with --strict),
    2 when a file cannot be read."""
    reports = []
    status = EXIT_OK
    for path in _spec_files(specs):
        result = _check(path)
        status = max(status, _status(result, strict))
        reports.append((path, result))
        if format is DiagnosticFormat.text:
            _print_diagnostics(result.diagnostics)
            if result.ok and strict and result.warnings:
                count = len(result.warnings)
                typer.echo(f"{path}: failed: {count} warning{'s' * (count > 1)} with --strict")
            elif result.ok and not quiet:
                model = result.model
                typer.echo(
                    f"{path}: ok ({model.name}: {len(model.layers)} layers, "
                    f"{model.total_params:,} params)"
                )
    if format is DiagnosticFormat.json:
        payload = [
            {
                "file": str(path),
                "ok": result.ok and not (strict and result.warnings),
                "diagnostics": [d.to_dict() for d in result.diagnostics],
            }
            for path, result in reports
        ]
        typer.echo(json.dumps(payload, indent=2))
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
) -> None:
    """Print each layer's output shape, parameters and MACs, and the totals, as Keras counts
    them. With several specs, one summary after another (json: a list)."""
    from .summary import format_markdown, format_text, summarize

    files = _spec_files(specs)
    status = EXIT_OK
    summaries = []
    for k, path in enumerate(files):
        result = _check(path)
        _print_diagnostics(result.diagnostics)
        status = max(status, _status(result, strict))
        if not result.ok:
            continue
        if format is SummaryFormat.json:
            summaries.append(summarize(result.model))
            continue
        if k and len(files) > 1:
            typer.echo("")
        text = (format_markdown if format is SummaryFormat.markdown else format_text)(result.model)
        typer.echo(text, nl=False)
    if format is SummaryFormat.json and summaries:
        payload = summaries[0] if len(files) == 1 else summaries
        typer.echo(json.dumps(payload, indent=2))
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
        what = f"{target.value} code" + (" with a training script" if with_training else "")
        _wrote(output, what, quiet)
        return
    if with_training:
        typer.echo("--with-training writes Python: use --target keras or pytorch", err=True)
        raise typer.Exit(EXIT_USAGE)
    if target is Target.onnx and output is None:
        typer.echo("--target onnx writes a binary file: give it with -o model.onnx", err=True)
        raise typer.Exit(EXIT_USAGE)
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        from .extras import message

        typer.echo(f"error: {message('onnx', 'the ONNX target')}", err=True)
        raise typer.Exit(EXIT_RUN)
    from .onnx_target import build_onnx, onnx_text, write_onnx

    try:
        canonical = _load_weights(weights) if weights is not None else None
        if target is Target.onnx:
            write_onnx(
                result.model, output, canonical, opset=opset, seed=seed, source=result.source
            )
            _wrote(output, f"ONNX model, opset {opset}", quiet)
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
        _wrote(output, f"ONNX text, opset {opset}", quiet)


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


@app.command(short_help="Train on the spec's dataset; write metrics, plots, model, weights.")
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
        None, "--out", "-o", "--output", help="Run folder (default runs/<name>-<backend>)."
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
        help="fp32, or bf16: bf16 autocast in the PyTorch forward pass (faster on CPUs with "
        "AVX512_BF16/AMX; weights, optimizer, loss and evaluation stay float32).",
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
    )
    log = (lambda *_: None) if quiet else (lambda text: typer.echo(text, err=True))
    try:
        run_training(spec, options, log=log)
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics)
        raise typer.Exit(
            EXIT_USAGE if any(d.code == codes.IO for d in exc.diagnostics) else EXIT_INVALID
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
        CrosscheckFormat.text, "--format", "-f", help="Output format: text or json."
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
    from .extras import MissingPackage, message, missing_module

    try:
        app()
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


if __name__ == "__main__":
    main()
