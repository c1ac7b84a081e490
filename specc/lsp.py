"""`specc lsp`: a Language Server Protocol server for spec files, over stdio (pygls).

What it gives an editor:

- diagnostics on open, on every change and on save: the located diagnostics of
  `specc validate` (the same pipeline, well under a millisecond per bundled spec once warm);
- hover on a layer (or on a name in ``inputs:`` / ``outputs:``): its input and output shapes,
  parameters (trainable / non-trainable) with the weight shapes they come from, and MACs
  with the multiplication behind them;
- completion of layer types after ``type:``, of a layer's field names, of enum values
  (``padding``, ``activation``, initializers ...), of the optimizer and schedule types in
  ``training:``, and of layer names in ``inputs:`` / ``outputs:``, all from the registry;
- go-to-definition from a name in ``inputs:`` or ``outputs:`` to the layer or model input
  that defines it;
- inlay hints with every layer's output shape and parameter count, and a code lens on
  ``layers:`` with the totals.

YAML documents that are not specs (a top-level mapping with neither ``layers`` nor
``inputs``, e.g. a CI workflow) get no diagnostics. Positions are handled in code points
here and converted to the client's encoding (UTF-16 by default) by pygls.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

from . import __version__
from .diagnostics import Diagnostic
from .ir import LayerIR, ModelIR
from .pipeline import Result, check_text
from .source import Source

WORD = re.compile(r"[A-Za-z0-9_]+")


def shape_text(shape) -> str:
    return "(" + ", ".join(["None", *(str(d) for d in shape)]) + ")"


# --------------------------------------------------------------------------- document state


@dataclass
class Document:
    """One checked version of an open document."""

    uri: str
    text: str
    result: Result
    lines: list[str] = field(default_factory=list)
    _layout: dict | None = None

    @property
    def source(self) -> Source | None:
        return self.result.source

    @property
    def model(self) -> ModelIR | None:
        return self.result.model if self.result.ok else None

    @property
    def is_spec(self) -> bool:
        src = self.source
        if src is None or not isinstance(src.data, dict):
            return True  # unparsable or not a mapping: report it
        return "layers" in src.data or "inputs" in src.data

    def weight_layout(self) -> dict[str, list[tuple[str, tuple[int, ...], str]]]:
        """Weights per layer name (from specc.weights), computed on first use."""
        if self._layout is None:
            self._layout = {}
            if self.model is not None:
                try:
                    from .weights import layout

                    for key, shape, kind in layout(self.model):
                        layer, param = key.rsplit("/", 1)
                        self._layout.setdefault(layer, []).append((param, tuple(shape), kind))
                except Exception:  # numpy missing, or a layer without a weight plan
                    self._layout = {}
        return self._layout


def analyze(uri: str, text: str, path: str) -> Document:
    fmt = "json" if path.lower().endswith(".json") else "yaml"
    return Document(uri, text, check_text(text, format=fmt, file=path), text.splitlines())


# --------------------------------------------------------------------------- diagnostics


def _token_end(line: str, start: int) -> int:
    """End (exclusive, code points) of the token starting at ``start`` on ``line``."""
    if start >= len(line):
        return len(line)
    if line[start] in "\"'":
        close = line.find(line[start], start + 1)
        return close + 1 if close > 0 else len(line)
    m = re.compile(r"[^\s,:\]\}\[\{#]+").match(line, start)
    return m.end() if m and m.end() > start else min(start + 1, len(line))


def lsp_diagnostic(diag: Diagnostic, lines: list[str]) -> T.Diagnostic:
    """A specc Diagnostic as an LSP one (0-based, code points; the server converts units)."""
    line = max(0, diag.line - 1)
    text = lines[line] if line < len(lines) else ""
    col = min(max(0, diag.column - 1), len(text))
    end = _token_end(text, col)
    message = f"{diag.layer}: {diag.message}" if diag.layer else diag.message
    if diag.hint:
        message += f"\nhint: {diag.hint}"
    return T.Diagnostic(
        range=T.Range(T.Position(line, col), T.Position(line, max(end, col))),
        message=message,
        severity=(
            T.DiagnosticSeverity.Error if diag.severity == "error" else T.DiagnosticSeverity.Warning
        ),
        code=diag.code,
        source="specc",
    )


# --------------------------------------------------------------------------- positions


def _layer_spans(doc: Document) -> list[tuple[int, tuple[int, int], int]]:
    """(layer index, (start line, start col), last line), 1-based, for each spec layer."""
    src = doc.source
    if (
        src is None
        or not isinstance(src.data, dict)
        or not isinstance(src.data.get("layers"), list)
    ):
        return []
    last: dict[int, int] = {}
    for table in (src.values, src.keys):
        for path, (line, _) in table.items():
            if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int):
                last[path[1]] = max(last.get(path[1], 0), line)
    spans = []
    for index in range(len(src.data["layers"])):
        start = src.values.get(("layers", index))
        if start is None:
            continue
        line, col = start
        prefix = doc.lines[line - 1][: col - 1] if line - 1 < len(doc.lines) else ""
        if prefix.strip() in ("", "-"):
            col = 1  # the '- ' of a block sequence item belongs to the layer
        spans.append((index, (line, col), last.get(index, line)))
    return spans


def layer_at(doc: Document, line: int, col: int) -> int | None:
    """Index of the spec layer at 1-based (line, col), or None."""
    best = None
    for index, start, last in _layer_spans(doc):
        if start <= (line, col) and line <= last:
            best = index  # later starts win (several flow-style layers on one line)
    return best


def _reference_at(doc: Document, line: int, col: int) -> str | None:
    """The name under (line, col) when it is an entry of a layer's ``inputs`` or of
    ``outputs`` (or a plain ``inputs: name`` / ``outputs: name``)."""
    src = doc.source
    if src is None:
        return None
    for path, (vline, vcol) in src.values.items():
        if vline != line:
            continue
        in_layer = len(path) in (3, 4) and path[0] == "layers" and path[2:3] == ("inputs",)
        in_outputs = len(path) in (1, 2) and path[0] == "outputs"
        if not (in_layer or in_outputs):
            continue
        value = _value_at(src.data, path)
        if not isinstance(value, str):
            continue
        end = _token_end(doc.lines[line - 1], vcol - 1) + 1
        if vcol <= col < end or (col == end and end > vcol):
            return value
    return None


def _value_at(data, path):
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def definition_of(doc: Document, name: str) -> tuple[int, int, int] | None:
    """(line, col, length), 1-based, of where ``name`` is defined: the layer's ``name:`` value
    (or the start of its entry when it has a default name), or the model input's name."""
    src = doc.source
    if src is None or not isinstance(src.data, dict):
        return None

    def at_name(path: tuple) -> tuple[int, int, int]:
        line, col = src.values.get(path, src.locate(path[:-1]))
        text = doc.lines[line - 1] if line - 1 < len(doc.lines) else ""
        if text[col - 1 : col] in ("'", '"'):
            col += 1  # inside the quotes of a JSON or quoted YAML string
        return line, col, len(name)

    inputs = src.data.get("inputs")
    for i, entry in enumerate(inputs if isinstance(inputs, list) else []):
        if isinstance(entry, dict) and entry.get("name") == name:
            return at_name(("inputs", i, "name"))
    layers = src.data.get("layers")
    if not isinstance(layers, list):
        return None
    for i, entry in enumerate(layers):
        if isinstance(entry, dict) and entry.get("name") == name:
            return at_name(("layers", i, "name"))
    if doc.model is not None:  # a Keras default name (conv2d_1): the layer's entry
        for layer in doc.model.layers:
            if layer.name == name:
                line, col = src.locate(("layers", layer.index))
                return line, col, 1
    return None


# --------------------------------------------------------------------------- hover


def _product(shape) -> str:
    return "×".join(str(d) for d in shape) if len(shape) > 1 else str(shape[0])


def layer_markdown(doc: Document, layer: LayerIR) -> str:
    model = doc.model
    assert model is not None
    inputs = ", ".join(f"`{name}` `{shape_text(model.shape_of(name))}`" for name in layer.inputs)
    lines = [
        f"**{layer.name}** · `{layer.type}`",
        "",
        f"- input: {inputs}",
        f"- output: `{shape_text(layer.output_shape)}`",
        f"- params: **{layer.params:,}** (trainable {layer.trainable_params:,}, "
        f"non-trainable {layer.non_trainable_params:,})",
        f"- MACs: **{layer.macs:,}** per sample",
    ]
    weights = doc.weight_layout().get(layer.name, [])
    if weights:
        lines += ["", "Parameters:", ""]
        for param, shape, kind in weights:
            n = 1
            for d in shape:
                n *= d
            frozen = "" if kind == "trainable" else " (non-trainable)"
            lines.append(f"- `{param}` {shape}: {_product(shape)} = {n:,}{frozen}")
        total = sum(_count(shape) for _, shape, _ in weights)
        if len(weights) > 1:
            lines.append(
                f"- total: {' + '.join(f'{_count(s):,}' for _, s, _ in weights)} = {total:,}"
            )
    if layer.macs and layer.activations and layer.macs % layer.activations == 0:
        per = layer.macs // layer.activations
        lines += [
            "",
            f"MACs: {layer.activations:,} output values ({_product(layer.output_shape)}) "
            f"× {per:,} multiply-adds each = {layer.macs:,}",
        ]
    return "\n".join(lines)


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _type_doc(layer_type: str) -> str | None:
    from .layers import LAYER_TYPES

    cls = LAYER_TYPES.get(layer_type)
    if cls is None:
        return None
    doc = (cls.__doc__ or "").strip().splitlines()
    fields = [n for n in cls.model_fields if n not in ("type", "name", "inputs")]
    text = f"**{layer_type}**: {doc[0] if doc else ''}"
    if fields:
        text += "\n\nfields: " + ", ".join(f"`{n}`" for n in fields)
    return text


def hover_markdown(doc: Document, line: int, col: int) -> str | None:
    """Markdown for a hover at 1-based (line, col), or None."""
    model = doc.model
    ref = _reference_at(doc, line, col)
    if ref is not None and model is not None:
        for tensor in model.inputs:
            if tensor.name == ref:
                return f"**{ref}** · model input\n\n- shape: `{shape_text(tensor.shape)}`"
        for layer in model.layers:
            if layer.name == ref:
                return layer_markdown(doc, layer)
    index = layer_at(doc, line, col)
    if index is not None:
        if model is not None:
            for layer in model.layers:
                if layer.index == index:
                    return layer_markdown(doc, layer)
        data = doc.source.data["layers"][index]
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            text = _type_doc(data["type"])
            if text:
                return text + "\n\n_(shapes appear once the spec validates)_"
        return None
    src = doc.source
    if model is not None and src is not None:
        for i, tensor in enumerate(model.inputs):
            start = src.values.get(("inputs", i))
            if start and start[0] <= line <= max(
                p[0] for path, p in src.values.items() if path[:2] == ("inputs", i)
            ):
                return f"**{tensor.name}** · model input\n\n- shape: `{shape_text(tensor.shape)}`"
    return None


# --------------------------------------------------------------------------- completion


def _literal_values(annotation) -> list[str]:
    """The allowed values of a Literal field (also inside Optional / Annotated)."""
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    values: list[str] = []
    for arg in typing.get_args(annotation):
        values += _literal_values(arg)
    if annotation is bool:
        return ["true", "false"]
    return values


def _union_types(annotation) -> dict[str, type]:
    """{type literal: model class} of a discriminated union field (optimizer, schedule)."""
    found: dict[str, type] = {}
    for arg in typing.get_args(annotation) or (annotation,):
        fields = getattr(arg, "model_fields", None)
        if fields and "type" in fields:
            for value in typing.get_args(fields["type"].annotation):
                found[str(value)] = arg
        elif typing.get_args(arg):
            found.update(_union_types(arg))
    return found


def _top_section(lines: list[str], line: int) -> str | None:
    """The top-level key whose block holds 0-based ``line``."""
    for i in range(line, -1, -1):
        m = re.match(r"([A-Za-z_]\w*)\s*:", lines[i]) if i < len(lines) else None
        if m:
            return m.group(1)
    return None


def _current_layer_type(lines: list[str], line: int, before: str) -> str | None:
    """The ``type:`` of the layer item being edited: in the flow mapping around the cursor,
    else anywhere in the block sequence item that holds the cursor's line."""
    type_re = re.compile(r"\btype:\s*([A-Za-z0-9_]+)")
    brace = before.rfind("{")
    if brace >= 0:
        m = type_re.search(lines[line][brace:] if line < len(lines) else before[brace:])
        return m.group(1) if m else None
    start = line
    while start > 0 and not re.match(r"\s*-\s", lines[start]):
        if re.match(r"[A-Za-z_]", lines[start]):  # left the layers block
            return None
        start -= 1
    end = line + 1
    while end < len(lines) and not re.match(r"\s*-\s|[A-Za-z_]", lines[end]):
        end += 1
    for text in lines[start:end]:
        m = type_re.search(text)
        if m:
            return m.group(1)
    return None


def _enclosing_key(lines: list[str], line: int, before: str) -> str | None:
    """The key of the mapping that holds the cursor inside ``training:``."""
    m = re.search(r"(\w+):\s*\{[^}]*$", before)
    if m:
        return m.group(1)
    indent = len(before) - len(before.lstrip())
    for i in range(line - 1, -1, -1):
        text = lines[i]
        if not text.strip():
            continue
        own = len(text) - len(text.lstrip())
        if own < indent:
            km = re.match(r"\s*(\w+):\s*$", text)
            return km.group(1) if km else None
    return None


def _item(label: str, kind: T.CompletionItemKind, doc: str | None = None) -> T.CompletionItem:
    return T.CompletionItem(
        label=label,
        kind=kind,
        documentation=T.MarkupContent(T.MarkupKind.Markdown, doc) if doc else None,
    )


def _defined_names(doc: Document | None, text_lines: list[str]) -> list[str]:
    names: list[str] = []
    if doc is not None and doc.model is not None:
        names += [t.name for t in doc.model.inputs] + [layer.name for layer in doc.model.layers]
    for text in text_lines:
        names += re.findall(r"\bname:\s*([A-Za-z][A-Za-z0-9_]*)", text)
    return list(dict.fromkeys(names))


def completions(
    lines: list[str], line: int, col: int, doc: Document | None
) -> list[T.CompletionItem]:
    """Completion items at 0-based (line, col) of ``lines``; text based, so it works while
    the document does not parse."""
    from .layers import LAYER_TYPES
    from .spec import Spec, Training

    text = lines[line] if line < len(lines) else ""
    before = text[:col]
    section = _top_section(lines, line)
    value = re.search(r"(?:^|[\s{,])(\w+):\s+([\w.\-]*)$", before) or re.search(
        r"(?:^|[\s{,])(\w+):()$", before
    )
    in_list = re.search(r"(?:^|[\s{,])(inputs|outputs):\s*\[[^\]{]*$", before)
    ref_key = in_list.group(1) if in_list else (value.group(1) if value else None)
    if (ref_key == "inputs" and section == "layers") or ref_key == "outputs":
        return [_item(n, T.CompletionItemKind.Reference) for n in _defined_names(doc, lines)]
    if value:
        key = value.group(1)
        if key == "type" and section == "layers":
            return [
                _item(name, T.CompletionItemKind.Class, _type_doc(name))
                for name in sorted(LAYER_TYPES)
            ]
        if section == "layers":
            layer_type = _current_layer_type(lines, line, before)
            cls = LAYER_TYPES.get(layer_type or "")
            if cls is not None and key in cls.model_fields:
                return [
                    _item(v, T.CompletionItemKind.EnumMember)
                    for v in _literal_values(cls.model_fields[key].annotation)
                ]
            return []
        if section == "training":
            parent = _enclosing_key(lines, line, before)
            training = Training.model_fields
            if key == "type" and parent in training:
                return [
                    _item(v, T.CompletionItemKind.EnumMember)
                    for v in _union_types(training[parent].annotation)
                ]
            if key in training:
                return [
                    _item(v, T.CompletionItemKind.EnumMember)
                    for v in _literal_values(training[key].annotation)
                ]
        return []
    key_position = re.fullmatch(r"\s*(?:-\s+)?\w*", before) or re.search(r"[{,]\s*\w*$", before)
    if not key_position:
        return []
    if not before.startswith((" ", "\t", "-")) and "{" not in before:
        return [_item(n, T.CompletionItemKind.Property) for n in Spec.model_fields]
    if section == "layers":
        cls = LAYER_TYPES.get(_current_layer_type(lines, line, before) or "")
        if cls is None:
            return [_item("type", T.CompletionItemKind.Property)]
        return [
            _item(n, T.CompletionItemKind.Property, cls.model_fields[n].description)
            for n in cls.model_fields
        ]
    if section == "training":
        return [_item(n, T.CompletionItemKind.Property) for n in Training.model_fields]
    return []


# --------------------------------------------------------------------------- hints


def inlay_hints(doc: Document) -> list[tuple[int, int, str]]:
    """(0-based line, col, label): after each layer's first line, its output shape and params."""
    model = doc.model
    src = doc.source
    if model is None or src is None:
        return []
    by_line: dict[int, list[str]] = {}
    for layer in model.layers:
        start = src.values.get(("layers", layer.index))
        if start is None:
            continue
        by_line.setdefault(start[0] - 1, []).append(
            f"{layer.name}: {shape_text(layer.output_shape)}, {layer.params:,} params"
            if len(by_line.get(start[0] - 1, [])) or _several_on_line(src, start[0])
            else f"→ {shape_text(layer.output_shape)} · {layer.params:,} params"
        )
    hints = []
    for line, labels in sorted(by_line.items()):
        end = len(doc.lines[line].rstrip()) if line < len(doc.lines) else 0
        hints.append((line, end, "  ".join(labels)))
    return hints


def _several_on_line(src: Source, line: int) -> bool:
    return (
        sum(
            1
            for path, pos in src.values.items()
            if len(path) == 2 and path[0] == "layers" and pos[0] == line
        )
        > 1
    )


def totals_lens(doc: Document) -> tuple[int, str] | None:
    """(0-based line of ``layers:``, title with the model totals)."""
    model = doc.model
    src = doc.source
    if model is None or src is None or ("layers",) not in src.keys:
        return None
    title = (
        f"{len(model.layers)} layers · {model.total_params:,} params "
        f"({model.trainable_params:,} trainable) · {model.macs:,} MACs"
    )
    return src.keys[("layers",)][0] - 1, title


# --------------------------------------------------------------------------- server


class SpecServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("specc", __version__)
        self.docs: dict[str, Document] = {}

    def refresh(self, uri: str) -> Document:
        text_doc = self.workspace.get_text_document(uri)
        doc = analyze(uri, text_doc.source, text_doc.path or uri)
        self.docs[uri] = doc
        lines = list(text_doc.lines) or [""]
        codec = text_doc.position_codec
        diags = []
        if doc.is_spec:
            for diag in doc.result.diagnostics:
                d = lsp_diagnostic(diag, doc.lines)
                d.range = codec.range_to_client_units(lines, d.range)
                diags.append(d)
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=text_doc.version)
        )
        return doc

    def get(self, uri: str) -> Document:
        doc = self.docs.get(uri)
        text_doc = self.workspace.get_text_document(uri)
        if doc is None or doc.text != text_doc.source:
            doc = self.refresh(uri)
        return doc

    def server_position(self, uri: str, position: T.Position) -> tuple[int, int]:
        """0-based (line, code-point column) of a client position."""
        text_doc = self.workspace.get_text_document(uri)
        pos = text_doc.position_codec.position_from_client_units(
            list(text_doc.lines) or [""], position
        )
        return pos.line, pos.character

    def client_range(self, uri: str, rng: T.Range) -> T.Range:
        text_doc = self.workspace.get_text_document(uri)
        return text_doc.position_codec.range_to_client_units(list(text_doc.lines) or [""], rng)


server = SpecServer()


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
def _did_open(ls: SpecServer, params: T.DidOpenTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
def _did_change(ls: SpecServer, params: T.DidChangeTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
def _did_save(ls: SpecServer, params: T.DidSaveTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def _did_close(ls: SpecServer, params: T.DidCloseTextDocumentParams) -> None:
    ls.docs.pop(params.text_document.uri, None)
    ls.text_document_publish_diagnostics(
        T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
    )


@server.feature(T.TEXT_DOCUMENT_HOVER)
def _hover(ls: SpecServer, params: T.HoverParams) -> T.Hover | None:
    uri = params.text_document.uri
    doc = ls.get(uri)
    line, col = ls.server_position(uri, params.position)
    text = hover_markdown(doc, line + 1, col + 1)
    if text is None:
        return None
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))


@server.feature(
    T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[" ", ":", "[", ","])
)
def _completion(ls: SpecServer, params: T.CompletionParams) -> T.CompletionList:
    uri = params.text_document.uri
    doc = ls.get(uri)
    line, col = ls.server_position(uri, params.position)
    items = completions(doc.lines or [""], line, col, doc)
    return T.CompletionList(is_incomplete=False, items=items)


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def _definition(ls: SpecServer, params: T.DefinitionParams) -> T.Location | None:
    uri = params.text_document.uri
    doc = ls.get(uri)
    line, col = ls.server_position(uri, params.position)
    name = _reference_at(doc, line + 1, col + 1)
    if name is None:
        return None
    target = definition_of(doc, name)
    if target is None:
        return None
    tline, tcol, length = target
    rng = T.Range(T.Position(tline - 1, tcol - 1), T.Position(tline - 1, tcol - 1 + length))
    return T.Location(uri=uri, range=ls.client_range(uri, rng))


@server.feature(T.TEXT_DOCUMENT_INLAY_HINT)
def _inlay_hints(ls: SpecServer, params: T.InlayHintParams) -> list[T.InlayHint]:
    uri = params.text_document.uri
    doc = ls.get(uri)
    first, last = params.range.start.line, params.range.end.line
    hints = []
    for line, col, label in inlay_hints(doc):
        if first <= line <= last:
            pos = ls.client_range(uri, T.Range(T.Position(line, col), T.Position(line, col))).start
            hints.append(
                T.InlayHint(position=pos, label=label, kind=T.InlayHintKind.Type, padding_left=True)
            )
    return hints


@server.feature(T.TEXT_DOCUMENT_CODE_LENS)
def _code_lens(ls: SpecServer, params: T.CodeLensParams) -> list[T.CodeLens]:
    doc = ls.get(params.text_document.uri)
    lens = totals_lens(doc)
    if lens is None:
        return []
    line, title = lens
    return [
        T.CodeLens(
            range=T.Range(T.Position(line, 0), T.Position(line, 0)),
            command=T.Command(title=title, command=""),
        )
    ]


def main() -> None:
    """Serve on stdin/stdout until the client says exit."""
    server.start_io()
