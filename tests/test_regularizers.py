"""Weight regularizers (kernel_regularizer, bias_regularizer, ...): the spec forms, the Keras
arguments, the PyTorch module's ``regularization_loss`` and the training losses of every
backend, each checked against the arithmetic ``l1 * sum(|w|) + l2 * sum(w ** 2)``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from specc import weights as W
from specc.codegen import generate
from specc.pipeline import check_file, check_text

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases"


def _model(case: str):
    result = check_file(CASES / case / "spec.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def _spec(regularizer: str) -> str:
    return (
        "version: 1\nname: r\ninputs:\n  - {name: x, shape: [4]}\nlayers:\n"
        f"  - {{type: Dense, name: d, units: 2, kernel_regularizer: {regularizer}}}\n"
    )


# --------------------------------------------------------------------------- no framework


@pytest.mark.parametrize(
    "written, factors",
    [
        ("l1", (0.01, 0.0)),
        ("l2", (0.0, 0.01)),
        ("l1_l2", (0.01, 0.01)),
        ("{type: L1, l1: 0.5}", (0.5, 0.0)),
        ("{type: L2}", (0.0, 0.01)),
        ("{type: L1L2, l2: 0.25}", (0.0, 0.25)),
    ],
)
def test_forms_give_their_factors(written, factors):
    result = check_text(_spec(written), file="r.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    assert W.regularizers(result.model) == {"d/kernel": factors}


@pytest.mark.parametrize(
    "written, message",
    [
        ("{type: L2, l2: -0.1}", "kernel_regularizer.l2 must be >= 0.0, got -0.1"),
        ("{type: L3}", "L3"),
        ("l3", "l3"),
        ("{type: L1, l2: 0.1}", "l2"),
    ],
)
def test_bad_regularizers_are_located(written, message):
    result = check_text(_spec(written), file="r.yaml")
    assert not result.ok
    text = "\n".join(d.format() for d in result.diagnostics)
    assert "r.yaml:6:" in text and "kernel_regularizer" in text and message in text, text


def test_unset_regularizers_leave_the_config_and_hash_alone():
    model = check_file(ROOT / "specs" / "mnist_cnn.yaml").model
    assert not any("regularizer" in key for layer in model.to_dict()["layers"] for key in layer)
    assert W.regularizers(model) == {}
    code = generate(model, "pytorch")
    assert "regularization_loss" not in code and "regularizers" not in generate(model, "keras")


def test_every_regularized_weight_exists():
    """A layer's ``regularized`` map names its own weights (a typo would drop a penalty)."""
    from specc.layers import LAYER_TYPES

    for cls in LAYER_TYPES.values():
        for field in cls.regularized.values():
            assert field in cls.model_fields, (cls.__name__, field)
    for case in ("regularizers", "regularizers_sequence"):
        model = _model(case)
        names = {f"{layer.name}/{w.name}" for layer in model.layers for w in layer.weights}
        assert set(W.regularizers(model)) <= names


def test_keras_code_writes_every_factor():
    code = generate(_model("regularizers"), "keras")
    assert "kernel_regularizer=keras.regularizers.L2(l2=0.01)" in code
    assert "bias_regularizer=keras.regularizers.L1(l1=0.05)" in code
    # 'l1_l2' is written with both factors, never left to a Keras default
    assert "kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.01)" in code
    assert "depthwise_regularizer=keras.regularizers.L1L2(l1=0.001, l2=0.002)" in code


def test_penalty_arithmetic():
    weights = {"a/kernel": np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)}
    # l1 * (1 + 2 + 0.5) + l2 * (1 + 4 + 0.25)
    assert W.penalty(weights, {"a/kernel": (0.1, 0.01)}) == pytest.approx(0.35 + 0.0525)


# --------------------------------------------------------------------------- frameworks


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("case", ["regularizers", "regularizers_sequence"])
def test_torch_module_penalty_equals_the_arithmetic(case, torch, tmp_path):
    from specc.targets.pytorch.runtime import TorchRuntime

    model = _model(case)
    weights = W.initial_weights(model, seed=3)
    runtime = TorchRuntime(model, tmp_path)
    runtime.load(weights)
    expected = W.penalty(weights, W.regularizers(model))
    assert expected > 0.01
    assert float(runtime.net.regularization_loss()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["regularizers", "regularizers_sequence"])
def test_training_losses_include_the_penalty(case, torch, tmp_path):
    """One training step's loss minus the same step without regularizers is the penalty, in
    Keras (its layers' ``losses``, as model.fit adds them) and in PyTorch."""
    pytest.importorskip("keras")
    from specc import targets
    from specc.crosscheck import SGD, _inputs, _loss_spec, _targets

    model = _model(case)

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not k.endswith("_regularizer")}
        return [strip(v) for v in node] if isinstance(node, list) else node

    data = yaml.safe_load((CASES / case / "spec.yaml").read_text())
    plain = check_text(json.dumps(strip(data)), "json", "plain.json").model
    assert W.regularizers(plain) == {}
    weights = W.initial_weights(model, seed=1)
    expected = W.penalty(weights, W.regularizers(model))
    loss_spec = _loss_spec(model)
    inputs = _inputs(model, 4, 0)
    labels = _targets(model, loss_spec[0], 4, 0)
    for backend in ("keras", "pytorch"):
        losses = []
        for variant, tag in ((model, "reg"), (plain, "plain")):
            net = targets.get(backend).runtime(variant, tmp_path, f"_{tag}")
            net.load(weights)
            losses.append(net.train_step(inputs, labels, loss_spec, SGD)["loss"])
        assert losses[0] - losses[1] == pytest.approx(expected, rel=1e-4, abs=1e-6), backend


@pytest.mark.slow
def test_crosscheck_fails_when_one_backend_drops_the_penalty(torch, monkeypatch):
    pytest.importorskip("keras")
    from specc.crosscheck import crosscheck
    from specc.targets.pytorch import runtime

    monkeypatch.setattr(runtime, "regularization", lambda net: 0.0)
    report = crosscheck(_model("regularizers"), backends=["keras", "pytorch"], batch=4)
    failed = {row.what for row in report.rows if not row.passed}
    assert "loss (sparse_categorical_crossentropy)" in failed, report.format_text()


def test_block_models_regularize_every_instance(torch, tmp_path):
    """In the class form (one nn.Module per block) the penalty reaches each instance's weight
    through its module path; the Keras block function writes the constructor call."""
    from specc.targets.pytorch.runtime import TorchRuntime

    text = (CASES / "blocks_basic" / "spec.yaml").read_text()
    old = "kernel_size: 3, padding: same, activation: relu}"
    assert text.count(old) == 1
    text = text.replace(old, old[:-1] + ", kernel_regularizer: {type: L2, l2: 0.001}}")
    result = check_text(text, file="blocks.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    model = result.model
    assert set(W.regularizers(model)) == {"res1_conv1/kernel", "res2_conv1/kernel"}
    code = generate(model, "pytorch")
    assert "class Residual(nn.Module)" in code
    assert "0.001 * self.res1.conv1.weight.square().sum()" in code
    assert "kernel_regularizer=keras.regularizers.L2(l2=0.001)" in generate(model, "keras")
    weights = W.initial_weights(model, seed=4)
    runtime = TorchRuntime(model, tmp_path)
    runtime.load(weights)
    expected = W.penalty(weights, W.regularizers(model))
    assert float(runtime.net.regularization_loss()) == pytest.approx(expected, rel=1e-6)
