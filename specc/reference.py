"""The layer reference (docs/layers.md), generated from the registry so it cannot drift."""

from __future__ import annotations

import typing


def _values_text(annotation) -> str:
    """Allowed values of a Literal field (also inside Optional), else the kind of value."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return ", ".join(f"`{a}`" for a in typing.get_args(annotation))
    if len(args) == 1 and typing.get_origin(args[0]) is typing.Literal:
        return ", ".join(f"`{a}`" for a in typing.get_args(args[0])) + " or null"
    text = str(annotation)
    if "tuple[" in text:
        return "integer or list of integers"
    if "float" in text:
        return "number"
    if "bool" in text:
        return "true / false"
    if "int" in text:
        return "integer"
    return ""


def _default_text(field) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, tuple):
        value = list(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def layer_reference_markdown() -> str:
    from .layers import LAYER_TYPES

    lines = [
        "# Layer reference",
        "",
        "Generated from specc's layer registry (`make docs`); every layer also accepts `name`",
        "and `inputs`. Names and defaults are Keras's. Integers given for a window size, stride",
        "or dilation apply to every spatial axis (`kernel_size: 3` means 3x3).",
        "",
    ]
    for type_name, cls in sorted(LAYER_TYPES.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines += [f"## {type_name}", "", doc, ""]
        fields = [
            (n, f) for n, f in cls.model_fields.items() if n not in ("type", "name", "inputs")
        ]
        fields.sort(key=lambda item: not item[1].is_required())  # required first, stable
        if not fields:
            lines += ["No parameters.", ""]
            continue
        lines += ["| field | default | values |", "| --- | --- | --- |"]
        for name, field in fields:
            lines.append(
                f"| `{name}` | {_default_text(field)} | {_values_text(field.annotation)} |"
            )
        lines.append("")
    return "\n".join(lines)
