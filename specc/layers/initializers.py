"""Keras's initializers, written once: fans, VarianceScaling presets and their variances.

Used by the canonical seeded initial values (specc.weights) and by the PyTorch target's
``reset_parameters`` (layers.lowering.torch_init). No numpy here: the check path imports it.
"""

from __future__ import annotations

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


def variance_scale(initializer: str, shape: tuple[int, ...]) -> tuple[float, str]:
    """(variance, distribution) of a Keras VarianceScaling initializer such as 'he_normal',
    with Keras's fans: the variance is scale / max(1, fan)."""
    family, distribution = initializer.split("_")
    scale, mode = VARIANCE_SCALING[family]
    fan_in, fan_out = keras_fans(shape)
    fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    return scale / max(1.0, fan), distribution
