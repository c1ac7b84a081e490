"""Write a spec (plain data) as YAML the way a person writes one: top-level keys in the
usual order, one flow-style line per layer when it fits, block style otherwise."""

from __future__ import annotations

import json
import re

LINE = 100
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}
ORDER = ("version", "name", "description", "inputs", "blocks", "layers", "outputs", "training")


def scalar(value) -> str:
    """One YAML scalar (also valid in flow collections)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}.get(text, text)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text)  # a JSON string is a valid double-quoted YAML scalar


def flow(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def _block(value, indent: str) -> list[str]:
    """Block-style lines for a mapping or list value (nested values in flow style when short)."""
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            text = f"{indent}{scalar(key)}: {flow(item)}"
            if len(text) <= LINE or not isinstance(item, (dict, list, tuple)) or not item:
                lines.append(text)
            else:
                lines.append(f"{indent}{scalar(key)}:")
                lines += _block(item, indent + "  ")
        return lines
    for item in value:
        text = f"{indent}- {flow(item)}"
        if len(text) <= LINE or not isinstance(item, dict):
            lines.append(text)
            continue
        inner = _block(item, indent + "  ")
        lines.append(f"{indent}- " + inner[0].lstrip())
        lines += inner[1:]
    return lines


def spec_yaml(spec: dict) -> str:
    keys = [k for k in ORDER if k in spec] + [k for k in spec if k not in ORDER]
    lines: list[str] = []
    for key in keys:
        value = spec[key]
        if isinstance(value, (dict, list)) and value:
            lines.append(f"{key}:")
            lines += _block(value, "  ")
        else:
            lines.append(f"{key}: {flow(value)}")
    return "\n".join(lines) + "\n"
