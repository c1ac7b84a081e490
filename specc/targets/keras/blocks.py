"""Keras code with one function per block (``def bottleneck(x, filters, stride, name): ...``),
as a person writes keras.applications, from the block definitions of the spec.

A block's layers become statements whose arguments are the parameters' expressions
translated to Python (``$(4 * filters)`` -> ``4 * filters``, ``$(name)_1_conv`` ->
``f"{name}_1_conv"``), ``if:`` becomes ``if``/``else`` (the else passes the input through),
``repeat:`` a ``for i in range(...)`` loop. Every argument written from an expression is
checked against the validated value of every instance of that layer (the keras_args of the
expanded layers); when one cannot be expressed this way (say, an argument that is computed
from two fields), :func:`lower_blocks` returns None and the caller writes the flat model,
which is always correct.
"""

from __future__ import annotations

import keyword
import re

from ...codegen.pyformat import INDENT, LINE_LENGTH, check_name, docstring, py_literal, py_str
from ...expr import ExprError, _template_parts, _tokens, has_expression, substitute


class Unsupported(Exception):
    pass


#: ruff E741: names that read as 1 and 0
AMBIGUOUS = ("l", "O", "I")


# ------------------------------------------------------------------ expressions -> Python


def py_expr(source: str) -> str:
    out: list[str] = []
    previous = None
    for kind, tok, _ in _tokens(source):
        if kind == "end":
            break
        if kind == "op" and tok in "+-*/" or tok == "//":
            op = "//" if tok == "/" else tok
            unary = tok == "-" and (previous is None or previous[0] == "op" and previous[1] != ")")
            out.append("-" if unary else f" {op} ")
        elif kind == "op":
            out.append(tok)
        elif kind == "name":
            if keyword.iskeyword(tok):
                raise Unsupported(f"parameter '{tok}' is a Python keyword")
            out.append(tok)
        else:
            out.append(str(tok))
        previous = (kind, tok)
    return "".join(out)


def py_value(raw) -> str:
    """Python source for a spec value that may hold expressions."""
    if isinstance(raw, str) and has_expression(raw):
        parts = _template_parts(raw)
        if len(parts) == 1 and parts[0][0] == "expr":
            return py_expr(parts[0][1])
        pieces = []
        for kind, piece, _ in parts:
            if kind == "text":
                text = py_str(piece)[1:-1]
                if text.count('"') or "{" in piece or "}" in piece:
                    raise Unsupported("a name template with quotes or braces")
                pieces.append(text)
            else:
                pieces.append("{" + py_expr(piece) + "}")
        return 'f"' + "".join(pieces) + '"'
    if isinstance(raw, (list, tuple)) and _has_expr(raw):
        return "[" + ", ".join(py_value(v) for v in raw) + "]"
    return py_literal(raw)


def _has_expr(raw) -> bool:
    """Whether a value holds an expression, at any depth of lists ([[$(k // 2), 1], ...])."""
    if isinstance(raw, str):
        return has_expression(raw)
    return isinstance(raw, (list, tuple)) and any(_has_expr(v) for v in raw)


def _substitute(raw, scope):
    """``raw`` under ``scope``, through lists as the block expansion evaluates it."""
    if isinstance(raw, str) and has_expression(raw):
        return substitute(raw, scope)
    if isinstance(raw, (list, tuple)):
        return [_substitute(v, scope) for v in raw]
    return raw


def _constant(value):
    """A Keras argument's source; a config mapping (an initializer or regularizer) as its
    constructor call (an ``lw.Call``, laid out by the Renderer), as the flat model writes it."""
    from ...layers import lowering as lw
    from .codegen import _keras_value

    converted = _keras_value(value)
    if isinstance(converted, lw.Call):
        return converted
    return py_literal(value)


def _text(source) -> str:
    """One-line source of an argument (a constructor call rendered flat)."""
    from ...codegen.pyformat import Renderer

    return Renderer([]).flat(source)


def _same(a, b) -> bool:
    if isinstance(a, list):
        a = tuple(_same_form(v) for v in a)
    return _same_form(a) == _same_form(b)


def _same_form(v):
    if isinstance(v, list):
        return tuple(_same_form(x) for x in v)
    if isinstance(v, tuple):
        return tuple(_same_form(x) for x in v)
    return v


# ------------------------------------------------------------------ statements


def call_lines(
    func: str, args: list[str], indent: str, prefix: str = "", suffix: str = ""
) -> list[str]:
    one = f"{indent}{prefix}{func}({', '.join(args)}){suffix}"
    if len(one) <= LINE_LENGTH:
        return [one]
    inner = indent + INDENT
    return [f"{indent}{prefix}{func}(", *(f"{inner}{a}," for a in args), f"{indent}){suffix}"]


def _layer_stmt(cls: str, kwargs: list[tuple], operand: str, indent: str, target: str) -> list[str]:
    """``target = keras.layers.Cls(kwargs...)(operand)`` laid out as ruff formats it;
    ``kwargs``: (key, source text or a constructor call to lay out)."""
    from ...codegen.pyformat import Renderer

    render = Renderer([])
    args = ", ".join(f"{k}={render.flat(v)}" for k, v in kwargs)
    one = f"{indent}{target} = {cls}({args})({operand})"
    if len(one) <= LINE_LENGTH:
        return [one]
    head = f"{indent}{target} = {cls}("
    if len(head) > LINE_LENGTH:
        raise Unsupported("line too long")
    inner = indent + INDENT
    tail = f"{indent})({operand})"
    if len(tail) > LINE_LENGTH:
        raise Unsupported("line too long")
    body = [line for k, v in kwargs for line in render.lines(v, inner, f"{k}=", ",")]
    return [head, *body, tail]


class _Writer:
    def __init__(self, model, expansion):
        self.model = model
        self.ex = expansion
        self.by_name = {layer.name: layer for layer in model.layers}
        self.emitted: list[str] = []  # block names, in definition order
        self.functions: list[list[str]] = []
        # flat layers by the block-definition layer they came from
        self.instances: dict[tuple, list[int]] = {}
        for j, path in enumerate(expansion.paths):
            if path and path[0] == "blocks":
                self.instances.setdefault(path, []).append(j)

    def function(self, bname: str) -> None:
        if bname in self.emitted:
            return
        block = self.ex.blocks[bname]
        check_name(bname)
        params = list(block.params)
        for p in [*params, *block.inputs]:
            if keyword.iskeyword(p) or p in ("keras", "name", "i", *AMBIGUOUS):
                raise Unsupported(f"name '{p}' cannot be a Python parameter")
        # nested blocks first, so that each function is defined before its callers
        for entry in block.layers:
            if isinstance(entry, dict) and entry.get("type") in self.ex.blocks:
                self.function(entry["type"])
        taken = {*params, *block.inputs, "name", "i", "keras", *self.ex.blocks}
        local = {inp: inp for inp in block.inputs}
        previous = block.inputs[0] if len(block.inputs) == 1 else None
        body: list[str] = []
        for m, entry in enumerate(block.layers):
            path = ("blocks", bname, "layers", m)
            raw_refs = entry.get("inputs")
            if raw_refs is None:
                if previous is None:
                    raise Unsupported("no previous layer")
                refs = [previous]
            else:
                try:
                    refs = [local[r] for r in raw_refs]
                except (KeyError, TypeError):
                    raise Unsupported("a reference written differently from the name") from None
            raw_name = entry.get("name")
            if not isinstance(raw_name, str):
                raise Unsupported("an unnamed layer in a block")
            var = _var(raw_name, taken)
            cond = entry.get("if")
            indent = INDENT * (2 if cond is not None else 1)
            if entry.get("type") in self.ex.blocks:
                stmts = self._instance(entry, refs, var, indent)
            else:
                stmts = self._layer(entry, path, refs, var, indent)
            if cond is not None:
                body.append(f"{INDENT}if {_cond(cond)}:")
                body += stmts
                body += [f"{INDENT}else:", f"{INDENT * 2}{var} = {refs[0]}"]
            else:
                body += stmts
            local[raw_name] = var
            previous = var
        if block.outputs:
            try:
                out = local[block.outputs[0]]
            except KeyError:
                raise Unsupported("the output is written differently from the name") from None
        else:
            out = previous
        sig = f"def {bname}({', '.join([*block.inputs, *params, 'name'])}):"
        if len(sig) > LINE_LENGTH:
            raise Unsupported("signature too long")
        doc = block.description or f"The block '{bname}' of the spec."
        lines = [sig, docstring([doc], INDENT), *body, f"{INDENT}return {out}"]
        self.functions.append(lines)
        self.emitted.append(bname)

    def _layer(self, entry, path, refs, var, indent) -> list[str]:
        flat = [j for j in self.instances.get(path, ())]
        present = [self.by_name[self.ex_name(j)] for j in flat if self.ex_name(j) in self.by_name]
        if not present:
            raise Unsupported("a block layer that no instance keeps")
        spec = present[0].spec
        from .codegen import _call_items, _cls

        # a class the generated file defines (PositionEmbedding), as the flat code writes it
        cls = _cls(spec)
        kwargs = []
        scopes = [self.ex.scopes[j] for j in flat if self.ex_name(j) in self.by_name]
        for key, value in spec.keras_args().items():
            kwargs.append((key, self._arg(entry, key, value, present, scopes)))
        names = [layer.name for layer in present]
        name_src = py_value(entry["name"])
        for layer, scope in zip(present, scopes):
            if substitute(entry["name"], scope) != layer.name:
                raise Unsupported("name")
        kwargs.append(("name", name_src))
        del names
        # the call as the flat code writes it: MultiHeadAttention takes its tensors
        # positionally, call arguments (use_causal_mask) are written out, from the
        # block's parameters where the instances differ
        calls = [getattr(layer.spec, "keras_call_kwargs", dict)() for layer in present]
        call_src = {
            key: self._arg(entry, key, None, present, scopes, [c[key] for c in calls])
            for key in calls[0]
        }

        def operand(tensors: list[str]) -> str:
            items = _call_items(spec, tensors)
            if items is not None:
                head = items[: len(items) - len(call_src)]
                return ", ".join([*head, *(f"{k}={_text(v)}" for k, v in call_src.items())])
            return (
                tensors[0] if len(tensors) == 1 and spec.arity == 1 else f"[{', '.join(tensors)}]"
            )

        if "repeat" in entry:
            count = py_value(entry["repeat"])
            lines = [f"{indent}{var} = {refs[0]}", f"{indent}for i in range({count}):"]
            lines += _layer_stmt(cls, kwargs, operand([var]), indent + INDENT, var)
            return lines
        return _layer_stmt(cls, kwargs, operand(refs), indent, var)

    def ex_name(self, j: int) -> str:
        return self._names[j]

    def _arg(self, entry, key, value, present, scopes, values=None) -> str:
        """The source of argument ``key``: a constant, or the expression of the entry's
        field giving every instance's value (``values``: default, each one's keras_args)."""
        if values is None:
            values = [layer.spec.keras_args()[key] for layer in present]
        raw = entry.get(key)
        # the field of the same name first; else (a Keras argument derived from another
        # field, as MaxPooling2D's strides from pool_size) any field holding an expression
        candidates = [raw] if _has_expr(raw) else []
        if not candidates and not all(_same(v, values[0]) for v in values):
            candidates = [
                v
                for k, v in entry.items()
                if k != "name" and isinstance(v, str) and has_expression(v)
            ]
        for raw in candidates:
            source = py_value(raw)
            evaluated = [_substitute(raw, s) for s in scopes]
            if all(_same(v, e) for v, e in zip(values, evaluated)):
                return source
            if all(_same(v, (e, e)) for v, e in zip(values, evaluated)):
                return f"({source}, {source})"
            if all(_same(v, (e,)) for v, e in zip(values, evaluated)):
                return f"({source},)"  # Conv1D's kernel_size, strides, dilation_rate
            if all(
                isinstance(e, int) and not isinstance(e, bool) and _same(v, float(e))
                for v, e in zip(values, evaluated)
            ):
                return f"float({source})"
        if all(_same(v, values[0]) for v in values):
            return _constant(values[0])
        raise Unsupported(f"argument '{key}' cannot be written from the block's parameters")

    def _instance(self, entry, refs, var, indent) -> list[str]:
        bname = entry["type"]
        block = self.ex.blocks[bname]
        args = []
        first = entry.get("first") or {}
        at = {int(k): v for k, v in (entry.get("at") or {}).items()}
        if 0 in at:
            at[0] = {**first, **at[0]}
        elif first:
            at[0] = first
        for pname, param in block.params.items():
            if pname in entry:
                regular = py_value(entry[pname])
            elif param.has_default:
                regular = py_literal(param.default)
            else:
                regular = None
            value = regular
            for index in sorted(at, reverse=True):
                if pname in at[index]:
                    value = f"{py_value(at[index][pname])} if i == {index} else {value}"
            if value is None:
                raise Unsupported("a parameter without value")
            args.append(f"{pname}={value}")
        args.append(f"name={py_value(entry['name'])}")
        operands = ", ".join(refs) if "repeat" not in entry else var
        if "repeat" in entry:
            lines = [
                f"{indent}{var} = {refs[0]}",
                f"{indent}for i in range({py_value(entry['repeat'])}):",
            ]
            return lines + call_lines(bname, [operands, *args], indent + INDENT, f"{var} = ")
        return call_lines(bname, [operands, *args], indent, f"{var} = ")


def _cond(raw) -> str:
    if isinstance(raw, bool):
        return repr(raw)
    return py_value(raw)


def _var(raw_name: str, taken: set[str]) -> str:
    text = re.sub(r"\$\(name\)|\$\{name\}|\$name\b", "", raw_name)
    text = re.sub(r"\$\(([^)]*)\)|\$\{([^}]*)\}|\$[A-Za-z_][A-Za-z0-9_]*", "", text)
    text = re.sub(r"[^A-Za-z0-9_]+|__+", "_", text).strip("_").lower() or "out"
    if text[0].isdigit():
        text = "x" + text
    ident = text
    while ident in taken or keyword.iskeyword(ident) or ident in AMBIGUOUS:
        ident += "_"
    taken.add(ident)
    return ident


def lower_blocks(model, layer_stmt) -> tuple[list[str], list[str]] | None:
    """(function definitions, build_model body) or None when the flat model must be written.
    ``layer_stmt(calls)`` writes build_model's body given the top-level instances."""
    ex = model.expansion
    if ex is None or not ex.calls:
        return None
    writer = _Writer(model, ex)
    writer._names = list(ex.names)
    try:
        top_calls = [c for c in ex.calls if len(c.path) == 1]
        for call in top_calls:
            writer.function(call.block)
        body = layer_stmt(top_calls)
    except (Unsupported, KeyError, IndexError, TypeError, ValueError, ExprError):
        # anything the function form cannot say: the flat model, which is always exact
        return None
    lines: list[str] = []
    for function in writer.functions:
        lines += ["", "", *function]
    return lines, body
