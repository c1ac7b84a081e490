"""The zoo (specs/zoo/): specs written with blocks that equal keras.applications exactly.

Fast tests: each spec's counts at 224x224 (299 for Xception) are the numbers Keras reports
for the application, and each file stays short. Slow test: build the application with
``weights=None`` at a small input size, give it random weights, copy them BY NAME into the
canonical layout of the spec (specc.weights.from_keras), load them into the specc-generated
Keras model and compare outputs and counts.
"""

from __future__ import annotations

import copy
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
}

APPLICATIONS = {
    "vgg16": "VGG16",
    "resnet50": "ResNet50",
    "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "densenet121": "DenseNet121",
    "xception": "Xception",
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
