"""Raising helpers for library users: ``load`` a spec (path or dict) or ``loads`` text."""

from __future__ import annotations

from pathlib import Path

from .diagnostics import SpecError
from .ir import ModelIR
from .pipeline import Result, check_data, check_file, check_text


def _unwrap(result: Result) -> ModelIR:
    if not result.ok:
        raise SpecError(result.diagnostics)
    return result.model


def load(spec: str | Path | dict) -> ModelIR:
    """Load, validate and infer a spec file (path) or a spec dict; raise SpecError if invalid."""
    if isinstance(spec, dict):
        return _unwrap(check_data(spec))
    return _unwrap(check_file(spec))


def loads(text: str, format: str = "yaml") -> ModelIR:
    """Like ``load`` for spec text in YAML or JSON."""
    return _unwrap(check_text(text, format=format))
