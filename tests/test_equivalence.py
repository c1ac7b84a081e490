"""The generated Keras and PyTorch models mean the same thing: parameter counts and every
layer's output shape equal specc's inference, and with the same weights (through the
canonical layout) the outputs agree to 1e-5, for every spec in specs/ and for a zoo of small
specs covering each backend-sensitive case (padding, pooling, ReLU variants, transposed
convolutions, upsampling, merges, layouts)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from specc import weights as W
from specc.codegen import generate
from specc.crosscheck import _inputs
from specc.layers import lowering as lw
from specc.pipeline import check_data, check_file
from specc.targets.pytorch.codegen import plan

from .conftest import skip_if_torch_refused

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
TOLERANCE = 1e-5


def _relus():
    variants = [
        {"max_value": 6.0},
        {"negative_slope": 0.1},
        {"threshold": 0.5},
        {"max_value": 2.0, "negative_slope": 0.1, "threshold": 0.5},
        {"max_value": 1.0, "negative_slope": 0.2},
        {"threshold": 0.3, "max_value": 0.8},
    ]
    layers = [
        {"type": "ReLU", "name": f"relu{k}", "inputs": ["x"], **v} for k, v in enumerate(variants)
    ]
    acts = ["leaky_relu", "gelu", "selu", "elu", "softplus", "swish", "silu", "tanh", "sigmoid"]
    layers += [{"type": "Activation", "name": a, "inputs": ["x"], "activation": a} for a in acts]
    layers += [
        {"type": "LeakyReLU", "name": "leaky", "inputs": ["x"]},
        {
            "type": "Conv2D",
            "name": "conv_softmax",
            "inputs": ["x"],
            "filters": 3,
            "kernel_size": 1,
            "activation": "softmax",
        },
        {"type": "Conv2D", "name": "conv_linear", "inputs": ["x"], "filters": 2, "kernel_size": 1},
        {"type": "Softmax", "name": "softmax_h", "axis": 1},
        {"type": "Activation", "name": "identity", "activation": "linear"},
    ]
    names = [layer["name"] for layer in layers if layer["name"] != "softmax_h"]
    layers.append({"type": "Concatenate", "name": "all", "inputs": names})
    return {"inputs": [{"name": "x", "shape": [5, 5, 2]}], "layers": layers}


def _pools():
    layers = [
        {
            "type": "AveragePooling2D",
            "name": "avg_uneven",
            "inputs": ["x"],
            "pool_size": 2,
            "strides": 1,
            "padding": "same",
        },
        {
            "type": "AveragePooling2D",
            "name": "avg_even",
            "inputs": ["x"],
            "pool_size": 3,
            "strides": 2,
            "padding": "same",
        },
        {
            "type": "MaxPooling2D",
            "name": "max_uneven",
            "inputs": ["x"],
            "pool_size": 2,
            "strides": 2,
            "padding": "same",
        },
        {
            "type": "MaxPooling2D",
            "name": "max_even",
            "inputs": ["x"],
            "pool_size": 3,
            "strides": 1,
            "padding": "same",
        },
        {"type": "AveragePooling2D", "name": "avg_valid", "inputs": ["x"], "pool_size": [2, 3]},
        {"type": "GlobalMaxPooling2D", "name": "gmax", "inputs": ["x"], "keepdims": True},
        {"type": "GlobalAveragePooling2D", "name": "gavg", "inputs": ["x"]},
    ]
    outputs = [layer["name"] for layer in layers]
    return {"inputs": [{"name": "x", "shape": [7, 7, 3]}], "layers": layers, "outputs": outputs}


def _convs():
    layers = [
        {"type": "ZeroPadding2D", "name": "pad", "inputs": ["x"], "padding": [[1, 0], [2, 1]]},
        {
            "type": "Conv2D",
            "name": "even_kernel",
            "filters": 4,
            "kernel_size": 2,
            "padding": "same",
        },
        {
            "type": "Conv2D",
            "name": "stride2",
            "inputs": ["x"],
            "filters": 4,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "kernel_initializer": "he_normal",
        },
        {
            "type": "Conv2D",
            "name": "grouped",
            "inputs": ["x"],
            "filters": 6,
            "kernel_size": 3,
            "groups": 2,
            "padding": "same",
        },
        {
            "type": "DepthwiseConv2D",
            "name": "dw",
            "inputs": ["x"],
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "depth_multiplier": 2,
        },
        {
            "type": "SeparableConv2D",
            "name": "sep",
            "inputs": ["x"],
            "filters": 5,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
            "depth_multiplier": 2,
        },
        {
            "type": "Conv2DTranspose",
            "name": "tr_k1s2",
            "inputs": ["x"],
            "filters": 3,
            "kernel_size": 1,
            "strides": 2,
        },
        {
            "type": "Conv2DTranspose",
            "name": "tr_k1s2_same",
            "inputs": ["x"],
            "filters": 3,
            "kernel_size": 1,
            "strides": 2,
            "padding": "same",
        },
        {
            "type": "Conv2DTranspose",
            "name": "tr_k4s2",
            "inputs": ["x"],
            "filters": 3,
            "kernel_size": 4,
            "strides": 2,
            "padding": "same",
        },
        {
            "type": "Conv2DTranspose",
            "name": "tr_k3s2",
            "inputs": ["x"],
            "filters": 3,
            "kernel_size": [3, 2],
            "strides": [2, 3],
            "padding": "same",
        },
        {
            "type": "Conv2DTranspose",
            "name": "tr_dilated",
            "inputs": ["x"],
            "filters": 2,
            "kernel_size": 3,
            "dilation_rate": 2,
        },
        {
            "type": "UpSampling2D",
            "name": "bilinear",
            "inputs": ["x"],
            "size": [2, 3],
            "interpolation": "bilinear",
        },
        {"type": "UpSampling2D", "name": "nearest", "inputs": ["x"], "size": [3, 2]},
    ]
    outputs = [layer["name"] for layer in layers if layer["name"] != "pad"]
    return {"inputs": [{"name": "x", "shape": [8, 6, 4]}], "layers": layers, "outputs": outputs}


def _sequences():
    layers = [
        {"type": "Conv1D", "filters": 4, "kernel_size": 4, "padding": "same"},
        {"type": "BatchNormalization", "epsilon": 0.01, "momentum": 0.9},
        {"type": "AveragePooling1D", "pool_size": 2, "strides": 1, "padding": "same"},
        {"type": "MaxPooling1D", "pool_size": 2, "padding": "same"},
        {"type": "Dense", "units": 6, "activation": "relu"},
        {"type": "LayerNormalization", "epsilon": 1e-5},
        {"type": "Conv1D", "filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
        {"type": "GlobalAveragePooling1D"},
        {"type": "Dense", "units": 5},
        {"type": "BatchNormalization"},
        {"type": "Dropout", "rate": 0.5},
    ]
    return {"inputs": [{"name": "x", "shape": [9, 2]}], "layers": layers}


def _merges():
    layers = [
        {"type": "Subtract", "name": "sub", "inputs": ["a", "b"]},
        {"type": "Multiply", "name": "mul", "inputs": ["a", "b", "sub"]},
        {"type": "Average", "name": "avg", "inputs": ["a", "b", "mul"]},
        {"type": "Maximum", "name": "maxi", "inputs": ["a", "sub", "avg"]},
        {"type": "Minimum", "name": "mini", "inputs": ["b", "maxi"]},
        {"type": "Conv2D", "name": "conv", "inputs": ["mini"], "filters": 2, "kernel_size": 1},
        {"type": "Add", "name": "add", "inputs": ["conv", "a"]},
        {"type": "Concatenate", "name": "cat_h", "inputs": ["add", "b"], "axis": 1},
        {"type": "Dense", "name": "per_pixel", "units": 3},
        {"type": "LayerNormalization", "name": "ln"},
        {"type": "Conv2D", "name": "conv_again", "filters": 2, "kernel_size": 3},
        {"type": "Reshape", "name": "to_seq", "target_shape": [-1, 2]},
        {"type": "Conv1D", "name": "seq_conv", "filters": 2, "kernel_size": 2},
        {"type": "Flatten", "name": "flat"},
    ]
    shape = [4, 4, 2]
    return {"inputs": [{"name": "a", "shape": shape}, {"name": "b", "shape": shape}],
            "layers": layers, "outputs": ["flat", "cat_h"]}  # fmt: skip


def _folded_padding():
    """ZeroPadding2D that the PyTorch target folds into the padding of the convolution or
    max pooling that follows (a ResNet stem), and paddings it must keep: asymmetric, before
    max pooling of possibly negative values, and one with two consumers."""
    layers = [
        {"type": "ZeroPadding2D", "name": "stem_pad", "padding": 3},
        {"type": "Conv2D", "name": "stem", "filters": 4, "kernel_size": 7, "strides": 2},
        {"type": "BatchNormalization", "name": "stem_bn"},
        {"type": "ReLU", "name": "stem_relu"},
        {"type": "ZeroPadding2D", "name": "pool_pad", "padding": 1},
        {"type": "MaxPooling2D", "name": "pool", "pool_size": 3, "strides": 2},
        {"type": "ZeroPadding2D", "name": "dw_pad", "padding": [1, 2]},
        {"type": "DepthwiseConv2D", "name": "dw", "kernel_size": [3, 5], "padding": "same"},
        {"type": "ZeroPadding2D", "name": "neg_pad", "padding": 1},
        {"type": "MaxPooling2D", "name": "neg_pool", "pool_size": 3, "strides": 1},
        {"type": "ZeroPadding2D", "name": "uneven", "padding": [[0, 1], [0, 1]]},
        {"type": "SeparableConv2D", "name": "sep", "filters": 3, "kernel_size": 3, "strides": 2},
        {"type": "ZeroPadding2D", "name": "shared", "padding": 1},
        {"type": "Conv2D", "name": "branch", "filters": 3, "kernel_size": 3},
        {"type": "Conv2D", "name": "other", "inputs": ["shared"], "filters": 3, "kernel_size": 3},
        {"type": "Add", "name": "sum", "inputs": ["branch", "other"]},
    ]
    return {"inputs": [{"name": "x", "shape": [20, 18, 3]}], "layers": layers}


ZOO = {
    "zoo_folded_padding": _folded_padding,
    "zoo_activations": _relus,
    "zoo_pooling": _pools,
    "zoo_convolutions": _convs,
    "zoo_sequences": _sequences,
    "zoo_merges": _merges,
}


def _model(case: str):
    if case in ZOO:
        data = {"version": 1, "name": case, **ZOO[case]()}
        result = check_data(data, file=f"{case}.yaml")
    else:
        result = check_file(ROOT / "specs" / case)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def _module(code: str, name: str):
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(code, f"<{name}>", "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def frameworks():
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return keras, torch


def _build(model, torch):
    keras_model = _module(generate(model, "keras"), f"k_{model.name}").build_model()
    tp = plan(model)
    torch_model = getattr(_module(generate(model, "pytorch"), f"t_{model.name}"), tp.class_name)()
    torch_model.eval()
    return keras_model, torch_model, tp


CASES = [p.name for p in SPECS] + list(ZOO)
#: layers whose module's output is not the layer's (two directions merged; a position
#: table read directly; steps folded into the batch): their output is compared below
WRAPPED = {"Bidirectional", "PositionEmbedding", "TimeDistributed"}


@pytest.mark.parametrize("case", CASES)
def test_same_counts_shapes_and_outputs(case, frameworks):
    skip_if_torch_refused(case)
    keras, torch = frameworks
    model = _model(case)
    keras_model, torch_model, tp = _build(model, torch)

    # parameters, counted the Keras way on both sides
    assert keras_model.count_params() == model.total_params
    params = sum(p.numel() for p in torch_model.parameters())
    trainable = sum(p.numel() for p in torch_model.parameters() if p.requires_grad)
    stats = sum(t.numel() for _, w, t in W.torch_tensors(torch_model, model) if not w.trainable)
    assert params + stats == model.total_params
    assert trainable == model.trainable_params
    assert stats == model.non_trainable_params

    # every Keras layer's output shape
    for layer in model.layers:
        assert tuple(keras_model.get_layer(layer.name).output.shape[1:]) == layer.output_shape

    # every torch module's output shape (channels-first where the layer works so)
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen.setdefault(name, tuple(output.shape[1:]))  # the first call (see avg pooling)

        return hook

    for lp in tp.layers:
        if lp.lowering.modules and lp.layer.type not in WRAPPED:
            last = lp.lowering.modules[-1].suffix
            getattr(torch_model, lp.attributes[last]).register_forward_hook(record(lp.layer.name))

    rng = np.random.default_rng(0)
    ids = _inputs(model, 3, 0)  # token ids below the vocabulary, for integer inputs
    inputs = [
        rng.normal(size=(3, *t.shape)).astype(np.float32) if t.dtype == "float32" else i
        for t, i in zip(model.inputs, ids)
    ]
    weights = W.random_weights(model, seed=1)
    W.to_keras(keras_model, model, weights)
    W.to_torch(torch_model, model, weights)
    keras_out = keras_model(inputs if len(inputs) > 1 else inputs[0], training=False)
    with torch.no_grad():
        torch_out = torch_model(*(torch.from_numpy(x) for x in inputs))
    keras_out = keras_out if isinstance(keras_out, (list, tuple)) else [keras_out]
    torch_out = torch_out if isinstance(torch_out, tuple) else (torch_out,)

    for lp in tp.layers:
        if not lp.lowering.modules or lp.layer.type in WRAPPED:
            continue
        shape = lp.layer.output_shape
        if lp.layout == lw.CF and len(shape) >= 2:
            shape = (shape[-1], *shape[:-1])
        got = seen[lp.layer.name]
        if any(isinstance(step, lw.Slice) for step in lp.lowering.steps):  # cropped after
            assert got[0] == shape[0] and all(g >= s for g, s in zip(got[1:], shape[1:]))
        else:
            assert got == shape, lp.layer.name

    assert len(keras_out) == len(torch_out) == len(model.outputs)
    for name, k, t in zip(model.outputs, keras_out, torch_out):
        k, t = np.asarray(k), t.numpy()
        assert k.shape == t.shape == (3, *model.shape_of(name)), name
        diff = float(np.abs(k - t).max())
        assert diff <= TOLERANCE, f"{name}: max abs difference {diff:.3g}"
        assert float(np.abs(k).max()) > 1e-3  # not trivially zero

    # the canonical layout round-trips through both frameworks
    for key, array in W.from_keras(keras_model, model).items():
        np.testing.assert_array_equal(array, weights[key], err_msg=key)
    for key, array in W.from_torch(torch_model, model).items():
        np.testing.assert_array_equal(array, weights[key], err_msg=key)


@pytest.mark.parametrize("case", ["mobilenet_block.yaml", "zoo_convolutions"])
def test_torch_initializers_follow_keras(case, frameworks):
    """Fresh torch weights have Keras's distributions (Keras fans, truncation), e.g. for
    depthwise kernels whose torch fans differ from Keras's."""
    keras, torch = frameworks
    model = _model(case)
    keras_model, torch_model, _ = _build(model, torch)
    torch.manual_seed(0)
    torch_model.reset_parameters()
    ours = W.from_torch(torch_model, model)
    theirs = W.from_keras(keras_model, model)
    for key, array in theirs.items():
        if array.size < 200 or not key.endswith("kernel"):
            continue
        ratio = float(ours[key].std() / array.std())
        assert 0.85 < ratio < 1.15, (key, ratio)
        assert float(np.abs(ours[key]).max()) <= float(np.abs(array).max()) * 1.1, key


def test_weights_file_round_trip(tmp_path, frameworks):
    model = _model("residual_block.yaml")
    weights = W.random_weights(model, seed=3)
    path = tmp_path / "w.npz"
    W.save(path, weights)
    loaded = W.load(path)
    assert list(loaded) == list(weights)
    assert "stem/kernel" in loaded and loaded["stem/kernel"].shape == (3, 3, 3, 16)
    assert loaded["stem_bn/moving_variance"].shape == (16,)
    with pytest.raises(ValueError, match="missing"):
        W.check(model, {k: v for k, v in weights.items() if k != "stem/kernel"})
