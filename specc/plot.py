"""Pictures of a model, as Keras's ``plot_model(show_shapes=True, show_layer_names=True)``
draws them: one box per layer with its name, type, output shape and parameters.

DOT (Graphviz) and Mermaid are written here as text, with every label escaped for its
language; SVG and PNG are rendered from the DOT by Graphviz's ``dot`` program when it is
installed (``specc plot`` exits 3 with how to install it when it is not).
"""

from __future__ import annotations

import html
import shutil
import subprocess

from .ir import LayerIR, ModelIR

FORMATS = ("dot", "mermaid", "svg", "png")
SUFFIXES = {
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "markdown",
    ".svg": "svg",
    ".png": "png",
}
INSTALL_GRAPHVIZ = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz), or write .dot or .mmd, which need nothing"
)


class PlotError(Exception):
    """Rendering is impossible here (Graphviz missing or failing): exit code 3."""


def shape_text(shape) -> str:
    return "(" + ", ".join(["None", *(str(d) for d in shape)]) + ")"


def _params_text(layer: LayerIR) -> str:
    text = f"{layer.params:,}"
    if layer.non_trainable_params:
        text += f" ({layer.non_trainable_params:,} non-trainable)"
    return text


def _rows(model: ModelIR) -> list[tuple[str, str, list[tuple[str, str]], list[str]]]:
    """(name, type, [(label, value)], input names) for every node: model inputs, then layers."""
    rows = []
    for tensor in model.inputs:
        rows.append((tensor.name, "InputLayer", [("Output shape", shape_text(tensor.shape))], []))
    for layer in model.layers:
        info = [
            ("Output shape", shape_text(layer.output_shape)),
            ("Params", _params_text(layer)),
        ]
        if layer.macs:
            info.append(("MACs", f"{layer.macs:,}"))
        rows.append((layer.name, layer.type, info, list(layer.inputs)))
    return rows


# --------------------------------------------------------------------------- DOT


def _dot_id(text: str) -> str:
    """A DOT quoted ID: backslashes and double quotes escaped, newlines as \\n."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def to_dot(model: ModelIR, rankdir: str = "TB") -> str:
    """Graphviz DOT with HTML-like table labels (the look of Keras's plot_model)."""
    outputs = set(model.outputs)
    lines = [
        f"digraph {_dot_id(model.name)} {{",
        f"  rankdir={_dot_id(rankdir)};",
        '  graph [fontname="Helvetica", nodesep="0.3", ranksep="0.4"];',
        '  node [shape="plaintext", fontname="Helvetica", fontsize="11"];',
        '  edge [fontname="Helvetica", arrowsize="0.7"];',
        f"  labelloc={_dot_id('t')};",
        f"  label=<<b>{_h(model.name)}</b>  ({model.total_params:,} params)>;",
    ]
    for name, type_, info, _ in _rows(model):
        colour = "#dbe9f6" if type_ == "InputLayer" else "#f3f3f3"
        border = " color='#1f4e79'" if name in outputs else ""
        cells = "".join(
            f"<tr><td align='left'>{_h(label)}</td><td align='left'>{_h(value)}</td></tr>"
            for label, value in info
        )
        label = (
            "<table border='1' cellborder='1' cellspacing='0' cellpadding='4'"
            f"{border}>"
            f"<tr><td colspan='2' bgcolor='{colour}'><b>{_h(name)}</b> ({_h(type_)})</td></tr>"
            f"{cells}</table>"
        )
        lines.append(f"  {_dot_id(name)} [label=<{label}>];")
    for name, _, _, inputs in _rows(model):
        for source in inputs:
            lines.append(f"  {_dot_id(source)} -> {_dot_id(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Mermaid


def _mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: its entity codes for the characters that end or
    confuse a label."""
    for ch, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(ch, code)
    return text.replace("\n", " ")


def mermaid_id(name: str) -> str:
    """A node ID that no Mermaid keyword ('end', 'graph', ...) or edge syntax can collide with."""
    return "n_" + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def to_mermaid(model: ModelIR, rankdir: str = "TB") -> str:
    """A Mermaid flowchart (renders in GitHub and GitLab Markdown)."""
    lines = [
        "---",
        f"title: {_mermaid_text(model.name)}",
        "---",
        f"flowchart {rankdir}",
    ]
    for name, type_, info, _ in _rows(model):
        parts = [f"<b>{_mermaid_text(name)}</b> ({_mermaid_text(type_)})"]
        parts += [f"{_mermaid_text(label)}: {_mermaid_text(value)}" for label, value in info]
        label = "<br/>".join(parts)
        if type_ == "InputLayer":
            lines.append(f'    {mermaid_id(name)}[/"{label}"/]')
        else:
            lines.append(f'    {mermaid_id(name)}["{label}"]')
    for name, _, _, inputs in _rows(model):
        for source in inputs:
            lines.append(f"    {mermaid_id(source)} --> {mermaid_id(name)}")
    for name in model.outputs:
        lines.append(f"    class {mermaid_id(name)} output")
    lines.append("    classDef output stroke-width:3px")
    return "\n".join(lines) + "\n"


def to_markdown(model: ModelIR, rankdir: str = "TB") -> str:
    return f"```mermaid\n{to_mermaid(model, rankdir)}```\n"


# --------------------------------------------------------------------------- Graphviz


def graphviz_available() -> bool:
    return shutil.which("dot") is not None


def render(model: ModelIR, fmt: str, rankdir: str = "TB") -> bytes:
    """SVG or PNG bytes through Graphviz's ``dot``; PlotError when it is missing or fails."""
    dot = shutil.which("dot")
    if dot is None:
        raise PlotError(
            f"writing {fmt.upper()} needs Graphviz's 'dot' program, which is not on PATH: "
            + INSTALL_GRAPHVIZ
        )
    try:
        proc = subprocess.run(
            [dot, f"-T{fmt}"],
            input=to_dot(model, rankdir).encode("utf-8"),
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PlotError(f"Graphviz 'dot' failed: {exc}") from None
    if proc.returncode != 0 or not proc.stdout:
        message = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        raise PlotError(f"Graphviz 'dot' failed: {message}")
    return proc.stdout


def plot(model: ModelIR, fmt: str, rankdir: str = "TB") -> bytes:
    """The picture in ``fmt`` ('dot', 'mermaid', 'markdown', 'svg' or 'png') as bytes."""
    if fmt == "dot":
        return to_dot(model, rankdir).encode("utf-8")
    if fmt == "mermaid":
        return to_mermaid(model, rankdir).encode("utf-8")
    if fmt == "markdown":
        return to_markdown(model, rankdir).encode("utf-8")
    if fmt in ("svg", "png"):
        return render(model, fmt, rankdir)
    raise ValueError(f"unknown plot format {fmt!r}")
