"""The library API that other tools embed: load from a path, text or dict; never raise on check."""

from __future__ import annotations

import json

import pytest
import yaml

import specc
from specc.layers import ACTIVATIONS

from .conftest import ROOT, SPECS

MLP = {
    "version": 1,
    "name": "mlp",
    "inputs": [{"name": "x", "shape": [28, 28]}],
    "layers": [
        {"type": "Flatten"},
        {"type": "Dense", "units": 512, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ],
}


def test_check_data_gives_the_model():
    result = specc.check_data(MLP)
    assert result.ok
    # 784*512 + 512 + 512*10 + 10
    assert result.model.total_params == 407_050


def test_check_never_raises_and_lists_all_problems():
    bad = json.loads(json.dumps(MLP))
    bad["layers"][1]["units"] = -3
    bad["layers"][2]["activation"] = "softmaxx"
    result = specc.check_data(bad)
    assert not result.ok and result.model is None
    assert [d.message for d in result.errors] == [
        "units must be >= 1, got -3",
        "activation: 'softmaxx' is not one of: " + ", ".join(ACTIVATIONS),
    ]
    assert result.errors[1].hint == "did you mean 'softmax'?"


def test_load_raises_spec_error_with_every_diagnostic(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers: [{type: Dense}, {type: Nope}]\n"
    )
    with pytest.raises(specc.SpecError) as info:
        specc.load(path)
    assert len(info.value.errors) == 2
    assert str(path) + ":4:10:" in str(info.value)


def test_loads_text_yaml_and_json_agree():
    text = (ROOT / "specs" / "mnist_cnn.yaml").read_text()
    from_yaml = specc.loads(text)
    from_json = specc.loads(json.dumps(yaml.safe_load(text)), format="json")
    assert specc.summarize(from_yaml) == specc.summarize(from_json)


def test_json_locations_match_yaml_locations():
    text = '{\n  "version": 1,\n  "name": "m",\n  "inputs": [{"name": "x", "shape": [4]}],\n  "layers": [\n    {"type": "Dense", "units": "four"}\n  ]\n}\n'
    (diag,) = specc.check_text(text, format="json").errors
    assert (diag.line, diag.column) == (6, 32)
    assert diag.message == "units must be an integer, got 'four'"


def test_summary_is_plain_data():
    summary = specc.summarize(specc.load(ROOT / "specs" / "two_inputs_two_outputs.yaml"))
    assert json.loads(json.dumps(summary)) == summary
    assert summary["outputs"] == ["class_probs", "score"]


def test_ir_dumps_to_json_for_every_spec():
    for path in SPECS:
        model = specc.load(path)
        data = json.loads(json.dumps(model.to_dict()))
        assert data["total_params"] == model.total_params
        assert [layer["name"] for layer in data["layers"]] == [layer.name for layer in model.layers]


def test_default_names_follow_keras():
    model = specc.load(ROOT / "specs" / "mnist_cnn.yaml")
    assert [layer.name for layer in model.layers] == [
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "conv2d_2",
        "flatten",
        "dense",
    ]


def test_graph_is_topologically_ordered_even_when_written_out_of_order():
    spec = {
        "version": 1,
        "name": "g",
        "inputs": [{"name": "x", "shape": [4]}],
        "layers": [
            {"type": "Add", "name": "sum", "inputs": ["a", "b"]},
            {"type": "Dense", "name": "a", "units": 4, "inputs": ["x"]},
            {"type": "Dense", "name": "b", "units": 4, "inputs": ["x"]},
        ],
        "outputs": ["sum"],
    }
    model = specc.load(spec)
    assert [layer.name for layer in model.layers] == ["a", "b", "sum"]
    assert not model.is_sequential


def test_input_layer_in_the_list_like_keras_sequential():
    spec = {
        "version": 1,
        "name": "seq",
        "layers": [{"type": "Input", "shape": [8]}, {"type": "Dense", "units": 2}],
    }
    model = specc.load(spec)
    assert [t.shape for t in model.inputs] == [(8,)]
    assert model.is_sequential and model.total_params == 8 * 2 + 2


def test_yaml_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    result = specc.check_text("\n".join(lines))
    (diag,) = result.errors
    assert "more than 200,000 values" in diag.message


def test_the_example_in_docs_spec_md_is_valid():
    text = (ROOT / "docs" / "spec.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    result = specc.check_text(example, file="docs/spec.md")
    assert result.ok, [d.format() for d in result.diagnostics]
    merged = result.model.layer("merged")
    # conv2 ('same') keeps 13x13; skip: 1x1 stride 2 on 26x26 -> floor((26-1)/2)+1 = 13
    assert merged.output_shape == (13, 13, 64)


def test_embedding_example_runs():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "examples/embed_validation.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    # 3*3*1*8 + 8 = 80; 13*13*8*10 + 10 = 13,530
    assert "tiny_cnn: 13,610 params" in out.stdout
    assert "kernel 30x30 does not fit input 28x28 (padding 'valid')" in out.stdout
    bad = subprocess.run(
        [sys.executable, "examples/embed_validation.py", "tests/cases/error_cycle/spec.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "cycle: a -> b -> c -> a" in bad.stdout


def test_memory_limit_can_be_raised(monkeypatch):
    spec = {
        "version": 1,
        "name": "big",
        "inputs": [{"name": "x", "shape": [100_000]}],
        "layers": [{"type": "Dense", "units": 20_000}],
    }
    # (100,000 + 1) * 20,000 = 2,000,020,000 params * 4 bytes = 7.45 GB
    monkeypatch.setenv("SPECC_MAX_MEMORY", "4GB")
    (diag,) = specc.check_data(spec).errors
    assert (
        "7.45 GB (float32) for its 2,000,020,000 parameters, above the 4.00 GB limit"
        in diag.message
    )
    assert diag.hint.endswith("SPECC_MAX_MEMORY=8GB")
    monkeypatch.setenv("SPECC_MAX_MEMORY", "8GB")
    assert specc.check_data(spec).ok


def test_an_unsupported_keras_layer_is_not_reported_as_a_typo():
    spec = json.loads(json.dumps(MLP))
    spec["layers"][1] = {"type": "PReLU"}
    result = specc.check_data(spec)
    [error] = result.errors
    assert error.message == "Keras layer 'PReLU' is not supported by specc (yet)"
    assert error.hint == "supported activation layers: Activation, LeakyReLU, ReLU, Softmax"
    assert error.code == "unsupported-layer"


def test_every_supported_layer_is_in_the_keras_catalog():
    from specc.layers import LAYER_TYPES
    from specc.layers.keras_catalog import family

    assert [name for name in LAYER_TYPES if name != "Input" and family(name) is None] == []
