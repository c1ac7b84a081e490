"""Which (layer type, target) pairs lower, which refuse (and why), and which lack a decision.

Every registered layer type must, for every target, either have a lowering (its
``<target>.lowering_method`` overridden) or declare why not in ``refusals``; the coverage
test (tests/test_coverage.py) fails otherwise and prints what to add.
"""

from __future__ import annotations

from ..layers.base import Layer


def decision(layer_type: type[Layer], target) -> str | None:
    """'lowers', 'refuses: <reason>', or None when the layer made no decision."""
    if target.lowers(layer_type):
        return "lowers"
    reason = target.refusal_reason(layer_type)
    return f"refuses: {reason}" if reason else None


def missing_decisions(layer_types: dict[str, type[Layer]] | None = None) -> list[str]:
    """One message per (layer, target) pair without a decision, saying what to add."""
    from . import all_targets

    if layer_types is None:
        from ..layers import LAYER_TYPES as layer_types
    problems = []
    for name, cls in sorted(layer_types.items()):
        if cls.arity == 0:  # Input: becomes a model input, nothing to lower
            continue
        for target in all_targets():
            if decision(cls, target) is None:
                problems.append(
                    f"{name} has no decision for target '{target.name}': define "
                    f"{cls.__name__}.{target.lowering_method}() in {cls.__module__}, or declare "
                    f"refusals = {{'{target.name}': '<why it cannot be expressed exactly>'}}"
                )
    return problems


def matrix_markdown() -> str:
    """The coverage matrix as a Markdown table (docs/layers.md)."""
    from ..layers import LAYER_TYPES
    from . import all_targets

    targets = all_targets()
    lines = [
        "| Layer | " + " | ".join(t.name for t in targets) + " |",
        "|---|" + "---|" * len(targets),
    ]
    for name, cls in sorted(LAYER_TYPES.items()):
        if cls.arity == 0:
            continue
        cells = []
        for target in targets:
            verdict = decision(cls, target) or "**missing**"
            cells.append("yes" if verdict == "lowers" else verdict.replace("refuses: ", "no: "))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
