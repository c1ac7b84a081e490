"""`specc validate` and `specc summary`: what they print and their exit status, free of the
command-line framework.

Both the full command line (``specc.cli``, typer) and the console entry's fast path
(``specc.entry``, which runs these two commands without importing typer or click: most of a
cold check is start-up) call these functions, so the two paths print the same bytes.
``echo(message, err=False, nl=True)`` writes one message (``typer.echo``'s signature).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import diagcodes as codes

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
VALIDATE_FORMATS = ("text", "json", "sarif", "github")
SUMMARY_FORMATS = ("text", "json", "markdown")


class UsageExit(Exception):
    """A usage error already reported: exit with ``code``."""

    def __init__(self, code: int = EXIT_USAGE):
        super().__init__(code)
        self.code = code


def check(path: Path):
    from .pipeline import check_file

    return check_file(path)


def spec_files(paths: list[Path], echo) -> list[Path]:
    """Files as given; directories replaced by the spec files under them (recursively,
    *.yaml, *.yml, *.json, sorted). A directory without any is a usage error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in SPEC_SUFFIXES and p.is_file()
            )
            if not found:
                echo(f"error: {path}: no *.yaml, *.yml or *.json spec files", err=True)
                raise UsageExit(EXIT_USAGE)
            files.extend(found)
        else:
            files.append(path)
    return files


def is_usage_problem(result) -> bool:
    return any(d.code == codes.IO for d in result.diagnostics)


def status_of(result, strict: bool = False) -> int:
    """The exit status for one checked spec."""
    if is_usage_problem(result):
        return EXIT_USAGE
    if not result.ok or (strict and result.warnings):
        return EXIT_INVALID
    return EXIT_OK


def print_diagnostics(diagnostics, echo) -> None:
    for diag in diagnostics:
        echo(diag.format(), err=True)


def validate(specs: list[Path], format: str, quiet: bool, strict: bool, echo) -> int:
    """`specc validate`: the exit status (see specc.cli.validate for the contract)."""
    reports = []
    status = EXIT_OK
    for path in spec_files(specs, echo):
        result = check(path)
        status = max(status, status_of(result, strict))
        reports.append((path, result))
        if format == "text":
            print_diagnostics(result.diagnostics, echo)
            if result.ok and strict and result.warnings:
                count = len(result.warnings)
                echo(f"{path}: failed: {count} warning{'s' * (count > 1)} with --strict")
            elif result.ok and not quiet:
                model = result.model
                echo(
                    f"{path}: ok ({model.name}: {len(model.layers)} layers, "
                    f"{model.total_params:,} params)"
                )
    if format == "json":
        payload = [
            {
                "file": str(path),
                "ok": result.ok and not (strict and result.warnings),
                "diagnostics": [d.to_dict() for d in result.diagnostics],
            }
            for path, result in reports
        ]
        echo(json.dumps(payload, indent=2))
    elif format in ("sarif", "github"):
        from .formats import github_annotations, sarif_log

        every = [d for _, result in reports for d in result.diagnostics]
        if format == "sarif":
            echo(json.dumps(sarif_log(every), indent=2))
        else:
            echo(github_annotations(every), nl=False)
    return status


def summary(specs: list[Path], format: str, strict: bool, depth: int | None, echo) -> int:
    """`specc summary`: the exit status (see specc.cli.summary for the contract)."""
    from .summary import format_markdown, format_text, summarize

    files = spec_files(specs, echo)
    status = EXIT_OK
    summaries = []
    for k, path in enumerate(files):
        result = check(path)
        print_diagnostics(result.diagnostics, echo)
        status = max(status, status_of(result, strict))
        if not result.ok:
            continue
        if format == "json":
            summaries.append(summarize(result.model))
            continue
        if k and len(files) > 1:
            echo("")
        draw = format_markdown if format == "markdown" else format_text
        text = draw(result.model, depth)
        echo(text, nl=False)
    if format == "json" and summaries:
        payload = summaries[0] if len(files) == 1 else summaries
        echo(json.dumps(payload, indent=2))
    return status
