"""The pipeline: parse -> validate -> resolve -> infer. Returns diagnostics, never raises for bad specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import diagcodes as codes
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
    from .spec import validate_spec

    data = source.data
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number"}.get(
            kind, kind
        )
        diag = Diagnostic.at(
            source,
            (),
            codes.TOP_LEVEL,
            f"the top level must be a mapping with 'version', 'name' and 'layers', not {kind}",
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
        spec = validate_spec(data)
    except ValidationError as exc:
        # every independent problem at once: check the graph, shapes and training of the
        # parts whose fields are valid, with the invalid parts as broken placeholders
        fields = pydantic_diagnostics(exc, source)
        return Result(None, located(fields + _check_valid_parts(source, exc)), source)
    graph, diagnostics = resolve(spec, source)
    if has_errors(diagnostics):
        # still infer what can be inferred, to report every problem at once
        _, more = infer(spec, graph, source)
        return Result(None, located(diagnostics + more), source)
    model, more = infer(spec, graph, source)
    if model is not None and not has_errors(more):
        from .infer import mask_warnings
        from .training_check import check_training

        more = more + mask_warnings(model, source) + check_training(spec, model, source)
    if has_errors(more):  # an unused-layer warning is noise beside the real problem
        diagnostics = [d for d in diagnostics if d.code != codes.UNUSED]
        return Result(None, located(diagnostics + more), source)
    model.expansion = expansion
    return Result(model, located(diagnostics + more), source)


def _check_valid_parts(source: Source, exc) -> list[Diagnostic]:
    """Graph, shape and training diagnostics for a spec with field errors, on its valid parts
    only: an invalid layer or input becomes a placeholder whose dependents are skipped, an
    invalid training section is left out. Nothing that follows from a field error is said."""
    from pydantic import ValidationError

    from .graph import resolve
    from .infer import infer
    from .layers.base import NAME_PATTERN
    from .spec import Spec

    data = source.data
    if not isinstance(data.get("layers"), list) or not data["layers"]:
        return []
    bad: dict[str, set] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        bad.setdefault(loc[0] if loc else "", set()).add(loc[1] if len(loc) > 1 else None)
    if "" in bad or None in bad.get("layers", ()) or None in bad.get("inputs", ()):
        return []

    def valid_name(value) -> bool:
        import re

        return isinstance(value, str) and re.fullmatch(NAME_PATTERN, value) is not None

    partial = {k: v for k, v in data.items() if k not in bad}
    partial.setdefault("version", 1)
    partial.setdefault("name", "model")
    placeholders: set[int] = set()
    broken: set[str] = set()
    if "layers" in bad:
        from .layers import LAYER_TYPES, keras_default_name

        # the names Keras gives the layers, as if every one were valid (graph.assign_names)
        entries = [e if isinstance(e, dict) else {} for e in data["layers"]]
        taken = {e.get("name") for e in entries if valid_name(e.get("name"))}
        counters: dict[str, int] = {}
        auto_names = []
        for e in entries:
            kind = e.get("type")
            kind = kind if isinstance(kind, str) and kind in LAYER_TYPES else "Activation"
            stem = keras_default_name(kind)
            while True:
                n = counters.get(stem, 0)
                counters[stem] = n + 1
                candidate = stem if n == 0 else f"{stem}_{n}"
                if candidate not in taken:
                    break
            taken.add(candidate)
            auto_names.append(candidate)
        layers = []
        for index, entry in enumerate(data["layers"]):
            if index not in bad["layers"]:
                layers.append(entry)
                continue
            placeholders.add(index)
            stand_in: dict = {"type": "Activation", "activation": "linear"}
            entry = entry if isinstance(entry, dict) else {}
            name = entry.get("name")
            stand_in["name"] = name if valid_name(name) else auto_names[index]
            refs = entry.get("inputs")
            if isinstance(refs, list) and all(valid_name(r) for r in refs) and refs:
                stand_in["inputs"] = refs[:1]
            broken.add(stand_in["name"])
            layers.append(stand_in)
        partial["layers"] = layers
    if "inputs" in bad:
        inputs = []
        if not isinstance(data.get("inputs"), list):
            return []
        for k, entry in enumerate(data["inputs"]):
            if k in bad["inputs"]:
                name = entry.get("name") if isinstance(entry, dict) else None
                entry = {"name": name if valid_name(name) else f"broken_input_{k}", "shape": [1]}
                broken.add(entry["name"])
            inputs.append(entry)
        partial["inputs"] = inputs
    if "outputs" in bad:
        partial.pop("outputs", None)
    try:
        spec = Spec.model_validate(partial)
    except ValidationError:
        return []
    graph, found = resolve(spec, source)
    graph.broken |= broken
    model, more = infer(spec, graph, source)
    guessed = "outputs" in bad or "inputs" in bad  # the model trained would be another
    if model is not None and not guessed and not has_errors(found + more) and spec.training:
        from .training_check import check_training

        more = more + check_training(spec, model, source)

    import re

    layer_path = re.compile(r"layers\[(\d+)\](?:$|[.\[])")

    def about_placeholder(diag: Diagnostic) -> bool:
        match = layer_path.match(diag.path or "")
        return match is not None and int(match.group(1)) in placeholders

    return [
        d
        for d in found + more
        if d.severity == codes.ERROR and d.code != codes.UNUSED and not about_placeholder(d)
    ]


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
