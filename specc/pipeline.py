"""The pipeline: parse -> validate -> resolve -> infer. Returns diagnostics, never raises for bad specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import Diagnostic, has_errors
from .ir import ModelIR
from .source import ParseError, Source, load_source, read_source


@dataclass
class Result:
    """What checking a spec gives: the model (when valid) and every diagnostic."""

    model: ModelIR | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source: Source | None = None

    @property
    def ok(self) -> bool:
        return self.model is not None and not has_errors(self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]


def check_source(source: Source) -> Result:
    """Validate parsed data, resolve its graph and infer shapes."""
    import gc

    # The cyclic garbage collector finds nothing to free here but rescans the many young
    # objects validation creates, which made large specs superlinear (10,000 layers:
    # 996 ms -> 435 ms without it).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _check_source(source)
    finally:
        if enabled:
            gc.enable()


def _check_source(source: Source) -> Result:
    from pydantic import ValidationError

    from .blocks import attach_context
    from .blocks import expand as expand_blocks
    from .errors import pydantic_diagnostics
    from .graph import resolve
    from .infer import infer
    from .spec import Spec

    data = source.data
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number"}.get(
            kind, kind
        )
        diag = Diagnostic(
            f"the top level must be a mapping with 'version', 'name' and 'layers', not {kind}",
            file=source.file,
            line=source.locate(())[0],
            column=source.locate(())[1],
            code="top-level",
        )
        return Result(None, [diag], source)
    # blocks are expanded first: every later stage sees plain layers (specc/blocks.py)
    source, expansion, block_errors = expand_blocks(source)
    if block_errors:
        return Result(None, _ordered(block_errors), source)
    data = source.data

    def located(items: list[Diagnostic]) -> list[Diagnostic]:
        return _ordered(attach_context(items, expansion))

    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        return Result(None, located(pydantic_diagnostics(exc, source)), source)
    graph, diagnostics = resolve(spec, source)
    if has_errors(diagnostics):
        # still infer what can be inferred, to report every problem at once
        _, more = infer(spec, graph, source)
        return Result(None, located(diagnostics + more), source)
    model, more = infer(spec, graph, source)
    if has_errors(more):  # an unused-layer warning is noise beside the real problem
        diagnostics = [d for d in diagnostics if d.code != "unused"]
        return Result(None, located(diagnostics + more), source)
    model.expansion = expansion
    return Result(model, located(diagnostics + more), source)


def _ordered(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """In file order, as compilers print them."""
    return sorted(diagnostics, key=lambda d: (d.file, d.line, d.column))


def check_file(path: str | Path) -> Result:
    """Check a spec file (YAML, or JSON by its .json suffix)."""
    try:
        source = read_source(path)
    except ParseError as exc:
        return Result(None, [exc.diagnostic])
    return check_source(source)


def check_text(text: str, format: str = "yaml", file: str = "<string>") -> Result:
    """Check spec text; ``format`` is 'yaml' or 'json'."""
    try:
        source = load_source(text, file=file, fmt=format)
    except ParseError as exc:
        return Result(None, [exc.diagnostic])
    return check_source(source)


def check_data(data: dict, file: str = "<dict>") -> Result:
    """Check a spec given as Python data (positions are unknown: line 1, column 1)."""
    return check_source(Source(data=data, file=file))
