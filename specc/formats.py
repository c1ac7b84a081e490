"""Machine formats of diagnostics for CI: SARIF 2.1.0 and GitHub workflow annotations.

``specc validate --format sarif`` writes one SARIF log (one run, one result per diagnostic,
each with its file and region) that code-scanning services and SARIF viewers read;
``--format github`` writes GitHub Actions workflow commands (``::error file=...,line=...,
col=...,title=...::message``) that show as annotations on the pull request's changed lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath

from . import __version__
from .diagnostics import Diagnostic

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

_SARIF_LEVELS = {"error": "error", "warning": "warning"}


def _relative(file: str) -> PurePath:
    """The path relative to the working directory (the repository root in CI) when under it."""
    path = PurePath(file)
    if path.is_absolute():
        try:
            return Path(file).resolve().relative_to(Path.cwd().resolve())
        except (ValueError, OSError):
            return path
    return path


def _uri(file: str) -> str:
    """A relative URI reference with forward slashes, as SARIF and code scanning want."""
    path = _relative(file)
    if path.is_absolute():
        return Path(path).as_uri()
    text = path.as_posix()
    # percent-encode what a URI reference cannot hold literally
    out = []
    for ch in text:
        if ch.isalnum() or ch in "-._~/!$&'()*+,;=:@":
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _text(diag: Diagnostic) -> str:
    subject = f"{diag.layer}: " if diag.layer else ""
    text = f"{subject}{diag.message}"
    if diag.hint:
        text += f" (hint: {diag.hint})"
    return text


def sarif_log(diagnostics: Iterable[Diagnostic]) -> dict:
    """A SARIF 2.1.0 log: one run of specc, one result per diagnostic."""
    diagnostics = list(diagnostics)
    rule_ids: list[str] = []
    for diag in diagnostics:
        if diag.code not in rule_ids:
            rule_ids.append(diag.code)
    rules = [
        {
            "id": code,
            "name": "".join(part.capitalize() for part in code.replace("_", "-").split("-"))
            or "Invalid",
            "shortDescription": {"text": f"specc diagnostic '{code}'"},
        }
        for code in rule_ids
    ]
    results = []
    for diag in diagnostics:
        result = {
            "ruleId": diag.code,
            "ruleIndex": rule_ids.index(diag.code),
            "level": _SARIF_LEVELS.get(diag.severity, "note"),
            "message": {"text": _text(diag)},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(diag.file)},
                        "region": {
                            "startLine": max(1, diag.line),
                            "startColumn": max(1, diag.column),
                        },
                    }
                }
            ],
        }
        if diag.layer:
            result["properties"] = {"layer": diag.layer}
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "specc",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(diag: Diagnostic) -> str:
    """One workflow command: ``::error file=F,line=L,col=C,title=specc CODE::message``."""
    command = "error" if diag.severity == "error" else "warning"
    file = _relative(diag.file).as_posix()
    props = ",".join(
        [
            f"file={_escape_property(file)}",
            f"line={max(1, diag.line)}",
            f"col={max(1, diag.column)}",
            f"title={_escape_property('specc ' + diag.code)}",
        ]
    )
    return f"::{command} {props}::{_escape_data(_text(diag))}"


def github_annotations(diagnostics: Sequence[Diagnostic]) -> str:
    return "".join(github_annotation(d) + "\n" for d in diagnostics)
