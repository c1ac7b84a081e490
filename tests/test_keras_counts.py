"""specc's static answers equal what Keras itself builds, for every spec in specs/ and every
layer case in tests/cases/.

Builds each model with keras.layers.<keras_class>(**keras_args()) in the IR's order and
compares every layer's output shape, total and trainable parameter counts.
"""

from __future__ import annotations

import pytest

from specc.pipeline import check_file
from specc.targets.keras.codegen import keras_apply
from specc.targets.keras.codegen import keras_layer as build_layer

from .conftest import MODEL_SPECS

pytestmark = pytest.mark.slow

# The counts the tutorials publish (and that Keras prints), independent of specc.
PUBLISHED = {
    "mnist_mlp.json": 407_050,
    "mnist_cnn.yaml": 104_202,
    "keras_mnist_cnn.yaml": 1_199_882,
    "cifar10_cnn.yaml": 122_570,
}


def build_keras(model):
    keras = pytest.importorskip("keras")
    tensors = {}
    inputs = []
    for tensor in model.inputs:
        tensors[tensor.name] = keras.Input(shape=tensor.shape, name=tensor.name, dtype=tensor.dtype)
        inputs.append(tensors[tensor.name])
    built = {}
    for layer in model.layers:
        keras_layer = build_layer(keras, layer.spec, layer.name)
        args = [tensors[name] for name in layer.inputs]
        tensors[layer.name] = keras_apply(keras_layer, layer.spec, args)
        built[layer.name] = keras_layer
    return keras.Model(inputs, [tensors[name] for name in model.outputs]), built, tensors


@pytest.mark.parametrize(
    "path", MODEL_SPECS, ids=lambda p: p.parent.name if p.stem == "spec" else p.name
)
def test_counts_and_shapes_equal_keras(path):
    model = check_file(path).model
    assert model is not None
    keras_model, layers, tensors = build_keras(model)
    for layer in model.layers:
        built = layers[layer.name]
        assert tuple(tensors[layer.name].shape[1:]) == layer.output_shape, layer.name
        assert built.count_params() == layer.params, layer.name
        trainable = sum(int(w.numpy().size) for w in built.trainable_weights)
        assert trainable == layer.trainable_params, layer.name
        # the weight declaration is Keras's: names, shapes, trainability, in Keras's order
        declared = [(w.keras_variable, w.shape, w.trainable) for w in layer.weights]
        keras_weights = [(v.name, tuple(v.shape), v.trainable) for v in built.weights]
        assert declared == keras_weights, layer.name
    assert keras_model.count_params() == model.total_params
    if path.name in PUBLISHED:
        assert model.total_params == PUBLISHED[path.name]


def test_separable_conv_count_from_the_issue():
    # kh*kw*Cin*dm + Cin*dm*Cout + Cout = 2*2*3*1 + 3*1*1 + 1 = 16
    keras = pytest.importorskip("keras")
    from specc import check_data

    spec = {
        "version": 1,
        "name": "sep",
        "inputs": [{"name": "x", "shape": [5, 5, 3]}],
        "layers": [{"type": "SeparableConv2D", "filters": 1, "kernel_size": 2}],
    }
    model = check_data(spec).model
    assert model.total_params == 16
    layer = keras.layers.SeparableConv2D(filters=1, kernel_size=2)
    layer.build((None, 5, 5, 3))
    assert layer.count_params() == 16
