"""Diagnostics: located, human-readable problems found in a spec.

Every diagnostic has a registered code (``specc.diagcodes``); ``Diagnostic.at`` is the one
constructor for diagnostics located in a parsed source (file, line, column, JSON path and
the source line shown under the message).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import diagcodes as codes


def json_path(path: Iterable) -> str:
    """``("layers", 3, "filters")`` -> ``layers[3].filters``; the document itself is ``""``."""
    text = ""
    for seg in path:
        if isinstance(seg, int):
            text += f"[{seg}]"
        else:
            text += f".{seg}" if text else str(seg)
    return text


_TOKEN_END = re.compile(r"\s*(?:[,\]}#]|$)")


def _span(line: str, column: int) -> int:
    """How many characters the value starting at ``column`` (1-based) covers in ``line``."""
    start = column - 1
    if start >= len(line):
        return 1
    ch = line[start]
    if ch in "[{":
        return 1
    if ch in "\"'":
        end = line.find(ch, start + 1)
        while ch == '"' and end > 0 and line[end - 1] == "\\":
            end = line.find(ch, end + 1)
        return end - start + 1 if end > start else len(line) - start
    rest = line[start:]
    if ch == "-" and rest[1:2] == " ":  # a YAML list item
        return 1
    key = re.match(r"[^\s:,\]}#]+(?=\s*:(?:\s|$))", rest)
    if key:  # a mapping key
        return len(key.group(0))
    stop = re.search(r"\s+#|\s*[,\]}](?=[^\"']*$)|\s*$", rest)
    length = stop.start() if stop else len(rest)
    return max(1, length)


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a spec, located at ``file:line:column`` (1-based) and at ``path``
    (a JSON path such as ``layers[3].filters``; ``None`` when it concerns no value)."""

    message: str
    file: str = "<spec>"
    line: int = 1
    column: int = 1
    layer: str | None = None  # e.g. "layers[3] Conv2D 'c3'"
    hint: str | None = None
    severity: str | None = None  # "error" | "warning"; default: the code's severity
    code: str = codes.INVALID
    path: str | None = None
    # the source line the diagnostic points into, and how many characters the caret covers
    excerpt: str | None = field(default=None, repr=False, compare=False)
    span: int = field(default=1, repr=False, compare=False)
    # False for data without text positions (check_data): the path locates it
    positioned: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        code = codes.lookup(self.code)  # an unregistered code is a bug: fail loudly
        object.__setattr__(self, "code", code)
        if self.severity is None:
            object.__setattr__(self, "severity", code.severity)
        elif self.severity not in (codes.ERROR, codes.WARNING):
            raise ValueError(f"severity must be 'error' or 'warning', not {self.severity!r}")

    @classmethod
    def at(
        cls,
        source,
        path: Iterable,
        code: codes.Code,
        message: str,
        *,
        layer: str | None = None,
        hint: str | None = None,
        severity: str | None = None,
        prefer_key: bool = False,
    ) -> Diagnostic:
        """The located diagnostic for the value at ``path`` of a parsed ``source``
        (``specc.source.Source``): its line and column, JSON path and source line."""
        path = tuple(path)
        line, column = source.locate(path, prefer_key=prefer_key)
        return cls.from_position(
            source,
            line,
            column,
            code,
            message,
            path=json_path(path),
            layer=layer,
            hint=hint,
            severity=severity,
        )

    @classmethod
    def from_position(
        cls,
        source,
        line: int,
        column: int,
        code: codes.Code,
        message: str,
        *,
        path: str | None = None,
        layer: str | None = None,
        hint: str | None = None,
        severity: str | None = None,
    ) -> Diagnostic:
        """A diagnostic at ``line:column`` of ``source`` (anything with ``file`` and ``text``)."""
        text = getattr(source, "text", None) or ""
        span = 1
        if hasattr(source, "line_text"):
            excerpt = source.line_text(line)
        else:
            lines = text.split("\n")
            excerpt = lines[line - 1].rstrip("\r") if text and 1 <= line <= len(lines) else None
        if excerpt is not None and excerpt.strip():
            span = _span(excerpt, column)
        else:
            excerpt = None
        positioned = bool(text) or bool(getattr(source, "values", None))
        return cls(
            message,
            positioned=positioned,
            file=getattr(source, "file", "<spec>"),
            line=line,
            column=column,
            layer=layer,
            hint=hint,
            severity=severity,
            code=code,
            path=path,
            excerpt=excerpt,
            span=span,
        )

    def format(self, excerpt: bool = True) -> str:
        """``file:line:col: error: subject: message``, then the source line with a caret
        under the value (when known) and the hint."""
        where = f"{self.file}:{self.line}:{self.column}"
        if not self.positioned and self.path is not None:  # Python data: its JSON path
            where = f"{self.file}:{self.path}" if self.path else self.file
        subject = f"{self.layer}: " if self.layer else ""
        # a message's further lines (a block's instantiation chain) follow the source line
        headline, newline, context = self.message.partition("\n")
        text = f"{where}: {self.severity}: {subject}{headline}"
        if excerpt and self.excerpt is not None:
            number = f"{self.line:>4}"
            pad = " " * len(number)
            shown = self.excerpt.expandtabs(1)
            if len(shown) > 120:  # a minified JSON line: show the part around the column
                start = max(0, self.column - 60)
                shown = ("..." if start else "") + shown[start : start + 120]
                offset = self.column - 1 - start + (3 if start else 0)
            else:
                offset = self.column - 1
            text += f"\n{number} | {shown}\n{pad} | {' ' * offset}{'^' * max(1, self.span)}"
        text += newline + context
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict:
        return {
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "layer": self.layer,
            "hint": self.hint,
            "severity": self.severity,
            "code": str(self.code),
            "path": self.path,
        }


class SpecError(Exception):
    """Raised by the raising API when a spec has errors; carries every diagnostic."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def closest(word: object, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely misspells (case-insensitive first), or None."""
    if not isinstance(word, str):
        return None
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close_lower = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close_lower]
    return close[0] if close else None


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelled name, or None."""
    match = closest(word, choices)
    return f"did you mean '{match}'?" if match else None


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)
