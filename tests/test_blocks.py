"""Blocks (specc/blocks.py) and their expression language (specc/expr.py)."""

from __future__ import annotations

import json
import textwrap

import pytest

from specc.expr import ExprError, evaluate, substitute
from specc.pipeline import check_text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4 * filters", 256),
        ("filters // 3", 21),
        ("filters / 4", 16),
        ("(filters + 2) * -2", -132),
        ("1 + 2 * 3 - 4", 3),
        ("7 // 2 // 2", 1),
        ("-(-3)", 3),
        ("ratio * 2", 1.0),
    ],
)
def test_expressions(text, value):
    assert evaluate(text, {"filters": 64, "ratio": 0.5}) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7 / 2", "not a whole number"),
        ("1 / 0", "division by zero"),
        ("filtres", "did you mean 'filters'"),
        ("2 +", "ends too early"),
        ("(1 + 2", "missing ')'"),
        ("1 2", "unexpected 2"),
        ("__import__(filters)", "unknown parameter '__import__'"),
        ("__import__('os')", "unexpected character"),
        ("a.b", "unexpected character '.'"),
        ("2 ** 3", "unexpected '*'"),
        ("9" * 20, "number too large"),
        ("name * 2", "needs numbers"),
        ("(" * 40 + "1" + ")" * 40, "nested too deeply"),
        ("1 + " * 60 + "1", "longer than 200"),
    ],
)
def test_bad_expressions(text, message):
    with pytest.raises(ExprError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(text, {"filters": 64, "name": "b1"})


def test_substitute_types_and_interpolation():
    scope = {"name": "conv2", "i": 0, "f": 8, "on": True}
    assert substitute("$f", scope) == 8
    assert substitute("$(f * 2)", scope) == 16
    assert substitute("${f // 2}", scope) == 4
    assert substitute("$on", scope) is True
    assert substitute("$(name)_block$(i + 1)", scope) == "conv2_block1"
    assert substitute("${name}_x", scope) == "conv2_x"
    assert substitute("cost $$5", scope) == "cost $5"
    with pytest.raises(ExprError, match="parameter name"):
        substitute("a $ b", scope)


def _check(text: str):
    return check_text(textwrap.dedent(text), file="t.yaml")


BASE = """\
    version: 1
    name: m
    inputs: [{name: x, shape: [8]}]
    blocks:
      mlp:
        params: {units: int, skip: {type: bool, default: false}}
        layers:
          - {type: Dense, name: $(name)_a, units: $units}
          - {type: Dense, name: $(name)_b, if: $skip, units: $units}
          - {type: Dense, name: $(name)_c, units: $(units * 2)}
        outputs: [$(name)_a]
"""


def test_output_and_pass_through_and_references():
    result = _check(
        BASE
        + """\
    layers:
      - {type: Dense, units: 4}
      - {type: mlp, name: m1, units: 3}
      - {type: Dense, name: after, units: 2}
      - {type: Dense, name: other, inputs: [m1], units: 5}
    outputs: [after, other, m1]
    """
    )
    assert result.ok, [d.format() for d in result.diagnostics]
    model = result.model
    # the unnamed layer before the instance keeps Keras's automatic name
    assert model.layer("m1_a").inputs == ["dense"]
    # m1_b is skipped; m1_c reads what m1_b read, but no output depends on it
    names = [layer.name for layer in model.layers]
    assert "m1_b" not in names and "m1_c" not in names
    assert any(d.code == "unused" and "m1_c" in (d.layer or "") for d in result.warnings)
    # the instance's output is m1_a (outputs:), not its last layer
    assert model.layer("after").inputs == ["m1_a"]
    assert model.layer("other").inputs == ["m1_a"]
    assert model.outputs == ["after", "other", "m1_a"]


def test_diagnostic_points_into_the_block_and_names_the_site():
    result = _check(
        BASE
        + """\
    layers:
      - {type: mlp, name: m1, units: 3}
      - {type: mlp, name: m2, units: 0}
    """
    )
    assert not result.ok
    diag = result.errors[0]
    assert diag.line == 8  # the Dense line inside the block
    assert "m2_a" in diag.layer
    assert "in block 'mlp' instantiated as 'm2' at t.yaml:14:5 with units=0" in diag.message


def test_the_same_error_in_every_instance_is_reported_once():
    result = _check(
        BASE.replace("$(units * 2)", "$(units * 0)")
        + """\
    layers:
      - {type: mlp, name: m1, units: 3}
      - {type: mlp, name: m2, units: 4}
      - {type: mlp, name: m3, units: 5}
    """
    )
    (diag,) = result.errors
    assert diag.line == 10
    assert "(and 2 more instances)" in diag.message


def test_block_layers_cannot_read_outside_and_names_must_be_unique():
    result = _check(
        """\
    version: 1
    name: m
    inputs: [{name: x, shape: [8]}]
    blocks:
      b:
        layers:
          - {type: Dense, name: $(name)_d, inputs: [x, outside], units: 2}
    layers:
      - {type: Dense, name: outside, units: 2}
      - {type: b, name: b1}
    """
    )
    (diag,) = result.errors
    assert "unknown name 'outside'" in diag.message and diag.line == 7

    result = _check(
        """\
    version: 1
    name: m
    inputs: [{name: x, shape: [8]}]
    blocks:
      b:
        layers:
          - {type: Dense, name: fixed, units: 2}
    layers:
      - {type: b, name: b1}
      - {type: b, name: b2}
    """
    )
    assert any("duplicate name 'fixed'" in d.message for d in result.errors)


def test_block_definition_errors():
    result = _check(
        """\
    version: 1
    name: m
    inputs: [{name: x, shape: [8]}]
    blocks:
      Dense: {layers: [{type: ReLU}]}
      b:
        params: {i: int, units: float64}
        layrs: []
    layers:
      - {type: Dense, units: 2}
    """
    )
    messages = [d.message for d in result.errors]
    assert any("is a layer type" in m for m in messages)
    assert any("'i' is reserved" in m for m in messages)
    assert any("parameter 'units' needs a type" in m for m in messages)
    assert any("unknown block field 'layrs'" in m for m in messages)
    assert any("a block needs 'layers'" in m for m in messages)


def test_repeat_limits():
    text = BASE + "    layers:\n      - {type: mlp, name: m, units: 2, repeat: %s}\n"
    for bad in ("0", "100001", "two"):
        result = check_text(textwrap.dedent(text) % bad, file="t.yaml")
        assert any("'repeat' must be an integer" in d.message for d in result.errors), bad
    result = check_text(textwrap.dedent(text) % "3", file="t.yaml")
    assert result.ok
    assert [n.name for n in result.model.layers][:2] == [
        "m_1_a",
        "m_2_a",
    ]  # each reads the previous output


def test_summary_depth_and_json_hierarchy():
    from specc.summary import format_text, summarize

    result = _check(
        BASE
        + """\
    layers:
      - {type: mlp, name: m1, units: 3}
    """
    )
    model = result.model
    text = format_text(model, depth=0)
    assert "m1 (mlp)" in text and "m1_a (Dense)" not in text
    # 8*3+3 + 3*6+6 parameters
    assert "51" in text.split("m1 (mlp)")[1].split("\n")[0]
    full = format_text(model)
    assert "m1_a (Dense)" in full and "(mlp)" not in full
    data = json.loads(json.dumps(summarize(model)))
    assert data["layers"][0]["scope"] == ["m1"]
    (instance,) = data["instances"]
    assert instance["block"] == "mlp" and instance["params"] == 51
    assert instance["args"] == {"units": 3} and instance["output"] == "m1_a"


def test_spec_without_blocks_is_untouched():
    result = check_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers: [{type: Dense, units: 2}]\n"
    )
    assert result.ok and result.model.expansion is None


@pytest.mark.slow
@pytest.mark.parametrize("case", ["blocks_basic", "blocks_repeat", "blocks_nested"])
def test_keras_block_functions_build_the_flat_model(case, tmp_path):
    """The code with one function per block builds the same layers, weights and outputs as
    the flat code of the same expanded model."""
    import dataclasses

    import numpy as np

    pytest.importorskip("tensorflow")
    from specc import weights as W
    from specc.pipeline import check_file
    from specc.runner.run import import_generated
    from specc.targets.keras import TARGET

    model = check_file(f"tests/cases/{case}/spec.yaml").model
    structured = TARGET.emit(model)
    flat = TARGET.emit(dataclasses.replace(model, expansion=None))
    assert "def build_model" in structured and structured.count("\ndef ") >= 2
    assert flat.count("\ndef ") == 1
    nets = []
    for tag, code in (("blocks", structured), ("flat", flat)):
        path = tmp_path / f"{tag}.py"
        path.write_text(code)
        nets.append(import_generated(path, f"specc_test_{case}_{tag}").build_model())
    inputs = {t.name for t in model.inputs}
    # (Keras orders a functional graph's layers its own way)
    names = [sorted(layer.name for layer in net.layers if layer.name not in inputs) for net in nets]
    assert names[0] == names[1] == sorted(layer.name for layer in model.layers)
    weights = W.random_weights(model, seed=3)
    for net in nets:
        W.to_keras(net, model, weights)
    x = np.random.default_rng(0).normal(size=(2, *model.inputs[0].shape)).astype(np.float32)
    a, b = (np.asarray(net(x, training=False)) for net in nets)
    np.testing.assert_array_equal(a, b)


def test_target_refusal_inside_an_instance_names_it():
    from specc.codegen import CodegenError
    from specc.targets.pytorch.codegen import plan

    result = _check(
        """\
    version: 1
    name: m
    inputs: [{name: x, shape: [8, 8, 4]}]
    blocks:
      unit:
        params: {scale: {type: bool, default: true}}
        layers:
          - {type: LayerNormalization, name: $(name)_ln, scale: $scale}
    layers:
      - {type: unit, name: u1}
      - {type: unit, name: u2, scale: false}
    """
    )
    assert result.ok
    with pytest.raises(CodegenError) as info:
        plan(result.model, result.source)
    (diag,) = info.value.diagnostics
    assert diag.line == 8 and diag.layer == "LayerNormalization 'u2_ln'"
    assert "in block 'unit' instantiated as 'u2' at t.yaml:11:5 with scale=false" in diag.message


def test_the_documented_example_is_valid():
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "spec.md").read_text()
    section = text[text.index("## Blocks") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    result = check_text(example, file="example.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    assert result.model.layer("conv3_block1_0_conv").output_shape == (16, 16, 32)
    assert result.model.total_params == 5_098
