"""Diagnostics: located, human-readable problems found in a spec."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a spec, located at ``file:line:column`` (1-based)."""

    message: str
    file: str = "<spec>"
    line: int = 1
    column: int = 1
    layer: str | None = None  # e.g. "layers[3] Conv2D 'c3'"
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"
    code: str = "invalid"

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        prefix = "" if self.severity == "error" else "warning: "
        subject = f"{self.layer}: " if self.layer else ""
        text = f"{where}: {prefix}{subject}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict:
        return asdict(self)


class SpecError(Exception):
    """Raised by the raising API when a spec has errors; carries every diagnostic."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelled name, or None."""
    if not isinstance(word, str):
        return None
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close_lower = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close_lower]
    return f"did you mean '{close[0]}'?" if close else None


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)
