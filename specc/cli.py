"""The `specc` command line.

Exit codes: 0 success, 1 invalid spec (diagnostics printed), 2 usage error (bad option,
missing file, unwritable output).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import typer

from . import __version__

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

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


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
