"""Python source text for generated code: literals, safe strings and docstrings, identifiers,
and a small formatter that lays out expressions the way `ruff format` does (line length 100,
magic trailing commas), so that generated files pass `ruff format --check` unchanged.

Nothing from a spec reaches the output except through ``py_str``, ``docstring`` and
``identifier``: strings are escaped, names are checked against the identifier pattern.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re

from ..layers import lowering as lw

LINE_LENGTH = 100
INDENT = "    "

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

#: names the generated code uses itself, so a spec name must not shadow them
RESERVED = frozenset(
    set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(builtins))
    | {"keras", "torch", "nn", "F", "math", "np", "self", "x", "build_model", "model"}
    # ruff E741: l, O and I are ambiguous variable names
    | {"l", "O", "I"}
)

#: attributes and methods of torch.nn.Module (torch 2.x): a layer attribute must not
#: replace them. Checked against the installed torch by tests/test_codegen.py.
NN_MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu
    cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state
    get_parameter get_submodule half ipu load_state_dict modules mtia named_buffers
    named_children named_modules named_parameters parameters register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule share_memory state_dict to to_empty train
    training type xpu zero_grad reset_parameters""".split()
)


class UnsafeName(ValueError):
    pass


def check_name(name: str) -> str:
    """Spec names are validated upstream; refuse anything else here too (defence in depth)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise UnsafeName(f"not a valid specc name: {name!r}")
    return name


def identifier(
    name: str, taken: set[str], reserved: frozenset[str] = RESERVED, suffix: str = ""
) -> str:
    """A Python identifier for a spec name (plus ``_<suffix>``): the name, or ``name_`` when
    it is a keyword or a name the generated code uses; then more ``_`` until unique. Adds
    the result to ``taken``."""
    ident = check_name(name) + (f"_{suffix}" if suffix else "")
    if ident in reserved:
        ident += "_"
    while ident in taken or ident in reserved:
        ident += "_"
    taken.add(ident)
    return ident


def class_name(name: str, reserved: frozenset[str] = RESERVED) -> str:
    """CamelCase class name: mnist_cnn -> MnistCnn."""
    parts = [p for p in check_name(name).split("_") if p]
    ident = "".join(p[0].upper() + p[1:] for p in parts)
    if ident in reserved or ident in ("Tensor", "Module"):
        ident += "Model"
    return ident


# --------------------------------------------------------------------------- literals


def _escape(text: str, quote: str | None) -> str:
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + quote)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
        else:
            out.append(ch)
    return "".join(out)


def py_str(text: str) -> str:
    """A Python string literal with the quotes ruff prefers (double, unless that needs more
    escapes); every character that is not printable is escaped."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    return quote + _escape(text, quote) + quote


def py_literal(value: object) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write a non-finite number: {value}")
        return repr(value)
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, tuple):
        items = ", ".join(py_literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):  # string keys: a Keras config mapping
        return "{" + ", ".join(f"{py_str(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no literal for {type(value).__name__}")


def docstring(lines: list[str], indent: str = "") -> str:
    """A triple-quoted docstring holding arbitrary text safely.

    Backslashes are doubled, every ``"`` is escaped (so no ``\"\"\"`` can close it), and
    every character that is not printable, line breaks included, is escaped; so each
    paragraph is one physical line and the text cannot leave the string. Lines are
    stripped as ruff would. ``lines``: paragraphs; "" gives an empty line.
    """
    cleaned = []
    for line in lines:
        parts = [_escape(part.strip(), '"') for part in line.split("\n")]
        cleaned.append(" ".join(p for p in parts if p) if line.strip() else "")
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    if len(cleaned) == 1:
        return f'{indent}"""{cleaned[0]}"""'
    body = "\n".join(f"{indent}{line}" if line else "" for line in cleaned[1:])
    return f'{indent}"""{cleaned[0]}\n{body}\n{indent}"""'


def comment_text(text: str) -> str:
    """Text safe for one ``#`` comment line: line breaks and control characters escaped."""
    return _escape(text.replace("\n", " "), None).strip()


# --------------------------------------------------------------------------- expressions


_PRECEDENCE = {">": 1, "<": 1, "+": 2, "-": 2, "*": 3, "/": 3}


class Renderer:
    """Renders lowering expressions. ``inputs[i]`` is the text of ``Input(i)``; ``modules``
    maps a module suffix to its ``self.<attribute>``."""

    def __init__(self, inputs: list[str], modules: dict[str, str] | None = None):
        self.inputs = inputs
        self.modules = modules or {}

    # one line
    def flat(self, expr) -> str:
        if isinstance(expr, str):
            return expr
        if isinstance(expr, lw.Input):
            return self.inputs[expr.index]
        if isinstance(expr, lw.Module):
            return self.modules[expr.suffix]
        if isinstance(expr, lw.Lit):
            return py_literal(expr.value)
        if isinstance(expr, lw.Ref):
            return expr.text
        if isinstance(expr, lw.Attr):
            base = self.flat(expr.base)
            if isinstance(expr.base, lw.BinOp):
                base = f"({base})"
            return f"{base}.{expr.name}"
        if isinstance(expr, lw.Slice):
            parts = [":"] * expr.skip + [f"{a}:{b}" for a, b in expr.ranges]
            return f"{self.flat(expr.base)}[{', '.join(parts)}]"
        if isinstance(expr, lw.IfTraining):
            return f"{self.flat(expr.then)} if self.training else {self.flat(expr.otherwise)}"
        if isinstance(expr, lw.ListOf):
            return "[" + ", ".join(self.flat(i) for i in expr.items) + "]"
        if isinstance(expr, lw.Call):
            return f"{self.flat(expr.func)}({', '.join(self._arg_texts(expr))})"
        if isinstance(expr, lw.BinOp):
            mine = _PRECEDENCE[expr.op]
            texts = []
            for i, operand in enumerate(expr.operands):
                text = self.flat(operand)
                if isinstance(operand, lw.BinOp):
                    theirs = _PRECEDENCE[operand.op]
                    if theirs < mine or (theirs == mine and i > 0):
                        text = f"({text})"
                texts.append(text)
            return f" {expr.op} ".join(texts)
        raise TypeError(f"cannot render {expr!r}")

    def _arg_texts(self, expr: lw.Call) -> list[str]:
        return [self.flat(a) for a in expr.args] + [f"{k}={self.flat(v)}" for k, v in expr.kwargs]

    # several lines when needed
    def lines(self, expr, indent: str, prefix: str = "", suffix: str = "") -> list[str]:
        """Lay out ``<indent><prefix><expr><suffix>`` within the line length, as ruff does:
        split a call or list after its opening bracket when that head fits, else (for a
        statement) wrap the right-hand side in parentheses; exploded brackets get a magic
        trailing comma, which ruff keeps."""
        text = f"{indent}{prefix}{self.flat(expr)}{suffix}"
        if len(text) <= LINE_LENGTH:
            return [text]
        inner = indent + INDENT
        statement = prefix.endswith("= ") or prefix == "return "
        if isinstance(expr, (lw.Call, lw.ListOf)):
            opener = f"{self.flat(expr.func)}(" if isinstance(expr, lw.Call) else "["
            head = f"{indent}{prefix}{opener}"
            if len(head) <= LINE_LENGTH or not statement:
                return [
                    head,
                    *self._items(expr, inner),
                    f"{indent}{opener[-1:].translate(_CLOSE)}{suffix}",
                ]
        if statement:
            return [f"{indent}{prefix}(", *self.lines(expr, inner), f"{indent}){suffix}"]
        if isinstance(expr, lw.BinOp) and not prefix:
            body = [*self.lines(expr.operands[0], indent)]
            for operand in expr.operands[1:]:
                body += self.lines(operand, indent, f"{expr.op} ")
            body[-1] += suffix
            return body
        return [text]

    def _items(self, expr, inner: str) -> list[str]:
        if isinstance(expr, lw.ListOf):
            items = [self.lines(i, inner, "", ",") for i in expr.items]
        else:
            items = [self.lines(a, inner, "", ",") for a in expr.args]
            items += [self.lines(v, inner, f"{k}=", ",") for k, v in expr.kwargs]
        return [line for item in items for line in item]


_CLOSE = str.maketrans("([", ")]")


def call_block(
    func: str,
    kwargs: list[tuple[str, object]],
    indent: str,
    prefix: str = "",
    suffix: str = "",
    explode: bool = False,
) -> list[str]:
    """A constructor call with keyword arguments of literal values: one line when it has at
    most one argument and fits (unless ``explode``), else one argument per line (with a
    magic trailing comma, which ruff keeps)."""
    flat = Renderer([]).flat
    args = [f"{k}={flat(v) if isinstance(v, lw.Expr) else py_literal(v)}" for k, v in kwargs]
    one = f"{indent}{prefix}{func}({', '.join(args)}){suffix}"
    if not explode and len(args) <= 1 and len(one) <= LINE_LENGTH:
        return [one]
    inner = indent + INDENT
    lines = [f"{indent}{prefix}{func}("]
    for (k, v), text in zip(kwargs, args):
        if isinstance(v, lw.Expr):  # e.g. an initializer's constructor: split when too long
            lines += Renderer([]).lines(v, inner, f"{k}=", ",")
        else:
            lines.append(f"{inner}{text},")
    return [*lines, f"{indent}){suffix}"]
