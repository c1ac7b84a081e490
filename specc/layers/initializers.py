"""Keras's initializers, written once: fans, VarianceScaling presets and their variances, and
every initializer (a name or a mapping, see base.Initializer) as one distribution.

Used by the canonical seeded initial values (specc.weights) and by the PyTorch target's
``reset_parameters`` (layers.lowering.torch_init). No numpy here: the check path imports it.
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import math


def keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """keras.src.initializers.random_initializers.compute_fans."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


#: Keras's VarianceScaling presets: (scale, mode)
VARIANCE_SCALING = {"glorot": (1.0, "fan_avg"), "he": (2.0, "fan_in"), "lecun": (1.0, "fan_in")}
#: std of a standard normal truncated at two standard deviations (Keras's truncated_normal)
TRUNCATED_STD = 0.87962566103423978


def _variance(scale: float, mode: str, shape: tuple[int, ...]) -> float:
    fan_in, fan_out = keras_fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    return scale / max(1.0, fan)


def variance_scale(initializer: str, shape: tuple[int, ...]) -> tuple[float, str]:
    """(variance, distribution) of a Keras VarianceScaling initializer such as 'he_normal',
    with Keras's fans: the variance is scale / max(1, fan)."""
    family, distribution = initializer.split("_")
    scale, mode = VARIANCE_SCALING[family]
    return _variance(scale, mode, shape), distribution


def distribution(initializer, shape: tuple[int, ...]) -> tuple:
    """The distribution a Keras initializer (name or mapping) draws ``shape`` from, as one of
    ``("constant", value)``, ``("uniform", low, high)``, ``("normal", mean, std)``,
    ``("truncated", mean, std)`` (draws beyond two std redrawn), ``("orthogonal", gain)`` or
    ``("unit_forget_bias",)`` (an LSTM bias: ones for the forget gate's quarter, else zeros)."""
    if isinstance(initializer, str):
        if initializer in ("zeros", "ones"):
            return ("constant", 0.0 if initializer == "zeros" else 1.0)
        if initializer == "uniform":  # keras.initializers.RandomUniform(-0.05, 0.05)
            return ("uniform", -0.05, 0.05)
        if initializer == "orthogonal":  # keras.initializers.Orthogonal(gain=1.0)
            return ("orthogonal", 1.0)
        if initializer == "unit_forget_bias":  # Keras LSTM: 1 for the forget gate, else 0
            return ("unit_forget_bias",)
        variance, kind = variance_scale(initializer, shape)
        return _scaled(variance, "uniform" if kind == "uniform" else "truncated_normal")
    kind = initializer.type
    if kind == "VarianceScaling":
        variance = _variance(initializer.scale, initializer.mode, shape)
        return _scaled(variance, initializer.distribution)
    if kind == "TruncatedNormal":
        return ("truncated", initializer.mean, initializer.stddev)
    if kind == "RandomNormal":
        return ("normal", initializer.mean, initializer.stddev)
    if kind == "RandomUniform":
        return ("uniform", initializer.minval, initializer.maxval)
    if kind == "Orthogonal":
        return ("orthogonal", initializer.gain)
    return ("constant", initializer.value)


def _scaled(variance: float, kind: str) -> tuple:
    if kind == "uniform":
        limit = math.sqrt(3.0 * variance)
        return ("uniform", -limit, limit)
    if kind == "untruncated_normal":
        return ("normal", 0.0, math.sqrt(variance))
    # Keras corrects the std for the truncation at two standard deviations
    return ("truncated", 0.0, math.sqrt(variance) / TRUNCATED_STD)
