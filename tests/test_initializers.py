"""Keras initializers written as mappings: specc's seeded numpy values (specc.weights), the
PyTorch target's reset_parameters (layers.lowering.torch_init) and Keras's own draws come
from the same distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from specc.layers.base import Initializer, Weight
from specc.layers.initializers import distribution
from specc.layers.lowering import torch_init
from specc.weights import initial_value

_INIT = TypeAdapter(Initializer)

CASES = [
    ({"type": "VarianceScaling", "scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}, (3, 3, 16, 32)),
    ({"type": "VarianceScaling", "scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}, (64, 48)),
    ({"type": "VarianceScaling", "scale": 0.5, "mode": "fan_in", "distribution": "untruncated_normal"}, (5, 5, 8, 12)),
    ({"type": "TruncatedNormal", "mean": 0.5, "stddev": 0.02}, (40, 50)),
    ({"type": "RandomNormal", "mean": -1.0, "stddev": 0.3}, (40, 50)),
    ({"type": "RandomUniform", "minval": -0.2, "maxval": 0.4}, (40, 50)),
    ({"type": "Constant", "value": 0.25}, (7,)),
    ("he_normal", (3, 3, 16, 32)),
]  # fmt: skip


def _moments(values: np.ndarray) -> tuple[float, float, float, float]:
    v = np.asarray(values, np.float64).ravel()
    return v.mean(), v.std(), v.min(), v.max()


def test_variance_scaling_fans_as_keras():
    # fan_out of a (3, 3, 16, 32) kernel: 32 * 9 = 288; variance 2 / 288, truncated: / 0.8796^2
    init = _INIT.validate_python(CASES[0][0])
    kind, mean, std = distribution(init, (3, 3, 16, 32))
    assert kind == "truncated" and mean == 0.0
    assert std == pytest.approx(math.sqrt(2 / 288) / 0.87962566103423978)


@pytest.mark.parametrize("config, shape", CASES, ids=lambda c: str(c)[:40])
def test_numpy_values_follow_the_distribution(config, shape):
    init = _INIT.validate_python(config)
    values = initial_value("layer/kernel", Weight("kernel", shape, init), seed=3)
    assert values.shape == shape and values.dtype == np.float32
    kind, *args = distribution(init, shape)
    mean, std, low, high = _moments(values)
    if kind == "constant":
        assert np.all(values == np.float32(args[0]))
    elif kind == "uniform":
        assert args[0] <= low and high <= args[1]
        assert std == pytest.approx((args[1] - args[0]) / math.sqrt(12), rel=0.08)
    elif kind == "normal":
        assert mean == pytest.approx(args[0], abs=4 * args[1] / math.sqrt(values.size))
        assert std == pytest.approx(args[1], rel=0.08)
    else:  # truncated at two standard deviations of the untruncated normal
        assert args[0] - 2 * args[1] <= low and high <= args[0] + 2 * args[1]
        assert std == pytest.approx(args[1] * 0.87962566103423978, rel=0.08)


def test_orthogonal_values_are_orthogonal_times_gain():
    init = _INIT.validate_python({"type": "Orthogonal", "gain": 1.5})
    values = initial_value("conv/kernel", Weight("kernel", (3, 3, 4, 8), init), seed=0)
    flat = values.reshape(-1, 8).astype(np.float64)  # (36, 8): orthonormal columns times 1.5
    np.testing.assert_allclose(flat.T @ flat, 2.25 * np.eye(8), atol=1e-5)


def test_unknown_keys_and_types_are_refused():
    with pytest.raises(ValueError):
        _INIT.validate_python({"type": "VarianceScaling", "mode": "fan_middle"})
    with pytest.raises(ValueError):
        _INIT.validate_python({"type": "HeNormal"})


@pytest.mark.slow
@pytest.mark.parametrize("config, shape", CASES, ids=lambda c: str(c)[:40])
def test_keras_and_torch_draw_as_specc_says(config, shape):
    """Keras's own initializer and the generated reset_parameters call give the moments
    specc's numpy values have (large samples: the kernel shapes above, repeated)."""
    keras = pytest.importorskip("keras")
    torch = pytest.importorskip("torch")
    init = _INIT.validate_python(config)
    spec_values = initial_value("layer/kernel", Weight("kernel", shape, init), seed=5)
    keras_init = keras.initializers.get(config if isinstance(config, str) else init.keras_config())
    keras_values = np.asarray(keras_init(shape))
    how = torch_init(init, shape)
    tensor = torch.empty(shape[::-1])  # torch's layout; only the values' distribution matters
    func = eval(how.func.replace("nn.", "torch.nn."))  # noqa: S307 - a fixed nn.init name
    func(tensor, **dict(how.kwargs))
    torch_values = tensor.numpy()
    want = _moments(spec_values)
    bounded = distribution(init, shape)[0] in ("uniform", "truncated")
    for got in (_moments(keras_values), _moments(torch_values)):
        spread = max(want[1], 1e-3)
        assert got[0] == pytest.approx(want[0], abs=0.1 * spread + 1e-6)
        assert got[1] == pytest.approx(want[1], rel=0.1, abs=1e-6)
        if bounded:  # the same support: every draw within the bounds specc's draws reach
            assert got[2] >= want[2] - 0.05 * spread and got[3] <= want[3] + 0.05 * spread
