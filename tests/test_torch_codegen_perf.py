"""Generated PyTorch code shaped for speed, numerics unchanged: ZeroPadding2D folded into the
padding of the convolution or max pooling that follows where that is the same computation,
channels-last memory format end to end. Torch only (Keras agreement of the same spec:
tests/test_equivalence.py, case zoo_folded_padding)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from specc import weights as W
from specc.codegen import generate
from specc.pipeline import check_data
from specc.targets.pytorch import TARGET as TORCH_TARGET
from specc.targets.pytorch import codegen as torch_codegen
from tests.test_equivalence import _folded_padding

torch = pytest.importorskip("torch")


def _model():
    result = check_data({"version": 1, "name": "folded", **_folded_padding()}, file="f.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def _instance(code: str, model):
    spec = importlib.util.spec_from_loader("folded_net", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(code, "<folded_net>", "exec"), module.__dict__)
    net = getattr(module, torch_codegen.plan(model).class_name)()
    W.to_torch(net, model, W.random_weights(model, seed=3))
    return net


def test_folds_only_where_exact():
    code = generate(_model(), "pytorch")
    # the stem padding and the padding before a max pooling of ReLU outputs are folded
    assert "self.stem_pad" not in code and "self.pool_pad" not in code
    assert "self.dw_pad" not in code
    assert "padding=(3, 3)," in code  # stem: ZeroPadding2D(3) + a 'valid' 7x7 convolution
    assert "padding=(2, 4)," in code  # dw: ZeroPadding2D((1, 2)) + its own 'same' (1, 2)
    # kept: before max pooling of possibly negative values (zeros may win the max), an
    # uneven padding, and a padding that two layers read
    for kept in ("neg_pad", "uneven", "shared"):
        assert f"self.{kept} = nn.ZeroPad2d(" in code


def test_same_outputs_and_gradients_as_unfolded(monkeypatch):
    model = _model()
    folded = _instance(generate(model, "pytorch"), model)
    monkeypatch.setattr(torch_codegen, "_fold_padding", lambda *args: None)
    plain_code = generate(model, "pytorch")
    assert "self.stem_pad = nn.ZeroPad2d(" in plain_code
    plain = _instance(plain_code, model)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 20, 18, 3)).astype("float32"))
    for training in (False, True):
        folded.train(training)
        plain.train(training)
        xs = [x.clone().requires_grad_(True) for _ in range(2)]
        outs = [folded(xs[0]), plain(xs[1])]
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
        for out in outs:
            out.square().sum().backward()
        torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(
            folded.stem.weight.grad, plain.stem.weight.grad, rtol=1e-4, atol=1e-5
        )


def test_channels_last_memory_format_same_outputs():
    """``net.to(memory_format=torch.channels_last)``: the same numbers, and the NHWC input
    permuted to NCHW is already channels-last in memory (no copy for the layout change)."""
    model = _model()
    net = _instance(generate(model, "pytorch"), model).eval()
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 20, 18, 3)).astype("float32"))
    assert x.permute(0, 3, 1, 2).is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want = net(x)
        net = net.to(memory_format=torch.channels_last)
        got = net(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_folded_layers_keep_their_taps():
    """A folded ZeroPadding2D has no tensor of its own in forward; the tapped variant (specc
    crosscheck's per-layer outputs) pads a copy, so every layer keeps a tap and the recorded
    padding equals the unfolded module's."""
    model = _model()
    taps = torch_codegen.forward_taps(model)
    names = [tap.layer for tap in taps]
    assert names == [layer.name for layer in model.layers]
    by_name = {tap.layer: tap for tap in taps}
    assert by_name["stem_pad"].variable.startswith("torch.nn.functional.pad(")
    assert by_name["pool_pad"].layout == "cf"
    tapped_code = TORCH_TARGET.emit(model, taps=True)
    plain_code = generate(model, "pytorch")
    assert "torch.nn.functional.pad(" not in plain_code
    net = _instance(plain_code, model).eval()
    tapped = _instance(tapped_code, model).eval()
    tapped.load_state_dict(net.state_dict())
    tapped.taps = {}
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 20, 18, 3)).astype("float32"))
    with torch.no_grad():
        torch.testing.assert_close(tapped(x), net(x), rtol=0, atol=0)
        stem_in = x.permute(0, 3, 1, 2)
        want = torch.nn.functional.pad(stem_in, (3, 3, 3, 3))
    value, layout = tapped.taps["stem_pad"]
    assert layout == "cf"
    torch.testing.assert_close(value, want, rtol=0, atol=0)
