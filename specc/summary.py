"""Summaries of a ModelIR: data, a Keras-like text table, and Markdown."""

from __future__ import annotations

from .ir import ModelIR

BYTES_PER_PARAM = 4  # float32, as Keras reports weight memory


def summarize(model: ModelIR) -> dict:
    """The summary as data (the JSON of `specc summary --format json`)."""
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


def _rows(model: ModelIR) -> tuple[list[str], list[list[str]]]:
    graph = not model.is_sequential
    header = ["Layer (type)", "Output Shape", "Param #", "MACs"] + (
        ["Connected to"] if graph else []
    )
    rows = []
    if graph:
        for tensor in model.inputs:
            rows.append([f"{tensor.name} (InputLayer)", _shape(tensor.shape), "0", "0", ""])
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


def _totals(model: ModelIR) -> list[str]:
    def line(label: str, n: int) -> str:
        return f"{label}: {n:,} ({readable_bytes(n * BYTES_PER_PARAM)})"

    return [
        line("Total params", model.total_params),
        line("Trainable params", model.trainable_params),
        line("Non-trainable params", model.non_trainable_params),
        f"Total MACs: {model.macs:,} per sample",
    ]


def format_text(model: ModelIR) -> str:
    """A Keras-like table: Layer (type), Output Shape, Param #, MACs (+ Connected to for graphs)."""
    header, rows = _rows(model)
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


def format_markdown(model: ModelIR) -> str:
    header, rows = _rows(model)
    escape = str.maketrans({"|": "\\|"})
    lines = [f"### Model `{model.name}`", "", "| " + " | ".join(header) + " |"]
    align = ["---" if i not in (2, 3) else "---:" for i in range(len(header))]
    lines.append("| " + " | ".join(align) + " |")
    for row in rows:
        lines.append("| " + " | ".join(c.translate(escape) for c in row) + " |")
    lines.append("")
    lines += [f"- {t}" for t in _totals(model)]
    return "\n".join(lines) + "\n"
