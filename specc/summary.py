"""Summaries of a ModelIR: data, a Keras-like text table, and Markdown."""

from __future__ import annotations

from .ir import ModelIR

BYTES_PER_PARAM = 4  # float32, as Keras reports weight memory


def summarize(model: ModelIR) -> dict:
    """The summary as data (the JSON of `specc summary --format json`). A spec with blocks
    also gets each layer's ``scope`` (the instances enclosing it, outermost first) and the
    ``instances`` with their block, arguments and totals: the hierarchy."""
    data = _summarize(model)
    expansion = model.expansion
    if expansion is not None:
        for entry, layer in zip(data["layers"], model.layers):
            entry["scope"] = list(expansion.scope_of(layer.index))
        data["instances"] = [
            {
                "path": list(key),
                "name": key[-1],
                "block": group["block"],
                "args": group["args"],
                "output": group["output"],
                "layers": len(group["layers"]),
                "params": sum(m.params for m in group["layers"]),
                "trainable_params": sum(m.trainable_params for m in group["layers"]),
                "non_trainable_params": sum(m.non_trainable_params for m in group["layers"]),
                "macs": sum(m.macs for m in group["layers"]),
            }
            for key, group in _instances(model).items()
        ]
    return data


def _instances(model: ModelIR) -> dict[tuple, dict]:
    """Every block instance (by its path of instance names), in model order."""
    expansion = model.expansion
    groups: dict[tuple, dict] = {}
    for layer in model.layers:
        frames = expansion.frames[layer.index]
        for level in range(1, len(frames) + 1):
            key = tuple(f.instance for f in frames[:level])
            if key not in groups:
                frame = frames[level - 1]
                block, output = expansion.instances.get(key, (frame.block, None))
                groups[key] = {
                    "block": block,
                    "args": dict(frame.args),
                    "output": output,
                    "layers": [],
                }
            groups[key]["layers"].append(layer)
    return groups


def _summarize(model: ModelIR) -> dict:
    return {
        "name": model.name,
        "inputs": [t.to_dict() for t in model.inputs],
        "outputs": list(model.outputs),
        "layers": [
            {
                "name": layer.name,
                "type": layer.type,
                "inputs": list(layer.inputs),
                "output_shape": [None, *layer.output_shape],
                "params": layer.params,
                "trainable_params": layer.trainable_params,
                "non_trainable_params": layer.non_trainable_params,
                "macs": layer.macs,
                "activations": layer.activations,
            }
            for layer in model.layers
        ],
        "total_params": model.total_params,
        "trainable_params": model.trainable_params,
        "non_trainable_params": model.non_trainable_params,
        "macs": model.macs,
    }


def readable_bytes(n: int) -> str:
    """Keras's format for weight memory: 407.04 KB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size < 1024 or unit == "PB":
            return f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _shape(shape) -> str:
    dims = ["None", *(str(d) for d in shape)]
    return "(" + ", ".join(dims) + ")"


def _rows(model: ModelIR, depth: int | None = None) -> tuple[list[str], list[list[str]]]:
    graph = not model.is_sequential
    header = ["Layer (type)", "Output Shape", "Param #", "MACs"] + (
        ["Connected to"] if graph else []
    )
    rows = []
    if graph:
        for tensor in model.inputs:
            rows.append([f"{tensor.name} (InputLayer)", _shape(tensor.shape), "0", "0", ""])
    if depth is not None and model.expansion is not None:
        return header, rows + _nested_rows(model, depth, graph)
    for layer in model.layers:
        row = [
            f"{layer.name} ({layer.type})",
            _shape(layer.output_shape),
            f"{layer.params:,}",
            f"{layer.macs:,}",
        ]
        if graph:
            row.append(", ".join(layer.inputs))
        rows.append(row)
    return header, rows


def _nested_rows(model: ModelIR, depth: int, graph: bool) -> list[list[str]]:
    """torchinfo's ``depth``: block instances nested deeper than ``depth`` are one row with
    their totals; an instance that is opened shows ``--`` and its contents indented below."""
    expansion = model.expansion
    groups = _instances(model)
    rows: list[list[str]] = []
    shown: set[tuple] = set()
    for layer in model.layers:
        scope = expansion.scope_of(layer.index)
        for level in range(1, len(scope) + 1):
            key = scope[:level]
            if level > depth + 1 or key in shown:
                continue
            shown.add(key)
            group = groups[key]
            members = group["layers"]
            inside = {m.name for m in members}
            outer = list(dict.fromkeys(r for m in members for r in m.inputs if r not in inside))
            output = group["output"] or members[-1].name
            collapsed = level == depth + 1
            row = [
                "  " * (level - 1) + f"{key[-1]} ({group['block']})",
                _shape(model.shape_of(output)),
                f"{sum(m.params for m in members):,}" if collapsed else "--",
                f"{sum(m.macs for m in members):,}" if collapsed else "--",
            ]
            if graph:
                row.append(", ".join(outer))
            rows.append(row)
        if len(scope) > depth:
            continue
        row = [
            "  " * len(scope) + f"{layer.name} ({layer.type})",
            _shape(layer.output_shape),
            f"{layer.params:,}",
            f"{layer.macs:,}",
        ]
        if graph:
            row.append(", ".join(layer.inputs))
        rows.append(row)
    return rows


def _totals(model: ModelIR) -> list[str]:
    def line(label: str, n: int) -> str:
        return f"{label}: {n:,} ({readable_bytes(n * BYTES_PER_PARAM)})"

    return [
        line("Total params", model.total_params),
        line("Trainable params", model.trainable_params),
        line("Non-trainable params", model.non_trainable_params),
        f"Total MACs: {model.macs:,} per sample",
    ]


def format_text(model: ModelIR, depth: int | None = None) -> str:
    """A Keras-like table: Layer (type), Output Shape, Param #, MACs (+ Connected to for graphs).
    With ``depth``, block instances nested deeper are collapsed into one row each."""
    header, rows = _rows(model, depth)
    right = {2, 3}
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def fmt(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    rule_width = sum(widths) + 2 * (len(widths) - 1)
    lines = [f'Model: "{model.name}"', "=" * rule_width, fmt(header), "=" * rule_width]
    lines += [fmt(r) for r in rows]
    lines += ["=" * rule_width, *_totals(model), "=" * rule_width]
    return "\n".join(lines) + "\n"


def format_markdown(model: ModelIR, depth: int | None = None) -> str:
    header, rows = _rows(model, depth)
    escape = str.maketrans({"|": "\\|"})
    lines = [f"### Model `{model.name}`", "", "| " + " | ".join(header) + " |"]
    align = ["---" if i not in (2, 3) else "---:" for i in range(len(header))]
    lines.append("| " + " | ".join(align) + " |")
    for row in rows:
        lines.append("| " + " | ".join(c.translate(escape) for c in row) + " |")
    lines.append("")
    lines += [f"- {t}" for t in _totals(model)]
    return "\n".join(lines) + "\n"
