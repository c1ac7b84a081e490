"""Training-only noise in the generated PyTorch code: Keras's semantics while training (what
is dropped together, the scale, the noise's moments), the identity in eval()."""

from __future__ import annotations

import math

import numpy as np
import pytest

from specc.codegen.pyformat import class_name
from specc.pipeline import check_text
from specc.targets import get

pytestmark = pytest.mark.slow


def _module(layer: str, shape=(4, 4, 8)):
    torch = pytest.importorskip("torch")
    text = f"""
version: 1
name: noisy
inputs: [{{name: x, shape: {list(shape)}}}]
layers:
  - {layer}
"""
    result = check_text(text, "yaml", "spec.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    namespace: dict = {}
    exec(get("pytorch").emit(result.model), namespace)  # noqa: S102 - specc's own output
    torch.manual_seed(0)
    return namespace[class_name("noisy")](), torch


def _run(layer, shape=(4, 4, 8), n=256):
    net, torch = _module(layer, shape)
    x = torch.ones((n, *shape))
    net.train()
    trained = net(x).numpy()
    net.eval()
    assert np.array_equal(net(x).numpy(), x.numpy())  # the identity at inference
    return trained


def test_spatial_dropout_2d_drops_whole_channels():
    y = _run("{type: SpatialDropout2D, rate: 0.5}")
    per_channel = y.reshape(len(y), -1, 8)  # (samples, pixels, channels)
    assert np.all(per_channel.min(axis=1) == per_channel.max(axis=1))  # one draw per channel
    assert set(np.unique(y)) == {0.0, 2.0}  # kept values scaled by 1 / (1 - rate)


def test_dropout_noise_shape_drops_whole_samples():
    y = _run("{type: Dropout, rate: 0.5, noise_shape: [null, 1, 1, 1]}")
    flat = y.reshape(len(y), -1)
    assert np.all(flat.min(axis=1) == flat.max(axis=1))
    assert 0.3 < (flat[:, 0] == 0).mean() < 0.7


def test_dropout_noise_shape_shares_along_the_ones():
    y = _run("{type: Dropout, rate: 0.5, noise_shape: [null, 4, 1, 8]}")
    assert np.all(y.min(axis=2) == y.max(axis=2))  # the same along the width axis
    assert not np.all(y.min(axis=1) == y.max(axis=1))


def test_gaussian_noise_and_dropout_moments():
    y = _run("{type: GaussianNoise, stddev: 0.2}") - 1.0
    assert abs(y.mean()) < 0.01 and y.std() == pytest.approx(0.2, rel=0.03)
    y = _run("{type: GaussianDropout, rate: 0.2}")
    assert abs(y.mean() - 1.0) < 0.01 and y.std() == pytest.approx(math.sqrt(0.25), rel=0.03)


def test_spatial_dropout_1d_drops_whole_channels():
    y = _run("{type: SpatialDropout1D, rate: 0.5}", shape=(6, 8))
    assert np.all(y.min(axis=1) == y.max(axis=1))
