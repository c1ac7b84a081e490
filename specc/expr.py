"""The expression language of block parameters: small, safe, hand-parsed (never ``eval``).

Inside a block (and in the arguments of a block instance) a string value may use parameters:

* ``$filters`` or ``$(filters * 4)`` as the whole value gives the value itself (an integer,
  a float, a string or a boolean, as the parameter is typed);
* ``$(name)_1_conv`` or ``conv2_block$(i + 1)`` anywhere inside a longer string interpolates
  (``${...}`` works too, ``$$`` is a literal dollar sign).

Expressions have integers, parameter names, parentheses, unary minus and the four operators
``+ - * /`` plus ``//`` (integer division, rounding down). ``/`` divides exactly: ``7 / 2``
is an error (use ``//``). Nothing else: no calls, attributes, comparisons or strings.
"""

from __future__ import annotations

import re

MAX_LENGTH = 200
MAX_DEPTH = 32
MAX_MAGNITUDE = 10**15

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*/()]))")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExprError(Exception):
    """A bad expression; ``offset`` is the character of the text where it went wrong."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message = message
        self.offset = offset


def _tokens(text: str) -> list[tuple[str, object, int]]:
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression is longer than {MAX_LENGTH} characters")
    out: list[tuple[str, object, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise ExprError(f"unexpected character {text[start]!r} in expression", start)
        start = m.start(m.lastindex)
        if m.group(1) is not None:
            out.append(("int", int(m.group(1)), start))
        elif m.group(2) is not None:
            out.append(("name", m.group(2), start))
        else:
            out.append(("op", m.group(3), start))
        pos = m.end()
    out.append(("end", None, len(text)))
    return out


class _Parser:
    def __init__(self, text: str, scope: dict):
        self.text = text
        self.scope = scope
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    def peek(self):
        return self.tokens[self.pos]

    def take(self):
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self):
        if self.peek()[0] == "end":
            raise ExprError("empty expression")
        value = self.sum()
        kind, tok, at = self.peek()
        if kind != "end":
            raise ExprError(f"unexpected {tok!r} in expression", at)
        return value

    def sum(self):
        value = self.product()
        while self.peek()[:2] in (("op", "+"), ("op", "-")):
            _, op, at = self.take()
            right = self.product()
            value = _arith(op, value, right, at)
        return value

    def product(self):
        value = self.unary()
        while self.peek()[:2] in (("op", "*"), ("op", "/"), ("op", "//")):
            _, op, at = self.take()
            right = self.unary()
            value = _arith(op, value, right, at)
        return value

    def unary(self):
        if self.peek()[:2] == ("op", "-"):
            _, _, at = self.take()
            return _arith("-", 0, self.unary(), at)
        return self.atom()

    def atom(self):
        kind, tok, at = self.take()
        if kind == "int":
            return _bounded(tok, at)
        if kind == "name":
            if tok not in self.scope:
                from .diagnostics import did_you_mean

                hint = did_you_mean(tok, sorted(self.scope))
                raise ExprError(f"unknown parameter '{tok}'" + (f" ({hint})" if hint else ""), at)
            return self.scope[tok]
        if (kind, tok) == ("op", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExprError("expression is nested too deeply", at)
            value = self.sum()
            kind2, tok2, at2 = self.take()
            if (kind2, tok2) != ("op", ")"):
                raise ExprError("missing ')'", at2)
            self.depth -= 1
            return value
        if kind == "end":
            raise ExprError("expression ends too early", at)
        raise ExprError(f"unexpected {tok!r} in expression", at)


def _bounded(value, at: int):
    if isinstance(value, int) and abs(value) > MAX_MAGNITUDE:
        raise ExprError(f"number too large (more than {MAX_MAGNITUDE:,})", at)
    return value


def _arith(op: str, a, b, at: int):
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ExprError(f"'{op}' needs numbers, got {type(v).__name__} {v!r}", at)
    if op == "+":
        return _bounded(a + b, at)
    if op == "-":
        return _bounded(a - b, at)
    if op == "*":
        return _bounded(a * b, at)
    if b == 0:
        raise ExprError("division by zero", at)
    if op == "//":
        if isinstance(a, float) or isinstance(b, float):
            raise ExprError("'//' needs integers", at)
        return a // b
    # '/': exact for integers
    if isinstance(a, int) and isinstance(b, int):
        if a % b:
            raise ExprError(f"{a} / {b} is not a whole number; use '//' to round down", at)
        return a // b
    return a / b


def evaluate(text: str, scope: dict):
    """The value of one expression (no ``$``) under ``scope`` (parameter name -> value)."""
    return _Parser(text, scope).parse()


def _template_parts(text: str) -> list[tuple[str, str, int]]:
    """Split a template into ('text', s, offset) and ('expr', source, offset) parts."""
    parts: list[tuple[str, str, int]] = []
    pos = 0
    buf = ""
    while pos < len(text):
        ch = text[pos]
        if ch != "$":
            buf += ch
            pos += 1
            continue
        nxt = text[pos + 1 : pos + 2]
        if nxt == "$":
            buf += "$"
            pos += 2
            continue
        if buf:
            parts.append(("text", buf, pos - len(buf)))
            buf = ""
        if nxt in ("(", "{"):
            close = ")" if nxt == "(" else "}"
            depth, end = 0, pos + 1
            while end < len(text):
                c = text[end]
                if c == nxt:
                    depth += 1
                elif c == close:
                    depth -= 1
                    if depth == 0:
                        break
                end += 1
            if end >= len(text):
                raise ExprError(f"missing '{close}' after '${nxt}'", pos)
            parts.append(("expr", text[pos + 2 : end], pos + 2))
            pos = end + 1
            continue
        m = _IDENT.match(text, pos + 1)
        if not m:
            raise ExprError(
                "'$' must be followed by a parameter name or '(expression)' ('$$' for a dollar)",
                pos,
            )
        parts.append(("expr", m.group(0), pos + 1))
        pos = m.end()
    if buf:
        parts.append(("text", buf, len(text) - len(buf)))
    return parts


def has_expression(value: object) -> bool:
    return isinstance(value, str) and "$" in value


def substitute(text: str, scope: dict):
    """A string value under ``scope``: the typed value when the whole string is one
    ``$name`` / ``$(expr)``, else the interpolated string."""
    parts = _template_parts(text)
    if len(parts) == 1 and parts[0][0] == "expr":
        return _eval_at(parts[0][1], parts[0][2], scope)
    out = []
    for kind, piece, offset in parts:
        if kind == "text":
            out.append(piece)
            continue
        value = _eval_at(piece, offset, scope)
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(str(value))
    return "".join(out)


def _eval_at(source: str, offset: int, scope: dict):
    try:
        return evaluate(source, scope)
    except ExprError as exc:
        raise ExprError(exc.message, offset + exc.offset) from None
