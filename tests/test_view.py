"""`specc view` (and `specc lsp`): argument handling and the missing-package paths.
Netron is replaced by a recording stand-in: no server is started and no browser opened."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest
from typer.testing import CliRunner

from specc.cli import app

from .conftest import ROOT

runner = CliRunner()
SPEC = ROOT / "specs" / "mnist_cnn.yaml"


@pytest.fixture
def fake_netron(monkeypatch):
    calls = []
    module = types.ModuleType("netron")
    module.__spec__ = importlib.machinery.ModuleSpec("netron", None)

    def serve(file, data=None, address=None, browse=False):
        calls.append(("serve", file, bytes(data), address, browse))
        return ("localhost", address or 8080)

    module.serve = serve
    module.wait = lambda: calls.append(("wait",))
    monkeypatch.setitem(sys.modules, "netron", module)
    return calls


def _without(monkeypatch, missing: str):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == missing else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_netron_exits_3_with_the_install_command(monkeypatch):
    _without(monkeypatch, "netron")
    result = runner.invoke(app, ["view", str(SPEC)])
    assert result.exit_code == 3
    assert "pip install 'specc[view]'" in result.stderr


def test_missing_onnx_exits_3(monkeypatch, fake_netron):
    _without(monkeypatch, "onnx")
    result = runner.invoke(app, ["view", str(SPEC)])
    assert result.exit_code == 3
    assert "pip install 'specc[onnx]'" in result.stderr
    assert fake_netron == []


def test_spec_is_compiled_and_served(fake_netron):
    onnx = pytest.importorskip("onnx")
    result = runner.invoke(app, ["view", str(SPEC), "--port", "8123", "--no-browse"])
    assert result.exit_code == 0, result.stderr
    (_, name, data, address, browse), wait = fake_netron
    assert wait == ("wait",)
    assert (name, address, browse) == ("mnist_cnn.onnx", 8123, False)
    graph = onnx.load_from_string(data).graph
    assert [i.name for i in graph.input] == ["image"]
    assert "localhost:8123" in result.stderr


def test_onnx_file_is_served_as_is(tmp_path, fake_netron):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07not-checked-here")
    result = runner.invoke(app, ["view", str(model)])
    assert result.exit_code == 0, result.stderr
    (_, name, data, address, browse), _ = fake_netron
    assert (name, data, address, browse) == ("m.onnx", model.read_bytes(), None, True)


def test_bad_arguments(tmp_path, fake_netron):
    missing = runner.invoke(app, ["view", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    missing_onnx = runner.invoke(app, ["view", str(tmp_path / "none.onnx")])
    assert missing_onnx.exit_code == 2 and "no such file" in missing_onnx.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers: [{type: Dense}]\n"
    )
    invalid = runner.invoke(app, ["view", str(bad)])
    assert invalid.exit_code == 1 and "missing required field 'units'" in invalid.stderr
    port = runner.invoke(app, ["view", str(SPEC), "--port", "0"])
    assert port.exit_code == 2
    assert fake_netron == []


def test_lsp_without_pygls_exits_3_with_the_install_command(monkeypatch):
    _without(monkeypatch, "pygls")
    result = runner.invoke(app, ["lsp"])
    assert result.exit_code == 3
    assert "pip install 'specc[lsp]'" in result.stderr
