"""The ONNX target (specc.targets.onnx): checker, strict shape inference, onnxruntime runs,
equality with Keras on the same weights, and refused requests.

Golden text views are tests/cases/<spec stem>/onnx.txt, checked by tests/test_goldens.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from specc.api import load, loads
from specc.diagnostics import SpecError

from .conftest import ROOT, SPECS, skip_if_torch_refused

CASES = ROOT / "tests" / "cases"
TOLERANCE = 1e-5


def _scaled_error(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b| / max(1, |b|): an absolute 1e-5 on unit-scale values, relative on large
    ones (the exponential activation reaches e^4; float32 rounding scales with the value)."""
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


# Small specs that exercise every layer type and option the bundled specs leave out.
COVERAGE = {
    "activations": """
        version: 1
        name: activations
        inputs: [{name: x, shape: [5, 6, 4]}]
        layers:
          - {type: Conv2D, name: conv, filters: 6, kernel_size: 3, padding: same}
          - {type: Dense, name: dense, inputs: [x], units: 6}
          %(acts)s
        outputs: [%(outs)s]
    """,
    "relus": """
        version: 1
        name: relus
        inputs: [{name: x, shape: [4, 5, 3]}]
        layers:
          - {type: Conv2D, name: conv, filters: 4, kernel_size: 1}
          - {type: ReLU, name: r_plain, inputs: [conv]}
          - {type: ReLU, name: r_cap, inputs: [conv], max_value: 0.5}
          - {type: ReLU, name: r_slope, inputs: [conv], negative_slope: 0.1}
          - {type: ReLU, name: r_thr, inputs: [conv], threshold: 0.2}
          - {type: ReLU, name: r_all, inputs: [conv], max_value: 0.6, negative_slope: 0.2, threshold: 0.1}
          - {type: ReLU, name: r_cap_slope, inputs: [conv], max_value: 0.6, negative_slope: 0.3}
          - {type: ReLU, name: r_thr_slope, inputs: [conv], negative_slope: 0.05, threshold: 0.3}
          - {type: LeakyReLU, name: leaky_default, inputs: [conv]}
          - {type: LeakyReLU, name: leaky, inputs: [conv], negative_slope: 0.01}
          - {type: Softmax, name: sm_last, inputs: [conv]}
          - {type: Softmax, name: sm_h, inputs: [conv], axis: 1}
          - {type: Softmax, name: sm_w_cl, inputs: [x], axis: 2}
        outputs: [r_plain, r_cap, r_slope, r_thr, r_all, r_cap_slope, r_thr_slope, leaky_default, leaky, sm_last, sm_h, sm_w_cl]
    """,
    "norms": """
        version: 1
        name: norms
        inputs: [{name: x, shape: [6, 5, 4]}, {name: v, shape: [7]}]
        layers:
          - {type: Conv2D, name: conv, inputs: [x], filters: 4, kernel_size: 1}
          - {type: BatchNormalization, name: bn_c, inputs: [conv], epsilon: 0.01}
          - {type: BatchNormalization, name: bn_h, inputs: [conv], axis: 1, momentum: 0.9}
          - {type: BatchNormalization, name: bn_plain, inputs: [conv], center: false, scale: false}
          - {type: BatchNormalization, name: bn_vec, inputs: [v]}
          - {type: LayerNormalization, name: ln_c, inputs: [conv]}
          - {type: LayerNormalization, name: ln_w, inputs: [x], axis: 2, epsilon: 0.00001}
          - {type: LayerNormalization, name: ln_plain, inputs: [v], center: false, scale: false}
        outputs: [bn_c, bn_h, bn_plain, bn_vec, ln_c, ln_w, ln_plain]
    """,
    "convs": """
        version: 1
        name: convs
        inputs: [{name: x, shape: [9, 7, 4]}, {name: s, shape: [11, 3]}]
        layers:
          - {type: Conv2D, name: grouped, inputs: [x], filters: 6, kernel_size: 3, groups: 2}
          - {type: Conv2D, name: dilated, inputs: [x], filters: 3, kernel_size: 3, dilation_rate: [2, 1]}
          - {type: Conv2D, name: same_s2, inputs: [x], filters: 3, kernel_size: 3, strides: 2, padding: same}
          - {type: Conv2D, name: same_k4_s3, inputs: [x], filters: 3, kernel_size: [4, 2], strides: 3, padding: same}
          - {type: Conv2D, name: same_dilated, inputs: [x], filters: 3, kernel_size: 2, dilation_rate: 2, padding: same}
          - {type: DepthwiseConv2D, name: dw, inputs: [x], kernel_size: 3, strides: 2, padding: same, depth_multiplier: 2}
          - {type: DepthwiseConv2D, name: dw_valid, inputs: [x], kernel_size: [2, 3], use_bias: false}
          - {type: SeparableConv2D, name: sep, inputs: [x], filters: 5, kernel_size: 3, strides: 2, padding: same, depth_multiplier: 2, use_bias: false}
          - {type: SeparableConv2D, name: sep_dilated, inputs: [x], filters: 5, kernel_size: 2, dilation_rate: 2}
          - {type: Conv2DTranspose, name: tr_same, inputs: [x], filters: 3, kernel_size: 3, strides: 2, padding: same}
          - {type: Conv2DTranspose, name: tr_k4, inputs: [x], filters: 3, kernel_size: 4, strides: 2, padding: same}
          - {type: Conv2DTranspose, name: tr_k1_same, inputs: [x], filters: 3, kernel_size: 1, strides: 2, padding: same}
          - {type: Conv2DTranspose, name: tr_k1_valid, inputs: [x], filters: 3, kernel_size: 1, strides: [2, 3]}
          - {type: Conv2DTranspose, name: tr_valid, inputs: [x], filters: 3, kernel_size: [3, 2], strides: 2, use_bias: false}
          - {type: Conv1D, name: c1_same, inputs: [s], filters: 4, kernel_size: 4, strides: 2, padding: same}
          - {type: Conv1D, name: c1_dilated, inputs: [s], filters: 4, kernel_size: 3, dilation_rate: 3, padding: same, activation: relu}
        outputs: [grouped, dilated, same_s2, same_k4_s3, same_dilated, dw, dw_valid, sep, sep_dilated, tr_same, tr_k4, tr_k1_same, tr_k1_valid, tr_valid, c1_same, c1_dilated]
    """,
    "pools": """
        version: 1
        name: pools
        inputs: [{name: x, shape: [7, 9, 3]}, {name: s, shape: [11, 2]}]
        layers:
          - {type: AveragePooling2D, name: avg_same, inputs: [x], pool_size: 3, strides: 2, padding: same}
          - {type: AveragePooling2D, name: avg_valid, inputs: [x], pool_size: [2, 3]}
          - {type: MaxPooling2D, name: max_same, inputs: [x], pool_size: 2, padding: same}
          - {type: MaxPooling2D, name: max_valid, inputs: [x], pool_size: 3, strides: [1, 2]}
          - {type: AveragePooling1D, name: avg1, inputs: [s], pool_size: 4, strides: 3, padding: same}
          - {type: MaxPooling1D, name: max1, inputs: [s], pool_size: 3, padding: same}
          - {type: GlobalAveragePooling2D, name: gap, inputs: [x]}
          - {type: GlobalMaxPooling2D, name: gmp_keep, inputs: [x], keepdims: true}
          - {type: GlobalAveragePooling1D, name: gap1_keep, inputs: [s], keepdims: true}
          - {type: GlobalMaxPooling1D, name: gmp1, inputs: [s]}
        outputs: [avg_same, avg_valid, max_same, max_valid, avg1, max1, gap, gmp_keep, gap1_keep, gmp1]
    """,
    "reshaping": """
        version: 1
        name: reshaping
        inputs: [{name: x, shape: [4, 5, 3]}]
        layers:
          - {type: Conv2D, name: conv, filters: 4, kernel_size: 1}
          - {type: ZeroPadding2D, name: pad_cf, inputs: [conv], padding: [[1, 2], [0, 3]]}
          - {type: ZeroPadding2D, name: pad_cl, inputs: [x], padding: [2, 1]}
          - {type: UpSampling2D, name: up_cf, inputs: [conv], size: [2, 3]}
          - {type: UpSampling2D, name: up_cl, inputs: [x], size: 3}
          - {type: UpSampling2D, name: bilinear, inputs: [conv], size: [2, 3], interpolation: bilinear}
          - {type: UpSampling2D, name: bilinear_cl, inputs: [x], size: 4, interpolation: bilinear}
          - {type: Reshape, name: reshaped, inputs: [conv], target_shape: [10, -1]}
          - {type: Flatten, name: flat, inputs: [conv]}
          - {type: Dense, name: dense3, inputs: [conv], units: 5, activation: tanh}
          - {type: Dense, name: dense3_nobias, inputs: [x], units: 2, use_bias: false}
          - {type: Dense, name: dense_nobias, inputs: [flat], units: 3, use_bias: false}
          - {type: Dropout, name: drop, inputs: [conv], rate: 0.5}
        outputs: [pad_cf, pad_cl, up_cf, up_cl, bilinear, bilinear_cl, reshaped, dense3, dense3_nobias, dense_nobias, drop]
    """,
    "merges": """
        version: 1
        name: merges
        inputs: [{name: x, shape: [4, 4, 3]}, {name: y, shape: [4, 4, 3]}]
        layers:
          - {type: Conv2D, name: a, inputs: [x], filters: 3, kernel_size: 1}
          - {type: Conv2D, name: b, inputs: [y], filters: 3, kernel_size: 1}
          - {type: Dense, name: d, inputs: [x], units: 3}
          - {type: Add, name: add3, inputs: [a, b, x]}
          - {type: Add, name: add_mixed, inputs: [d, a]}
          - {type: Subtract, name: sub, inputs: [a, d]}
          - {type: Multiply, name: mul3, inputs: [a, b, d]}
          - {type: Average, name: avg3, inputs: [a, b, y]}
          - {type: Maximum, name: maxi, inputs: [a, b]}
          - {type: Minimum, name: mini, inputs: [d, x, b]}
          - {type: Concatenate, name: cat_c, inputs: [a, d]}
          - {type: Concatenate, name: cat_h, inputs: [a, b], axis: 1}
          - {type: Concatenate, name: cat_w_cl, inputs: [x, y, d], axis: -2}
        outputs: [add3, add_mixed, sub, mul3, avg3, maxi, mini, cat_c, cat_h, cat_w_cl]
    """,
}


def _activations_spec() -> str:
    from specc.layers import ACTIVATIONS

    lines, outs = [], []
    for act in ACTIVATIONS:
        lines.append(f"- {{type: Activation, name: cf_{act}, inputs: [conv], activation: {act}}}")
        lines.append(
            f"- {{type: Dense, name: d_{act}, inputs: [dense], units: 3, activation: {act}}}"
        )
        outs += [f"cf_{act}", f"d_{act}"]
    text = textwrap.dedent(COVERAGE["activations"])
    return text % {"acts": "\n  ".join(lines), "outs": ", ".join(outs)}


def _model(name: str):
    if name in COVERAGE:
        text = _activations_spec() if name == "activations" else textwrap.dedent(COVERAGE[name])
        return loads(text)
    return load(ROOT / "specs" / name)


SPEC_NAMES = [p.name for p in SPECS]
ALL = SPEC_NAMES + sorted(COVERAGE)


def _session(proto):
    import onnxruntime as ort

    from specc.targets.onnx.graph import onnx_bytes

    return ort.InferenceSession(onnx_bytes(proto), providers=["CPUExecutionProvider"])


def _feeds(model, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    from specc.crosscheck import _inputs

    rng = np.random.default_rng(seed)
    ids = dict(zip([t.name for t in model.inputs], _inputs(model, batch, seed)))
    return {
        t.name: rng.standard_normal((batch, *t.shape)).astype(np.float32)
        if t.dtype == "float32"
        else ids[t.name]  # token ids below the vocabulary
        for t in model.inputs
    }


# --------------------------------------------------------------------------- no onnx import


def test_import_and_validate_do_not_import_onnx():
    code = (
        "import sys, specc, specc.targets.onnx.graph\n"
        "r = specc.check_file('specs/residual_block.yaml'); assert r.ok\n"
        "bad = [m for m in ('onnx', 'onnxruntime', 'tensorflow', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# --------------------------------------------------------------------------- structure


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_checker_and_strict_shapes(name):
    import onnx

    from specc.targets.onnx.graph import layer_layouts, onnx_bytes

    model = _model(name)
    proto = _build(model)
    onnx.checker.check_model(proto, full_check=True)
    # infer from the inputs alone (declared output shapes removed), strictly
    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    for value in bare.graph.output:
        value.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(bare, strict_mode=True)
    shapes = {
        v.name: tuple(d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim)
        for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    layouts = layer_layouts(model)
    for layer in model.layers:
        want = ("batch", *layer.output_shape)
        value = layer.name
        if layouts[layer.name] == "cf":  # stored channels-first: (batch, C, spatial...)
            want = ("batch", want[-1], *want[1:-1])
            if layer.name in model.outputs:
                value = f"{layer.name}/cf"
                assert shapes[layer.name] == ("batch", *layer.output_shape)
        assert shapes[value] == want, (layer.name, layouts[layer.name])
    # graph interface: names from the spec, channels-last, symbolic batch
    assert [i.name for i in proto.graph.input] == [t.name for t in model.inputs]
    assert [o.name for o in proto.graph.output] == model.outputs
    for value, shape in zip(proto.graph.input, [t.shape for t in model.inputs]):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
        assert tuple(d.dim_value for d in dims[1:]) == tuple(shape)
    assert onnx_bytes(_build(model)) == onnx_bytes(proto)  # deterministic


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_runs_in_onnxruntime_with_batch_1_and_7(name):
    model = _model(name)
    session = _session(_build(model))
    assert [i.name for i in session.get_inputs()] == [t.name for t in model.inputs]
    for batch in (1, 7):
        outputs = session.run(None, _feeds(model, batch))
        assert [o.shape for o in outputs] == [(batch, *model.shape_of(n)) for n in model.outputs]
        assert all(np.isfinite(o).all() for o in outputs)


def _build(model, **kwargs):
    from specc.targets.onnx.graph import build_onnx

    return build_onnx(model, **kwargs)


# --------------------------------------------------------------------------- Keras


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def _keras_model(model):
    """The Keras model of the IR, built layer by layer from the layers' Keras data."""
    keras = _keras()
    tensors = {t.name: keras.Input(shape=t.shape, name=t.name, dtype=t.dtype) for t in model.inputs}
    from specc.targets.keras.codegen import keras_apply, keras_layer

    for layer in model.layers:
        obj = keras_layer(keras, layer.spec, layer.name)
        tensors[layer.name] = keras_apply(obj, layer.spec, [tensors[n] for n in layer.inputs])
    return keras.Model(
        inputs=[tensors[t.name] for t in model.inputs],
        outputs=[tensors[n] for n in model.outputs],
    )


def _randomize(keras_model, model, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for every Keras variable (moving variances positive); returns the
    canonical dict, keyed '<layer>/<declared weight name>' (Keras's variable order)."""
    rng = np.random.default_rng(seed)
    weights = {}
    from specc import weights as canonical

    for key, variable in canonical.keras_variables(keras_model, model):
        shape = tuple(variable.shape)
        if variable.name in ("gamma", "moving_variance", "variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif variable.name == "count":  # Normalization's sample count (an integer)
            value = np.zeros(shape)
        elif len(shape) == 1:
            value = rng.normal(0.0, 0.3, shape)
        else:
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        variable.assign(value.astype(np.float32))
        weights[key] = value.astype(np.float32)
    for layer in keras_model.layers:
        if hasattr(layer, "finalize_state"):  # Normalization reads its variables once
            layer.finalize_state()
    return weights


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_onnxruntime_equals_keras(name):
    model = _model(name)
    keras_model = _keras_model(model)
    weights = _randomize(keras_model, model)
    feeds = _feeds(model, 7, seed=1)
    want = keras_model.predict([feeds[t.name] for t in model.inputs], verbose=0)
    want = want if isinstance(want, list) else [want]
    got = _session(_build(model, weights=weights)).run(None, feeds)
    for output, a, b in zip(model.outputs, got, want):
        assert a.shape == b.shape, output
        error = _scaled_error(a, np.asarray(b))
        assert error <= TOLERANCE, f"{output}: max abs difference {error:.3g} (scaled)"


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_onnxruntime_equals_generated_pytorch(name):
    """The issue's other reference: the PyTorch module specc generates, same weights."""
    skip_if_torch_refused(name)
    import importlib.util

    from specc import weights as canonical
    from specc.codegen import generate
    from specc.targets.pytorch.codegen import plan

    torch = pytest.importorskip("torch")
    model = _model(name)
    try:
        code = generate(model, "pytorch")
    except SpecError as exc:  # a layer option the PyTorch target refuses
        pytest.skip(f"the PyTorch target refuses this spec: {exc}")
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("m", loader=None))
    exec(compile(code, f"<torch {name}>", "exec"), module.__dict__)
    torch_model = getattr(module, plan(model).class_name)().eval()
    weights = canonical.random_weights(model, seed=2)
    canonical.to_torch(torch_model, model, weights)
    feeds = _feeds(model, 7, seed=3)
    with torch.no_grad():
        want = torch_model(*(torch.from_numpy(feeds[t.name]) for t in model.inputs))
    want = want if isinstance(want, tuple) else (want,)
    got = _session(_build(model, weights=weights)).run(None, feeds)
    for output, a, b in zip(model.outputs, got, want):
        error = _scaled_error(a, b.numpy())
        assert error <= TOLERANCE, f"{output}: max abs difference {error:.3g} (scaled)"


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_initializers_are_the_declared_weights(name):
    """Every declared weight is one initializer ``<layer>.<param>``, in the layout its
    declaration gives ONNX; no other initializer carries a weight's name."""
    from specc import weights as canonical

    model = _model(name)
    proto = _build(model)
    inits = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    for layer, w in canonical.declared(model):
        if layer.type == "Normalization" and w.name == "count":
            continue  # kept by Keras for old saved models; inference does not read it
        converted = canonical.to_target(np.zeros(w.shape, np.float32), w, "onnx")
        assert inits[f"{layer.name}.{w.name}"] == converted.shape
    total = sum(w.size for _, w in canonical.declared(model))
    assert total == model.total_params


# --------------------------------------------------------------------------- opsets


def _outputs_at(model, opset, feeds):
    weights = None
    return _session(_build(model, weights=weights, opset=opset)).run(None, feeds)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["activations", "norms", "residual_block.yaml", "reshaping"])
def test_every_opset_gives_the_same_outputs(name):
    import onnx

    model = _model(name)
    feeds = _feeds(model, 3)
    reference = _outputs_at(model, 17, feeds)
    needs_17 = any(layer.type == "LayerNormalization" for layer in model.layers)
    opsets = [13, 16, 18, 20, 21, onnx.defs.onnx_opset_version()]
    for opset in opsets:
        if needs_17 and opset < 17:
            with pytest.raises(
                SpecError, match=f"needs opset >= 17, the model is built for opset {opset}"
            ):
                _build(model, opset=opset)
            continue
        for a, b in zip(_outputs_at(model, opset, feeds), reference):
            assert np.max(np.abs(a - b)) <= TOLERANCE, opset


@pytest.mark.slow
def test_gelu_uses_the_operator_from_opset_20():
    model = _model("activations")
    ops17 = {n.op_type for n in _build(model, opset=17).graph.node}
    ops20 = {n.op_type for n in _build(model, opset=20).graph.node}
    assert "Gelu" not in ops17 and "Erf" in ops17
    assert "Gelu" in ops20 and "Erf" not in ops20


# --------------------------------------------------------------------------- metadata, init


@pytest.mark.slow
def test_metadata_and_doc_string():
    import hashlib
    import json

    import specc

    model = load(ROOT / "specs" / "mobilenet_block.yaml")
    proto = _build(model)
    props = {p.key: p.value for p in proto.metadata_props}
    digest = hashlib.sha256(json.dumps(model.to_dict(), sort_keys=True).encode()).hexdigest()
    assert props == {
        "specc.spec_name": "mobilenet_tiny",
        "specc.version": specc.__version__,
        "specc.spec_sha256": digest,
    }
    assert proto.doc_string == model.description
    assert proto.producer_name == "specc"
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]


@pytest.mark.slow
def test_seeded_initialization():
    from onnx import numpy_helper

    model = load(ROOT / "specs" / "mobilenet_block.yaml")
    a = {t.name: numpy_helper.to_array(t) for t in _build(model, seed=0).graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in _build(model, seed=1).graph.initializer}
    assert not np.array_equal(a["conv0.kernel"], b["conv0.kernel"])
    # glorot_uniform: limit sqrt(6 / (fan_in + fan_out)), Keras fans of (3, 3, 3, 16)
    limit = np.sqrt(6 / (3 * 3 * 3 + 3 * 3 * 16))
    assert a["conv0.kernel"].shape == (16, 3, 3, 3)  # OIHW
    assert 0.8 * limit < np.abs(a["conv0.kernel"]).max() <= limit
    assert np.array_equal(a["conv0_bn.gamma"], np.ones(16, np.float32))
    assert np.array_equal(a["conv0_bn.beta"], np.zeros(16, np.float32))
    assert np.array_equal(a["conv0_bn.moving_mean"], np.zeros(16, np.float32))
    assert np.array_equal(a["conv0_bn.moving_variance"], np.ones(16, np.float32))
    assert np.array_equal(a["dw2.bias"], np.zeros(64, np.float32))


@pytest.mark.slow
def test_given_weights_are_used_in_onnx_layout():
    from onnx import numpy_helper

    from specc.weights import declared

    model = load(ROOT / "specs" / "mobilenet_block.yaml")
    rng = np.random.default_rng(0)
    weights = {
        f"{layer.name}/{p.name}": rng.standard_normal(p.shape).astype(np.float32)
        for layer, p in declared(model)
    }
    inits = {
        t.name: numpy_helper.to_array(t) for t in _build(model, weights=weights).graph.initializer
    }
    np.testing.assert_array_equal(
        inits["conv0.kernel"], weights["conv0/kernel"].transpose(3, 2, 0, 1)
    )
    dw = weights["dw2/kernel"]  # (3, 3, 32, 2) -> (64, 1, 3, 3), output channel c*2 + m
    assert inits["dw2.kernel"].shape == (64, 1, 3, 3)
    np.testing.assert_array_equal(inits["dw2.kernel"][2 * 5 + 1, 0], dw[:, :, 5, 1])
    np.testing.assert_array_equal(inits["classifier.kernel"], weights["classifier/kernel"])


# --------------------------------------------------------------------------- bad requests


@pytest.mark.slow
@pytest.mark.parametrize("opset", [6, 12, 99, "17", True, None])
def test_unknown_or_too_old_opset_is_refused(opset):
    model = load(ROOT / "specs" / "mnist_cnn.yaml")
    with pytest.raises(SpecError) as info:
        _build(model, opset=opset)
    text = str(info.value)
    assert f"opset {opset!r} is not supported" in text
    assert "builds opsets 13 to" in text
    assert info.value.diagnostics[0].code == "onnx-opset"


@pytest.mark.slow
def test_layer_needing_a_newer_opset_is_refused():
    model = load("specs/two_inputs_two_outputs.yaml")  # the cwd is the repository
    with pytest.raises(SpecError) as info:
        _build(model, opset=16)
    (diag,) = info.value.diagnostics
    assert diag.layer == "layers[5] LayerNormalization 'hidden_norm'"
    assert diag.file == "specs/two_inputs_two_outputs.yaml"
    assert "needs opset >= 17" in diag.message and "opset 16" in diag.message
    assert diag.format().startswith(
        "specs/two_inputs_two_outputs.yaml:15:5: error: layers[5] LayerNormalization 'hidden_norm': "
    )


def _seeded_weights(model):
    from specc.targets.onnx.graph import _weights_for

    return _weights_for(model, None, 0)


@pytest.mark.slow
def test_weights_with_a_missing_key_are_refused():
    model = load(ROOT / "specs" / "mnist_cnn.yaml")
    weights = _seeded_weights(model)
    del weights["conv2d_1/kernel"]
    with pytest.raises(SpecError) as info:
        _build(model, weights=weights)
    (diag,) = info.value.diagnostics
    assert diag.layer == "layers[2] Conv2D 'conv2d_1'"
    assert diag.message == (
        "the weights have no 'conv2d_1/kernel' (expected shape (3, 3, 32, 64), Keras layout "
        "(kh, kw, in_channels/groups, filters))"
    )


@pytest.mark.slow
def test_weights_with_wrong_shapes_or_extra_keys_are_refused():
    model = load(ROOT / "specs" / "mobilenet_block.yaml")
    weights = _seeded_weights(model)
    weights["conv0/kernel"] = weights["conv0/kernel"].transpose(3, 2, 0, 1)  # torch layout
    weights["dw2_bn/gamma"] = np.ones(3, np.float32)
    weights["pw1/bias"] = np.zeros(32, np.float32)  # pw1 has use_bias: false
    with pytest.raises(SpecError) as info:
        _build(model, weights=weights)
    messages = [(d.layer, d.message) for d in info.value.diagnostics]
    assert messages == [
        (
            "layers[0] Conv2D 'conv0'",
            "weight 'conv0/kernel' has shape (16, 3, 3, 3), expected (3, 3, 3, 16) "
            "(Keras layout (kh, kw, in_channels/groups, filters))",
        ),
        (
            "layers[10] BatchNormalization 'dw2_bn'",
            "weight 'dw2_bn/gamma' has shape (3,), expected (64,) (Keras layout (channels,))",
        ),
        (None, "the weights have 'pw1/bias', which is not a weight of this spec"),
    ]


@pytest.mark.slow
def test_integer_weights_are_refused():
    model = load(ROOT / "specs" / "mnist_mlp.json")
    weights = _seeded_weights(model)
    weights["dense/bias"] = np.zeros(512, np.int64)
    with pytest.raises(SpecError, match="has dtype int64, expected a floating-point array"):
        _build(model, weights=weights)


@pytest.mark.slow
def test_write_onnx_writes_nothing_for_a_refused_request(tmp_path):
    import onnx

    from specc.targets.onnx.graph import onnx_bytes, write_onnx

    model = load(ROOT / "specs" / "mnist_mlp.json")
    target = tmp_path / "model.onnx"
    with pytest.raises(SpecError):
        write_onnx(model, target, opset=99)
    weights = _seeded_weights(model)
    weights["dense/kernel"] = weights["dense/kernel"][:10]
    with pytest.raises(SpecError):
        write_onnx(model, target, weights=weights)
    assert list(tmp_path.iterdir()) == []
    write_onnx(model, target)
    assert target.read_bytes() == onnx_bytes(_build(model))
    onnx.checker.check_model(str(target), full_check=True)
    write_onnx(model, tmp_path / "model.onnx.txt", text=True)
    assert (tmp_path / "model.onnx.txt").read_text().startswith("<\n   ir_version: 8,")


@pytest.mark.slow
def test_errors_are_located_with_the_parsed_source():
    from specc.pipeline import check_file

    result = check_file("specs/two_inputs_two_outputs.yaml")
    with pytest.raises(SpecError) as info:
        _build(result.model, opset=13, source=result.source)
    (diag,) = info.value.diagnostics
    line = next(
        n
        for n, text in enumerate((ROOT / result.source.file).read_text().splitlines(), start=1)
        if "hidden_norm" in text
    )
    assert (diag.file, diag.line) == ("specs/two_inputs_two_outputs.yaml", line)
    assert diag.column > 1
