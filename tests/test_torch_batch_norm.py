"""The generated ``KerasBatchNorm`` (templates/pytorch/keras_batch_norm.py.j2): one fused
``F.batch_norm`` kernel plus a per-channel correction of the running variance, checked
against Keras's update rule written out (keras/src/layers/normalization/
batch_normalization.py: ``moving = moving * momentum + batch * (1 - momentum)`` with the
biased batch variance) and against the straightforward module it replaced. Torch only."""

from __future__ import annotations

import pytest

from specc.codegen import render

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _module_class():
    namespace: dict = {}
    code = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
    code += render("pytorch/keras_batch_norm.py.j2", {"name": "KerasBatchNorm"})
    exec(compile(code, "keras_batch_norm.py", "exec"), namespace)
    return namespace["KerasBatchNorm"]


class _Reference(torch.nn.Module):
    """Keras's training step written out: an explicit reduction for the statistics."""

    def __init__(self, channels, eps, momentum):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = torch.nn.Parameter(torch.ones(channels))
        self.bias = torch.nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        with torch.no_grad():
            var, mean = torch.var_mean(x, dim=[0, *range(2, x.dim())], correction=0)
            self.running_mean.copy_(self.running_mean * self.momentum + mean * (1 - self.momentum))
            self.running_var.copy_(self.running_var * self.momentum + var * (1 - self.momentum))
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def _pair(channels, eps, momentum, seed=0):
    torch.manual_seed(seed)
    fused = _module_class()(
        num_features=channels, eps=eps, momentum=momentum, scale=True, center=True
    )
    reference = _Reference(channels, eps, momentum)
    with torch.no_grad():
        for module in (fused, reference):
            module.weight.copy_(torch.linspace(0.5, 1.5, channels))
            module.bias.copy_(torch.linspace(-0.2, 0.3, channels))
    return fused, reference


def test_textbook_values():
    """momentum 0 stores the batch statistics: the biased variance of 0,1,2,3 is 1.25
    (nn.BatchNorm would store the unbiased 5/3); mean 1.5."""
    bn = _module_class()(num_features=1, eps=1e-3, momentum=0.0, scale=True, center=True)
    bn.train()
    bn(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    assert float(bn.running_var[0]) == pytest.approx(1.25, abs=1e-7)
    assert float(bn.running_mean[0]) == pytest.approx(1.5, abs=1e-7)
    assert int(bn.num_batches_tracked) == 1
    # momentum 1 keeps the initial statistics exactly
    keep = _module_class()(num_features=1, eps=1e-3, momentum=1.0, scale=True, center=True)
    keep(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    assert float(keep.running_var[0]) == 1.0 and float(keep.running_mean[0]) == 0.0


@pytest.mark.parametrize(
    "shape, momentum, channels_last",
    [
        ((16, 6, 5, 7), 0.99, False),
        ((16, 6, 5, 7), 0.99, True),
        ((3, 4, 9), 0.9, False),
        ((32, 5), 0.5, False),
        ((2, 3, 1, 1), 0.99, False),
    ],
)
def test_matches_keras_update_rule_over_steps(shape, momentum, channels_last):
    """Ten training steps on shifted data: outputs and input gradients identical, running
    statistics within 1e-7 of the rule, then evaluation outputs agree."""
    fused, reference = _pair(shape[1], 1e-3, momentum)
    generator = torch.Generator().manual_seed(1)
    for step in range(10):
        x = torch.randn(shape, generator=generator) * (1.0 + step) + 0.5 * step
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        xs = [x.clone().requires_grad_(True) for _ in range(2)]
        outs = [fused(xs[0]), reference(xs[1])]
        assert torch.equal(outs[0], outs[1])
        for out in outs:
            (out * torch.arange(out.numel()).reshape(out.shape).float().sin()).sum().backward()
        assert torch.equal(xs[0].grad, xs[1].grad)
        assert torch.equal(fused.weight.grad, reference.weight.grad)
        torch.testing.assert_close(fused.running_mean, reference.running_mean, rtol=1e-6, atol=1e-7)
        # relative: the variance grows to ~100 over the steps, and the fused kernel and
        # var_mean reduce in different orders (channels-last too): a few ulp
        torch.testing.assert_close(fused.running_var, reference.running_var, rtol=1e-6, atol=1e-7)
    fused.eval()
    reference.eval()
    x = torch.randn(shape, generator=generator) * 5
    torch.testing.assert_close(
        fused(x),
        F.batch_norm(
            x,
            reference.running_mean,
            reference.running_var,
            reference.weight,
            reference.bias,
            False,
            0.0,
            1e-3,
        ),
        rtol=1e-6,
        atol=1e-6,
    )


def test_no_grad_and_double_backward_free_of_inplace_errors():
    """The running variance the kernel updates is a copy: the in-place correction of the
    buffer never invalidates what the backward saved (nn.BatchNorm's own contract)."""
    bn = _module_class()(num_features=3, eps=1e-3, momentum=0.99, scale=True, center=True)
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    y = bn(x)
    y2 = bn(torch.randn(4, 3, 5, 5))  # a second step before the first backward
    (y.sum() + y2.sum()).backward()
    assert x.grad is not None and int(bn.num_batches_tracked) == 2
    with torch.no_grad():
        bn(torch.randn(4, 3, 5, 5))
    assert int(bn.num_batches_tracked) == 3


def test_torch_compile_same_numbers():
    """torch.compile of the module (inductor on CPU when a compiler is present)."""
    fused, reference = _pair(4, 1e-3, 0.99)
    try:
        compiled = torch.compile(fused, backend="aot_eager")
        x = torch.randn(8, 4, 6, 6)
        out = compiled(x)
    except Exception as exc:  # pragma: no cover - depends on the local toolchain
        pytest.skip(f"torch.compile unavailable here: {exc}")
    torch.testing.assert_close(out, reference(x), rtol=0, atol=0)
    torch.testing.assert_close(fused.running_var, reference.running_var, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(fused.running_mean, reference.running_mean, rtol=1e-6, atol=1e-7)
