"""The zoo (specs/zoo/): specs written with blocks that equal keras.applications exactly.

Fast tests: each spec's counts at 224x224 (299 for Xception and InceptionV3) are the numbers Keras reports
for the application, and each file stays short. Slow test: build the application with
``weights=None`` at a small input size, give it random weights, copy them BY NAME into the
canonical layout of the spec (specc.weights.from_keras), load them into the specc-generated
Keras model and compare outputs and counts.
"""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
from pathlib import Path

import pytest

from specc.pipeline import check_file, check_source
from specc.source import read_source

ZOO = Path(__file__).resolve().parent.parent / "specs" / "zoo"

# total, trainable, non-trainable as keras.applications reports them (include_top=True)
COUNTS = {
    "vgg16": (138_357_544, 138_357_544, 0),
    "resnet50": (25_636_712, 25_583_592, 53_120),
    "mobilenet": (4_253_864, 4_231_976, 21_888),
    "mobilenet_v2": (3_538_984, 3_504_872, 34_112),
    "densenet121": (8_062_504, 7_978_856, 83_648),
    "xception": (22_910_480, 22_855_952, 54_528),
    "efficientnet_b0": (5_330_571, 5_288_548, 42_023),
    "inception_v3": (23_851_784, 23_817_352, 34_432),
}

APPLICATIONS = {
    "vgg16": "VGG16",
    "resnet50": "ResNet50",
    "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "densenet121": "DenseNet121",
    "xception": "Xception",
    "efficientnet_b0": "EfficientNetB0",
    "inception_v3": "InceptionV3",
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_zoo_counts(name):
    result = check_file(ZOO / f"{name}.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    model = result.model
    assert (model.total_params, model.trainable_params, model.non_trainable_params) == COUNTS[name]
    assert model.expansion is not None  # written with blocks
    lines = (ZOO / f"{name}.yaml").read_text().count("\n")
    assert lines <= 150


def test_zoo_is_complete():
    assert sorted(p.stem for p in ZOO.glob("*.yaml")) == sorted(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_zoo_keras_code_has_one_function_per_block(name, tmp_path):
    """The Keras code of each zoo model is written as keras.applications is: one function
    per block (not the flat fallback), ruff check and ruff format --check clean. EfficientNet
    and InceptionV3 pass list-valued arguments built from parameters (a (kh, kw) kernel, a
    nested ZeroPadding2D padding) and long initializer calls that must be laid out as ruff
    does."""
    from specc.codegen import generate

    model = check_file(ZOO / f"{name}.yaml").model
    code = generate(model, "keras")
    functions = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)}
    used = {call.block for call in model.expansion.calls}
    assert functions == used | {"build_model"}
    expected = {
        "efficientnet_b0": "padding=[[kernel // 2 - 1, kernel // 2], [kernel // 2 - 1, kernel // 2]],",
        "inception_v3": "kernel_size=[kh, kw],",
    }
    if name in expected:
        assert expected[name] in code
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    ruff = Path(sys.executable).parent / "ruff"
    config = ["--config", str(ZOO.parent.parent / "pyproject.toml"), "--no-cache"]
    for args in (["check"], ["format", "--check", "--diff"]):
        run = subprocess.run([ruff, *args, *config, str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def _fields(layer) -> dict:
    """A layer's validated fields, Keras's equivalent spellings made one (activation None is
    'linear'; axis -1 is axis 3 of an image)."""
    fields = layer.spec.model_dump(exclude={"inputs", "name"})
    if fields.get("activation") is None and "activation" in fields:
        fields["activation"] = "linear"
    if fields.get("axis") == -1 and len(layer.output_shape) == 3:
        fields["axis"] = 3
    return fields


@pytest.mark.parametrize("name", ["efficientnet_b0", "inception_v3"])
def test_zoo_equals_the_flat_spec_keras_applications_wrote(name):
    """specs/<name>.yaml is written layer by layer from the Keras model itself
    (tests/keras_app_to_spec.py): the block version expands to the same layers, with the same
    names, fields, inputs, shapes and counts."""
    ours = {layer.name: layer for layer in check_file(ZOO / f"{name}.yaml").model.layers}
    flat = check_file(ZOO.parent / f"{name}.yaml").model
    theirs = {layer.name: layer for layer in flat.layers}
    assert sorted(ours) == sorted(theirs)
    for key, layer in theirs.items():
        mine = ours[key]
        assert (mine.type, mine.inputs, mine.output_shape) == (
            layer.type,
            layer.inputs,
            layer.output_shape,
        ), key
        assert (mine.trainable_params, mine.non_trainable_params, mine.macs) == (
            layer.trainable_params,
            layer.non_trainable_params,
            layer.macs,
        ), key
        assert _fields(mine) == _fields(layer), key


def _at_size(name: str, size: int):
    source = read_source(ZOO / f"{name}.yaml")
    source = copy.copy(source)
    source.data = copy.deepcopy(source.data)
    source.data["inputs"][0]["shape"] = [size, size, 3]
    result = check_source(source)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_zoo_equals_keras_applications(name, tmp_path):
    import numpy as np

    pytest.importorskip("tensorflow")
    import keras

    from specc import weights as W
    from specc.targets.keras.runtime import KerasRuntime

    size = 96
    model = _at_size(name, size)
    keras.backend.clear_session()  # fresh automatic names (Xception's unnamed shortcuts)
    app = getattr(keras.applications, APPLICATIONS[name])(
        weights=None, input_shape=(size, size, 3), classes=1000
    )
    # the same weights, by name: every weight of the application is in the spec's layout
    with_weights = {layer.name for layer in app.layers if layer.weights}
    assert with_weights == {key.split("/")[0] for key, _, _ in W.layout(model)}
    assert app.count_params() == model.total_params
    trainable = sum(int(np.prod(v.shape)) for v in app.trainable_weights)
    assert trainable == model.trainable_params
    weights = W.random_weights(model, seed=1)
    W.to_keras(app, model, weights)
    assert all(np.array_equal(a, weights[k]) for k, a in W.from_keras(app, model).items())

    ours = KerasRuntime(model, tmp_path)
    ours.load(weights)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    expected = np.asarray(app(x, training=False))
    got = ours.forward([x])[0]
    assert got.shape == expected.shape == (2, 1000)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("efficientnet_b0", 64), ("inception_v3", 75)])
def test_crosscheck_of_the_pytorch_code_of_efficientnet_and_inception(name, size):
    """EfficientNet's PyTorch code is the flat module (the class form cannot write its
    depthwise padding, 'same' or 'valid' by kernel size, from the parameters), InceptionV3's
    the class form (its [$kh, $kw] kernels and their padding written element by element):
    Keras and PyTorch agree on every layer (at 64x64, and at InceptionV3's minimum of
    75x75)."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("torch")
    from specc.crosscheck import crosscheck

    report = crosscheck(
        _at_size(name, size), backends=["keras", "pytorch"], batch=2, train_step=False
    )
    assert report.ok, report.format_text()
    rows = {r.what.split(" (")[0]: r for r in report.rows if r.check == "forward"}
    assert rows["every layer"].passed and rows["predictions"].passed


@pytest.mark.slow
def test_crosscheck_of_a_deep_zoo_model_passes_and_names_an_injected_fault(monkeypatch):
    """ResNet50 (at 64x64): Keras and PyTorch agree on every layer and on the training step
    (gradients judged against float64); a BatchNormalization epsilon changed in one layer of
    the PyTorch code (1.001e-5 -> 1e-3, invisible in the softmax output) fails and is named,
    early or deep in the network. (A changed stride changes shapes, which every residual
    Add then refuses: that fault cannot go unnoticed.)"""
    pytest.importorskip("tensorflow")
    pytest.importorskip("torch")
    from specc.crosscheck import crosscheck
    from specc.targets.pytorch import TARGET
    from specc.targets.pytorch.codegen import plan
    from specc.targets.pytorch.runtime import TorchRuntime

    model = _at_size("resnet50", 64)
    report = crosscheck(model, backends=["keras", "pytorch"], batch=2)
    assert report.ok, report.format_text()
    rows = {(r.check, r.what.split(" (")[0]): r for r in report.rows}
    assert rows[("forward", "every layer")].passed
    assert "vs float64" in rows[("train sgd", "gradients")].what

    # ResNet50's PyTorch code has one class per block, so the fault goes into one instance's
    # module (found by its state-dict path) rather than into the shared class source
    assert "class " in TARGET.emit(model)
    paths = {layer: path for layer, path, _ in plan(model).weights()}
    build = TorchRuntime._build

    def with_fault(field, value, layer):
        def faulty(self, taps):
            net = build(self, taps)
            setattr(net.get_submodule(paths[layer]), field, value)
            return net

        return faulty

    for field, value, layer in (
        ("eps", 1e-3, "conv2_block1_1_bn"),
        ("eps", 1e-3, "conv4_block3_2_bn"),
    ):
        monkeypatch.setattr(TorchRuntime, "_build", with_fault(field, value, layer))
        faulty = crosscheck(model, backends=["keras", "pytorch"], batch=2, train_step=False)
        monkeypatch.setattr(TorchRuntime, "_build", build)
        assert not faulty.ok
        row = next(r for r in faulty.rows if r.what.startswith("every layer"))
        assert not row.passed and f"first: {layer}" in row.note, faulty.format_text()
        assert faulty.divergences[0].layer == layer


@pytest.mark.slow
def test_mobilenet_gradients_agree_in_float64():
    """MobileNet (v1) at 64x64: TensorFlow's float32 gradients are up to ~18% from float64 on
    ill-conditioned weights, PyTorch's ~4e-5; in float64 both frameworks agree to ~1e-7. The
    float64 row (the semantics) and the float32 row (each judged by its own rounding) pass."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("torch")
    from specc.crosscheck import FLOAT64_AGREEMENT, crosscheck

    report = crosscheck(_at_size("mobilenet", 64), backends=["keras", "pytorch"], batch=2)
    assert report.ok, report.format_text()
    float64 = next(r for r in report.rows if r.what.endswith("in float64"))
    assert float64.max_rel < FLOAT64_AGREEMENT / 3, float64.note
