"""Keras's ``Normalization.adapt`` for ``specc train``: a Normalization layer given no
``mean``/``variance`` in the spec gets them from the training split before training.

The statistics are the mean and the (biased) variance over every axis the layer does not
keep, the batch included, as ``adapt`` computes them (Keras merges per-batch moments; the
result is the same population mean and variance, here computed in float64). ``count`` stays
0, as Keras 3's ``adapt`` leaves it.
"""

from __future__ import annotations

import numpy as np

from ..ir import ModelIR


class AdaptError(Exception):
    """A Normalization layer to adapt does not read the model's input."""


def to_adapt(model: ModelIR) -> list:
    """The Normalization layers whose statistics are weights (no mean/variance in the spec)."""
    return [
        layer for layer in model.layers if layer.type == "Normalization" and layer.spec.mean is None
    ]


def statistics(model: ModelIR, x_train: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical weights ``<layer>/mean`` and ``<layer>/variance`` of every layer to adapt."""
    inputs = {t.name for t in model.inputs}
    out = {}
    for layer in to_adapt(model):
        source = layer.inputs[0]
        if source not in inputs:
            raise AdaptError(
                f"layer '{layer.name}' (Normalization) reads '{source}', not the model input, "
                "so `specc train` cannot compute its mean and variance from the data; give "
                "mean and variance in the spec, or put the layer first"
            )
        shape = model.shape_of(source)
        kept = layer.spec.kept(shape)
        reduce = (0, *(k + 1 for k in range(len(shape)) if k not in kept))
        x = np.asarray(x_train, np.float64)
        mean = x.mean(axis=reduce)
        variance = x.var(axis=reduce)
        out[f"{layer.name}/mean"] = mean.astype(np.float32)
        out[f"{layer.name}/variance"] = variance.astype(np.float32)
    return out


def apply(backend, model: ModelIR, stats: dict[str, np.ndarray]) -> None:
    """Write the statistics into a built backend's model (Keras or PyTorch)."""
    from .. import weights as W

    if hasattr(backend, "module"):  # the PyTorch backend
        current = W.from_torch(backend.module, model)
        W.to_torch(backend.module, model, {**current, **stats})
        return
    current = W.from_keras(backend.model, model)
    W.to_keras(backend.model, model, {**current, **stats})
