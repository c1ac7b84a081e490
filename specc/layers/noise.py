"""Regularization noise (training only; the identity at inference): SpatialDropout1D,
SpatialDropout2D, GaussianNoise, GaussianDropout. Dropout itself (and its ``noise_shape``)
is in core.py.

Each names its ``noise_field``: crosscheck's training step compares the backends on a variant
of the spec with that field 0, since the two frameworks draw different random numbers.
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import math
from typing import ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import Layer, ShapeError, fmt_shape


class _SpatialDropout(Layer):
    """Drops whole channels: one draw per (sample, channel), shared over the other axes."""

    keras_masking: ClassVar[str] = "pass"

    rate: float = Field(ge=0.0, lt=1.0)
    seed: int | None = None
    noise_field: ClassVar[str] = "rate"
    rank: ClassVar[int] = 2
    torch_class: ClassVar[str] = ""
    onnx_doc: ClassVar[str] = "`Identity` (inference)"

    def output_shape(self, shapes):
        if len(shapes[0]) != self.rank + 1:
            what = "(steps, channels)" if self.rank == 1 else "(height, width, channels)"
            raise ShapeError(
                f"expects a rank-{self.rank + 1} input {what} (batch excluded), "
                f"got {fmt_shape(shapes[0])}"
            )
        return shapes[0]

    def keras_args(self):
        return {"rate": self.rate, "seed": self.seed}

    #: torch's Dropout1d/2d zero whole channels of an N, C, ... tensor, scaled by 1/(1-p)
    torch_layout: ClassVar[str] = lw.CF

    def torch_lowering(self, shapes, out, layout):
        args = (("p", self.rate), ("inplace", False))
        return lw.TorchLowering(
            modules=(lw.TorchModule(self.torch_class, args),), steps=(lw.call(lw.SELF, lw.X),)
        )

    def onnx_lowering(self, b, layer, out, layout):
        b.node("Identity", [b.get(layer.inputs[0], layout)], out)


class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole channels of a (steps, channels) input (keras.layers.SpatialDropout1D)."""

    type: Literal["SpatialDropout1D"]
    keras_class: ClassVar[str] = "SpatialDropout1D"
    rank: ClassVar[int] = 1
    torch_class: ClassVar[str] = "nn.Dropout1d"
    torch_doc: ClassVar[str] = "`nn.Dropout1d(p=rate)` on N, C, L; identity in `eval()`"


class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole channels of a (height, width, channels) input
    (keras.layers.SpatialDropout2D)."""

    type: Literal["SpatialDropout2D"]
    keras_class: ClassVar[str] = "SpatialDropout2D"
    rank: ClassVar[int] = 2
    torch_class: ClassVar[str] = "nn.Dropout2d"
    torch_doc: ClassVar[str] = "`nn.Dropout2d(p=rate)` on NCHW; identity in `eval()`"

    def keras_args(self):
        return {"rate": self.rate, "data_format": "channels_last", "seed": self.seed}


class GaussianNoise(Layer):
    """Adds zero-mean normal noise of standard deviation ``stddev`` while training
    (keras.layers.GaussianNoise)."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["GaussianNoise"]
    keras_class: ClassVar[str] = "GaussianNoise"
    onnx_doc: ClassVar[str] = "`Identity` (inference)"
    torch_doc: ClassVar[str] = "`x + torch.randn_like(x) * stddev if self.training else x`"
    noise_field: ClassVar[str] = "stddev"
    stddev: float = Field(ge=0.0, le=1.0)
    seed: int | None = None

    def keras_args(self):
        return {"stddev": self.stddev, "seed": self.seed}

    def torch_lowering(self, shapes, out, layout):
        if self.stddev == 0:
            return lw.TorchLowering(steps=())
        noise = lw.BinOp("*", (lw.call("torch.randn_like", lw.X), lw.Lit(self.stddev)))
        return lw.TorchLowering(steps=(lw.IfTraining(lw.BinOp("+", (lw.X, noise)), lw.X),))

    def onnx_lowering(self, b, layer, out, layout):
        b.node("Identity", [b.get(layer.inputs[0], layout)], out)


class GaussianDropout(Layer):
    """Multiplies by normal noise of mean 1 and standard deviation sqrt(rate / (1 - rate))
    while training (keras.layers.GaussianDropout)."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["GaussianDropout"]
    keras_class: ClassVar[str] = "GaussianDropout"
    onnx_doc: ClassVar[str] = "`Identity` (inference)"
    torch_doc: ClassVar[str] = (
        "`x * (1 + torch.randn_like(x) * sqrt(rate / (1 - rate))) if self.training else x`"
    )
    noise_field: ClassVar[str] = "rate"
    rate: float = Field(ge=0.0, lt=1.0)
    seed: int | None = None

    def keras_args(self):
        return {"rate": self.rate, "seed": self.seed}

    def torch_lowering(self, shapes, out, layout):
        if self.rate == 0:
            return lw.TorchLowering(steps=())
        std = math.sqrt(self.rate / (1.0 - self.rate))
        noise = lw.BinOp("*", (lw.call("torch.randn_like", lw.X), lw.Lit(std)))
        factor = lw.BinOp("+", (lw.Lit(1.0), noise))
        return lw.TorchLowering(steps=(lw.IfTraining(lw.BinOp("*", (lw.X, factor)), lw.X),))

    def onnx_lowering(self, b, layer, out, layout):
        b.node("Identity", [b.get(layer.inputs[0], layout)], out)


LAYERS = (SpatialDropout1D, SpatialDropout2D, GaussianNoise, GaussianDropout)
