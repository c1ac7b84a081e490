"""The command line: exit codes, output formats, and no framework imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from specc import __version__
from specc.cli import app

from .conftest import ROOT, SPECS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"specc {__version__}"


def test_validate_all_bundled_specs_exit_0():
    result = invoke("validate", *map(str, SPECS))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count(": ok (") == len(SPECS)


def test_invalid_spec_exits_1_with_located_message(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers:\n  - {type: Dense}\n"
    )
    result = invoke("validate", str(spec))
    assert result.exit_code == 1
    assert f"{spec}:5:5: error: layers[0] Dense: missing required field 'units'" in result.stderr


def test_one_bad_file_among_good_ones_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\n")
    result = invoke("validate", str(SPECS[0]), str(bad))
    assert result.exit_code == 1
    assert ": ok (" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "does/not/exist.yaml"),
        ("summary", "does/not/exist.yaml"),
        ("summary", "specs/mnist_cnn.yaml", "--format", "xml"),
        ("frobnicate",),
        ("validate",),
    ],
)
def test_usage_errors_exit_2(args):
    result = invoke(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_missing_file_message():
    result = invoke("validate", "nope.yaml")
    assert "nope.yaml:1:1: error: no such file" in result.stderr


def test_validate_json_diagnostics_are_data(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers:\n  - {type: Dens, units: 3}\n"
    )
    result = invoke("validate", "--format", "json", str(spec))
    assert result.exit_code == 1
    (report,) = json.loads(result.stdout)
    (diag,) = report["diagnostics"]
    assert report["ok"] is False
    assert diag["file"] == str(spec)
    assert (diag["line"], diag["column"]) == (5, 12)
    assert diag["layer"] == "layers[0] Dens"
    assert diag["message"] == "unknown layer type 'Dens'"
    assert diag["hint"] == "did you mean 'Dense'?"
    assert diag["severity"] == "error"


def test_summary_json_keys_and_values():
    result = invoke("summary", "specs/mnist_cnn.yaml", "--format", "json")
    data = json.loads(result.stdout)
    assert data["name"] == "mnist_cnn"
    assert [layer["params"] for layer in data["layers"] if layer["params"]] == [
        320,
        18_496,
        73_856,
        11_530,
    ]
    assert [layer["output_shape"] for layer in data["layers"]] == [
        [None, 26, 26, 32],
        [None, 13, 13, 32],
        [None, 11, 11, 64],
        [None, 5, 5, 64],
        [None, 3, 3, 128],
        [None, 1152],
        [None, 10],
    ]
    assert (data["total_params"], data["trainable_params"], data["non_trainable_params"]) == (
        104_202,
        104_202,
        0,
    )
    # MACs: 26*26*32*9*1 + 11*11*64*9*32 + 3*3*128*9*64 + 1152*10
    assert data["macs"] == 194_688 + 2_230_272 + 663_552 + 11_520
    for layer in data["layers"]:
        assert {"name", "type", "output_shape", "params", "trainable_params", "macs"} <= set(layer)


def test_summary_text_totals_like_keras():
    out = invoke("summary", "specs/residual_block.yaml").stdout
    # BatchNormalization: gamma/beta trainable, moving mean/variance not (2 x 144 channels)
    assert "Total params: 20,282 (79.23 KB)" in out
    assert "Non-trainable params: 288 (1.12 KB)" in out


def test_schema_lists_every_layer_type():
    from specc.layers import LAYER_TYPES

    schema = json.loads(invoke("schema").stdout)
    assert schema["title"] == "specc model spec"
    assert set(LAYER_TYPES) <= set(schema["$defs"])
    layer_items = schema["properties"]["layers"]["items"]
    assert set(layer_items["discriminator"]["mapping"]) == set(LAYER_TYPES)


def test_schema_to_file(tmp_path):
    target = tmp_path / "spec.schema.json"
    assert invoke("schema", "-o", str(target)).exit_code == 0
    assert json.loads(target.read_text())["title"] == "specc model spec"


def test_schema_to_unwritable_path_exits_2(tmp_path):
    result = invoke("schema", "-o", str(tmp_path / "missing" / "dir" / "s.json"))
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


HEAVY = ("tensorflow", "keras", "torch", "onnx", "onnxruntime", "jax", "numpy")


def test_no_framework_imported_by_import_validate_summary_schema():
    code = f"""
import sys
import specc
assert 'pydantic' not in sys.modules, 'import specc must stay light'
from specc.cli import app
for args in (["validate", "specs/mnist_cnn.yaml", "specs/residual_block.yaml"],
             ["summary", "specs/inception_block.yaml", "--format", "json"], ["schema"]):
    try:
        app(args, standalone_mode=False)
    except SystemExit:
        pass
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print("HEAVY", heavy)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_console_script_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "specc", "summary", "specs/mnist_cnn.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    assert "Total params: 104,202 (407.04 KB)" in out.stdout


def test_generated_docs_are_current():
    from specc.schema import json_schema

    # docs/layers.md and the per-layer tables: tests/test_docs_generated.py
    schema = json.loads((ROOT / "docs" / "spec.schema.json").read_text())
    assert schema == json_schema(), "run `make docs`"


def test_a_weights_file_that_is_not_an_npz_is_named_as_such(tmp_path):
    """numpy reads any non-zip bytes as a pickle and says so; specc says what is wrong."""
    bad = tmp_path / "w.npz"
    bad.write_bytes(b"garbage, not a zip")
    result = CliRunner().invoke(
        app, ["compile", "specs/mnist_mlp.json", "-t", "onnx-text", "--weights", str(bad)]
    )
    assert result.exit_code == 2
    assert "not an .npz file" in result.stderr and "pickle" not in result.stderr
