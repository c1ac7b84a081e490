"""`specc plot`: DOT and Mermaid text (always), SVG/PNG through Graphviz when installed."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from specc.api import load
from specc.cli import app
from specc.plot import _dot_id, _mermaid_text, mermaid_id, shape_text, to_dot, to_mermaid

from .conftest import ROOT, SPECS

runner = CliRunner()
RESIDUAL = ROOT / "specs" / "residual_block.yaml"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")


def _nodes_and_edges(model):
    nodes = {t.name: shape_text(t.shape) for t in model.inputs}
    nodes.update({layer.name: shape_text(layer.output_shape) for layer in model.layers})
    edges = {(src, layer.name) for layer in model.layers for src in layer.inputs}
    return nodes, edges


@needs_dot
def test_svg_of_residual_block_names_every_layer_and_shape(tmp_path):
    out = tmp_path / "r.svg"
    result = runner.invoke(app, ["plot", str(RESIDUAL), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}text")]
    model = load(RESIDUAL)
    nodes, edges = _nodes_and_edges(model)
    assert len(nodes) == 23  # 1 input + 22 layers
    for name in nodes:
        assert name in texts, name
    shapes = set(nodes.values())
    assert shapes == {
        "(None, 32, 32, 3)",
        "(None, 16, 16, 16)",
        "(None, 8, 8, 32)",
        "(None, 32)",
        "(None, 10)",
    }
    for shape in shapes:
        assert shape in texts, shape
    # Graphviz draws one <g class="edge"> per edge
    drawn = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "edge"]
    assert len(drawn) == len(edges) == 24  # 22 layers read an input, the two Adds a second
    # parameters, as Keras counts them: b2_conv2 is 3*3*32*32 = 9,216
    assert "9,216" in texts


@needs_dot
def test_png_is_a_png(tmp_path):
    out = tmp_path / "m.png"
    result = runner.invoke(app, ["plot", str(ROOT / "specs" / "mnist_cnn.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_graphviz_svg_exits_3_with_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "r.svg"
    result = runner.invoke(app, ["plot", str(RESIDUAL), "-o", str(out)])
    assert result.exit_code == 3
    assert "Graphviz" in result.stderr and "apt-get install graphviz" in result.stderr
    assert not out.exists()
    # DOT and Mermaid need nothing
    for suffix in (".dot", ".mmd"):
        result = runner.invoke(app, ["plot", str(RESIDUAL), "-o", str(tmp_path / f"r{suffix}")])
        assert result.exit_code == 0, result.stderr


MERMAID_NODE = re.compile(r'^    (n_\w+)(?:\[/"([^"]*)"/\]|\["([^"]*)"\])$')
MERMAID_EDGE = re.compile(r"^    (n_\w+) --> (n_\w+)$")
MERMAID_CLASS = re.compile(r"^    class (n_\w+) output$")


def parse_mermaid(text: str) -> tuple[str, dict[str, str], set[tuple[str, str]]]:
    """A structural parse of the flowchart subset specc writes; fails on any other line."""
    lines = text.splitlines()
    assert lines[0] == "---" and lines[1].startswith("title: ") and lines[2] == "---"
    header = lines[3].split()
    assert header[0] == "flowchart" and header[1] in ("TB", "TD", "LR"), lines[3]
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for line in lines[4:]:
        if m := MERMAID_NODE.match(line):
            assert m[1] not in nodes, f"node {m[1]} declared twice"
            nodes[m[1]] = m[2] if m[2] is not None else m[3]
        elif m := MERMAID_EDGE.match(line):
            assert m[1] in nodes and m[2] in nodes, f"edge to an undeclared node: {line}"
            edges.add((m[1], m[2]))
        elif m := MERMAID_CLASS.match(line):
            assert m[1] in nodes
        else:
            assert line == "    classDef output stroke-width:3px", f"unexpected line {line!r}"
    return header[1], nodes, edges


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_mermaid_parses_as_a_flowchart_of_the_model(spec):
    model = load(spec)
    direction, nodes, edges = parse_mermaid(to_mermaid(model))
    assert direction == "TB"
    want_nodes, want_edges = _nodes_and_edges(model)
    assert set(nodes) == {mermaid_id(n) for n in want_nodes}
    assert edges == {(mermaid_id(a), mermaid_id(b)) for a, b in want_edges}
    for name, shape in want_nodes.items():
        assert f"<b>{name}</b>" in nodes[mermaid_id(name)]
        assert f"Output shape: {shape}" in nodes[mermaid_id(name)]


def test_mermaid_cli_writes_file_and_markdown(tmp_path):
    result = runner.invoke(app, ["plot", str(RESIDUAL), "-o", str(tmp_path / "r.mmd")])
    assert result.exit_code == 0
    text = (tmp_path / "r.mmd").read_text()
    _, nodes, _ = parse_mermaid(text)
    assert nodes["n_stem"] == (
        "<b>stem</b> (Conv2D)<br/>Output shape: (None, 16, 16, 16)<br/>Params: 432"
        "<br/>MACs: 110,592"
    )  # 3*3*3*16 = 432 weights (no bias); 16*16*16 outputs * 27 = 110,592 MACs
    md = runner.invoke(app, ["plot", str(RESIDUAL), "-o", str(tmp_path / "r.md")])
    assert md.exit_code == 0
    assert (tmp_path / "r.md").read_text() == f"```mermaid\n{text}```\n"


def test_dot_structure_and_stdout():
    result = runner.invoke(app, ["plot", str(RESIDUAL)])
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith('digraph "residual_net" {') and text.rstrip().endswith("}")
    model = load(RESIDUAL)
    _, want_edges = _nodes_and_edges(model)
    edges = set(re.findall(r'^  "(\w+)" -> "(\w+)";$', text, re.M))
    assert edges == want_edges
    assert '"b2_add" [label=<' in text
    assert "64 (32 non-trainable)" in text  # BatchNormalization: 4*16, moving stats frozen


def test_escaping():
    assert _dot_id('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert _mermaid_text('x "y" <z> & w') == "x #quot;y#quot; #lt;z#gt; #amp; w"
    assert mermaid_id("end") == "n_end"  # 'end' alone would close a Mermaid subgraph


def test_plot_usage_errors(tmp_path):
    bad_suffix = runner.invoke(app, ["plot", str(RESIDUAL), "-o", str(tmp_path / "r.jpeg")])
    assert bad_suffix.exit_code == 2 and "--format" in bad_suffix.stderr
    png_stdout = runner.invoke(app, ["plot", str(RESIDUAL), "--format", "png"])
    assert png_stdout.exit_code == 2
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers: [{type: Dense}]\n"
    )
    invalid = runner.invoke(app, ["plot", str(spec), "-o", str(tmp_path / "m.dot")])
    assert invalid.exit_code == 1 and "units" in invalid.stderr
    assert not (tmp_path / "m.dot").exists()
    missing = runner.invoke(app, ["plot", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2


def test_lr_direction():
    model = load(RESIDUAL)
    assert 'rankdir="LR";' in to_dot(model, "LR")
    assert parse_mermaid(to_mermaid(model, "LR"))[0] == "LR"
