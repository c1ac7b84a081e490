"""Sequence and attention layers without a framework: weight-layout transforms (gate orders),
the refusals located at their field, integer inputs in the PyTorch target, validation."""

from __future__ import annotations

import numpy as np
import pytest

from specc import check_data
from specc.codegen import CodegenError, generate
from specc.layers.base import Weight
from specc.weights import TRANSFORMS, from_target, initial_value, to_target


def _spec(layers, inputs=None):
    return {
        "version": 1,
        "name": "m",
        "inputs": inputs or [{"name": "x", "shape": [5, 3]}],
        "layers": layers,
    }


def test_lstm_gates_reach_onnx_in_its_order():
    """Keras LSTM columns are i, f, c, o blocks; ONNX's W rows are i, o, f, c."""
    units, features = 2, 3
    kernel = np.concatenate(
        [np.full((features, units), gate, np.float32) for gate in (1, 2, 3, 4)], axis=1
    )  # i=1, f=2, c=3, o=4
    w = Weight("kernel", kernel.shape, "glorot_uniform", transforms=(("onnx", "lstm_onnx"),))
    onnx = to_target(kernel, w, "onnx")
    assert onnx.shape == (1, 4 * units, features)
    assert [onnx[0, k * units, 0] for k in range(4)] == [1, 4, 2, 3]  # i, o, f, c
    np.testing.assert_array_equal(from_target(onnx, w, "onnx"), kernel)
    bias = np.array([1, 1, 2, 2, 3, 3, 4, 4], np.float32)
    b = Weight("bias", bias.shape, "zeros", transforms=(("onnx", "lstm_bias_onnx"),))
    onnx_b = to_target(bias, b, "onnx")
    assert onnx_b.tolist() == [[1, 1, 4, 4, 2, 2, 3, 3] + [0] * 8]  # Wb then Rb = 0
    np.testing.assert_array_equal(from_target(onnx_b, b, "onnx"), bias)


@pytest.mark.parametrize("shape", [(6,), (2, 6)])
def test_gru_bias_both_layouts_round_trip(shape):
    bias = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    w = Weight("bias", shape, "zeros", transforms=(("onnx", "gru_bias_onnx"),))
    onnx = to_target(bias, w, "onnx")
    assert onnx.shape == (1, 12)  # reset_after: both biases; else [b, 0]
    np.testing.assert_array_equal(from_target(onnx, w, "onnx"), bias)
    assert set(TRANSFORMS) >= {"rnn_onnx", "lstm_onnx", "rnn_bias_onnx", "lstm_bias_onnx"}


def test_keras_initializers_of_recurrent_and_embedding_weights():
    forget = initial_value("l/bias", Weight("bias", (8,), "unit_forget_bias"), 0)
    assert forget.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]  # i, f (ones), c, o
    q = initial_value("l/r", Weight("r", (4, 12), "orthogonal"), 0)
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-5)  # orthonormal rows
    table = initial_value("e/e", Weight("e", (50, 4), "uniform"), 0)
    assert np.abs(table).max() <= 0.05


def test_counts_as_keras():
    # LSTM: 4 * (units * (features + units) + units); GRU reset_after: 3 * units * (f + u + 2)
    layers = [
        {"type": "LSTM", "units": 4, "return_sequences": True},  # 4*(4*(3+4)+4) = 128
        {"type": "GRU", "units": 2, "return_sequences": True},  # 3*2*(4+2+2) = 48
        {"type": "GRU", "units": 2, "reset_after": False},  # 3*2*(2+2+1) = 30
    ]
    model = check_data(_spec(layers)).model
    assert [layer.params for layer in model.layers] == [128, 48, 30]
    assert [layer.output_shape for layer in model.layers] == [(5, 4), (5, 2), (2,)]
    bi = check_data(
        _spec([{"type": "Bidirectional", "layer": {"type": "SimpleRNN", "units": 2}}])
    ).model
    assert bi.layers[0].params == 2 * (2 * (3 + 2) + 2) and bi.layers[0].output_shape == (4,)


def test_bidirectional_inner_layer_takes_no_name():
    result = check_data(
        _spec([{"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2, "name": "x"}}])
    )
    assert not result.ok
    assert "no name or inputs" in result.errors[0].message


def test_integer_inputs_compile_to_pytorch_only_for_embedding():
    ids = [{"name": "ids", "shape": [7], "dtype": "int32"}]
    ok = check_data(_spec([{"type": "Embedding", "input_dim": 9, "output_dim": 2}], ids)).model
    assert "nn.Embedding(" in generate(ok, "pytorch")
    dense = check_data(_spec([{"type": "Dense", "units": 2}], ids)).model
    with pytest.raises(CodegenError) as err:
        generate(dense, "pytorch")
    assert "int32" in str(err.value) and "Embedding" in str(err.value)


def test_refusals_are_located_at_their_field():
    ids = [{"name": "ids", "shape": [7], "dtype": "int64"}]
    layers = [{"type": "Embedding", "input_dim": 9, "output_dim": 2, "mask_zero": True}]
    model = check_data(_spec(layers, ids)).model
    assert "embedding_mask = x != 0" in generate(model, "pytorch")  # carried as Keras does
    pytest.importorskip("onnx")
    from specc.diagnostics import SpecError
    from specc.targets import onnx

    assert onnx.TARGET.emit(model)  # the mask is computed in the graph; nothing uses it
    masked = check_data(_spec([*layers, {"type": "GRU", "units": 2}], ids)).model
    with pytest.raises(SpecError) as err:  # ONNX's GRU skips only trailing padding
        onnx.TARGET.emit(masked)
    assert "layers[1] GRU" in str(err.value) and "takes the mask of an Embedding" in str(err.value)
    rnn = check_data(_spec([{"type": "GRU", "units": 2, "recurrent_dropout": 0.1}])).model
    assert "recurrent_dropout=0.1" in generate(rnn, "keras")  # Keras runs it as written
    assert "recurrent_dropout=0.1" in generate(rnn, "pytorch")  # and so does the PyTorch module


RECURRENT = [
    {"type": "SimpleRNN", "units": 3},
    {"type": "LSTM", "units": 3},
    {"type": "GRU", "units": 3},
    {"type": "GRU", "units": 3, "reset_after": False},
    {"type": "LSTM", "units": 3, "use_bias": False, "go_backwards": True},
]


def _torch_rnn(layer, tmp_path, tag):
    from specc.targets.pytorch.runtime import TorchRuntime
    from specc.weights import initial_weights

    model = check_data(_spec([{**layer, "name": "rnn", "return_sequences": True}])).model
    runtime = TorchRuntime(model, tmp_path, tag)
    runtime.load(initial_weights(model, seed=2))
    return runtime.net


@pytest.mark.parametrize("layer", RECURRENT, ids=lambda spec: str(sorted(spec.items())))
def test_recurrent_dropout_masks_in_the_pytorch_helpers(layer, tmp_path):
    """Training with recurrent_dropout takes Keras's per-gate path; with every mask forced to
    ones it computes exactly what the plain path computes, and each mask is drawn once per
    sequence (not per step): gates x (input mask, state mask) calls for any sequence length."""
    torch = pytest.importorskip("torch")
    plain = _torch_rnn(layer, tmp_path, "_plain")
    masked = _torch_rnn({**layer, "dropout": 0.3, "recurrent_dropout": 0.4}, tmp_path, "_mask")
    x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0))
    helper = type(masked.rnn)
    calls = []
    original = helper.dropout_mask

    def ones(like, rate):
        calls.append(rate)
        return torch.ones_like(like)

    with torch.no_grad():
        masked.eval()  # inference: no masks at all
        torch.testing.assert_close(masked(x), plain(x), rtol=0, atol=0)
        masked.train()
        helper.dropout_mask = staticmethod(ones)
        try:
            forced = masked(x)
        finally:
            helper.dropout_mask = staticmethod(original)
        gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[layer["type"]]
        assert sorted(calls) == [0.3] * gates + [0.4] * gates
        torch.testing.assert_close(forced, plain(x), rtol=1e-6, atol=1e-6)
        torch.manual_seed(0)
        first = masked(x)
        torch.manual_seed(0)
        assert torch.equal(first, masked(x))  # seeded
        assert not torch.allclose(first, plain(x))  # the masks do drop units


def test_multi_head_attention_reads_two_or_three_inputs():
    spec = _spec(
        [{"type": "MultiHeadAttention", "inputs": ["x", "x"], "num_heads": 2, "key_dim": 3}]
    )
    model = check_data(spec).model
    # 4 projections: q, k, v (3 * 2 * 3 + 2 * 3 each), output (2 * 3 * 3 + 3)
    assert model.layers[0].params == 3 * (3 * 6 + 6) + (18 + 3)
    code = generate(model, "keras")
    assert "(x_, x_, use_causal_mask=False)" in code  # x_: the input variable
    one = _spec([{"type": "MultiHeadAttention", "inputs": ["x"], "num_heads": 1, "key_dim": 2}])
    assert not check_data(one).ok
