"""Random valid specs (hypothesis: stacks and graphs over every layer type) compiled to every
target: the generated Keras and PyTorch code builds with specc's shapes and parameter counts,
the two agree numerically on the same weights, and the ONNX graph passes the checker and
strict shape inference with specc's shapes.

The specs come from the Keras differential generator of tests/test_properties.py (each layer
there was already accepted by both specc and Keras).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from specc import weights as W
from specc.codegen import CodegenError, generate
from specc.pipeline import check_data
from specc.runner.run import import_generated

from .test_properties import PROFILE, grown_spec
from .test_properties import keras as keras  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow
np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

COUNTER = iter(range(10**9))


def _torch_counted_like_keras(module) -> int:
    """Parameters plus the buffers holding Keras's non-trainable weights (BatchNorm's running
    statistics, Normalization's mean/variance/count); torch's own step counter is not one."""
    params = sum(p.numel() for p in module.parameters())
    stats = sum(
        b.numel()
        for name, b in module.named_buffers(remove_duplicate=True)
        if not name.endswith("num_batches_tracked")
    )
    return params + stats


def check_all_targets(keras, spec_dict: dict) -> None:
    from hypothesis import note

    note(f"spec: {spec_dict}")
    result = check_data(spec_dict)
    assert result.ok, [d.format() for d in result.diagnostics]
    model = result.model
    assume(all(t.dtype == "float32" for t in model.inputs))
    try:
        torch_code = generate(model, "pytorch")
    except CodegenError:
        assume(False)  # a combination the torch target refuses up front (tested elsewhere)
    n = next(COUNTER)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "k.py").write_text(generate(model, "keras"))
        (Path(folder) / "t.py").write_text(torch_code)
        kmodel = import_generated(Path(folder) / "k.py", f"rand_k{n}").build_model()
        tmodule = import_generated(Path(folder) / "t.py", f"rand_t{n}")
    # Keras: every layer's output shape and parameter count as specc says
    assert kmodel.count_params() == model.total_params
    for layer in model.layers:
        built = kmodel.get_layer(layer.name)
        assert tuple(built.output.shape[1:]) == layer.output_shape, layer.name
        assert built.count_params() == layer.params, layer.name
    # PyTorch: parameter count (+ BN statistics), then the same outputs on the same weights
    from specc.codegen.pyformat import class_name

    net = getattr(tmodule, class_name(model.name))()
    assert _torch_counted_like_keras(net) == model.total_params
    weights = W.random_weights(model, seed=n)
    W.to_keras(kmodel, model, weights)
    W.to_torch(net, model, weights)
    rng = np.random.default_rng(n)
    # batch 101, larger than any generated size: Keras broadcasts inputs of different ranks
    # differently when the batch size equals a feature size (it right-aligns them, so its
    # result depends on the batch size); specc follows its expand_dims(x, 1) rule
    inputs = [rng.normal(size=(101, *t.shape)).astype("float32") for t in model.inputs]
    k_out = kmodel(inputs if len(inputs) > 1 else inputs[0], training=False)
    k_out = [np.asarray(o) for o in (k_out if isinstance(k_out, (list, tuple)) else [k_out])]
    net.eval()
    with torch.no_grad():
        t_out = net(*(torch.from_numpy(x) for x in inputs))
    t_out = [o.numpy() for o in (t_out if isinstance(t_out, tuple) else [t_out])]
    for a, b in zip(k_out, t_out, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
    # ONNX: checker + strict shape inference equal specc's shapes for every layer
    pytest.importorskip("onnx")
    from specc.targets.onnx.graph import build_onnx, verify_onnx

    assert verify_onnx(build_onnx(model, weights, check=False), model) == []


@PROFILE
@given(data=st.data())
def test_random_stacks_compile_to_every_target(keras, data):  # noqa: F811
    spec_dict, _ = grown_spec(data, keras, dag=False)
    check_all_targets(keras, spec_dict)


@PROFILE
@given(data=st.data())
def test_random_graphs_compile_to_every_target(keras, data):  # noqa: F811
    spec_dict, _ = grown_spec(data, keras, dag=True)
    check_all_targets(keras, spec_dict)


def test_layers_after_a_refused_layer_do_not_crash_the_torch_target():
    # found by the random stacks above: a KeyError in the torch plan instead of the refusal
    spec = {
        "version": 1,
        "name": "fuzz",
        "inputs": [{"name": "x", "shape": [1, 1, 1]}],
        "layers": [
            {"type": "Reshape", "target_shape": [1, -1]},
            {"type": "LayerNormalization", "center": True, "scale": False, "name": "ln"},
            {"type": "Activation", "activation": "linear"},
        ],
    }
    with pytest.raises(CodegenError) as info:
        generate(check_data(spec).model, "pytorch")
    (diag,) = info.value.diagnostics
    assert diag.layer.startswith("layers[1]") and "'ln'" in diag.layer
    assert "center without scale" in diag.message
