"""The generated documentation: docs/layers.md, and the per-layer tables of docs/onnx.md,
docs/codegen.md and docs/weights.md, all from the layer declarations so they cannot drift.

``python -m specc.reference`` (``make docs``) rewrites them; ``stale_docs()`` lists the files
that differ (a test fails on them).
"""

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


# --------------------------------------------------------------------------- tables


def _lowering_rows(attribute: str, target_name: str) -> list[str]:
    from . import targets
    from .layers import LAYER_TYPES

    target = targets.get(target_name)
    rows = ["| Layer | " + target_name_title(target_name) + " |", "|---|---|"]
    for name, cls in sorted(LAYER_TYPES.items()):
        if cls.arity == 0:
            continue
        text = getattr(cls, attribute) if target.lowers(cls) else ""
        if not target.lowers(cls):
            text = f"refused: {target.refusal_reason(cls)}"
        rows.append(f"| {name} | {text or '(undocumented)'} |")
    return rows


def target_name_title(name: str) -> str:
    return {"onnx": "ONNX", "pytorch": "PyTorch code"}.get(name, name)


def weights_rows() -> list[str]:
    """The weights of every layer type that has some, from its declaration on its example."""
    from .layers import LAYER_TYPES

    rows = [
        "| Layer | Key | Keras shape | Initializer (default) | Trainable | PyTorch | ONNX |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, cls in sorted(LAYER_TYPES.items()):
        if cls.doc_example is None:
            continue
        fields, shapes = cls.doc_example
        layer = cls.model_validate({"type": name, **fields})
        for w in layer.weights(list(shapes)):
            module = f"`{w.torch_module}`." if w.torch_module else ""
            torch = f"{module}`{w.torch_attr}` ({w.transform('pytorch')})"
            rows.append(
                f"| {name} | `{w.name}` | {w.layout} | {w.initializer} | "
                f"{'yes' if w.trainable else 'no'} | {torch} | {w.transform('onnx')} |"
            )
    return rows


def activation_rows() -> list[str]:
    """The activation strings: Keras 3's formula and each target's lowering (one table)."""
    from .layers.lowering import ACTIVATIONS

    rows = [
        "## Activation strings",
        "",
        "The `activation` field of a layer, or an `Activation` layer:",
        "",
        "| Activation | Keras 3 formula | PyTorch code | ONNX |",
        "|---|---|---|---|",
    ]
    for name, act in ACTIVATIONS.items():
        rows.append(f"| `{name}` | {act.formula} | {act.torch_doc} | {act.onnx_doc} |")
    return rows


def coverage_rows() -> list[str]:
    from .targets.coverage import matrix_markdown

    return matrix_markdown().rstrip("\n").split("\n")


#: file -> generated blocks (marker name -> function giving the lines)
GENERATED = {
    "docs/onnx.md": {"onnx-layers": lambda: _lowering_rows("onnx_doc", "onnx")},
    "docs/codegen.md": {"pytorch-layers": lambda: _lowering_rows("torch_doc", "pytorch")},
    "docs/weights.md": {"weights": weights_rows},
    "docs/layers.md": {"coverage": coverage_rows, "activations": activation_rows},
}


def _fill(text: str, marker: str, lines: list[str]) -> str:
    begin = f"<!-- generated: {marker} (make docs) -->"
    end = f"<!-- end generated: {marker} -->"
    if begin not in text:
        return text.rstrip("\n") + f"\n\n{begin}\n" + "\n".join(lines) + f"\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + "\n".join(lines) + "\n" + end + tail


def rendered_docs(root) -> dict:
    """path -> the text the generated docs should have."""
    from pathlib import Path

    root = Path(root)
    out = {"docs/layers.md": layer_reference_markdown()}
    for path, blocks in GENERATED.items():
        text = out.get(path)
        if text is None:
            text = (root / path).read_text(encoding="utf-8")
        for marker, rows in blocks.items():
            text = _fill(text, marker, rows())
        out[path] = text
    return out


def stale_docs(root) -> list[str]:
    from pathlib import Path

    return [
        path
        for path, text in rendered_docs(root).items()
        if (Path(root) / path).read_text(encoding="utf-8") != text
    ]


def main() -> None:
    from pathlib import Path

    root = Path.cwd()
    for path, text in rendered_docs(root).items():
        (root / path).write_text(text, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
