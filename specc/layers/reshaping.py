"""Spatial reshaping: ZeroPadding2D, UpSampling2D."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from . import lowering as lw
from .base import Layer, Pair, ShapeError, fmt_shape

NonNegative = Annotated[int, Field(ge=0, le=100_000)]


def _padding_pairs(value):
    """Keras accepts p, (ph, pw) or ((top, bottom), (left, right))."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value), (value, value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ((value[0], value[0]), (value[1], value[1]))
        if all(isinstance(v, list) for v in value):  # YAML/JSON give lists; strict wants tuples
            return tuple(tuple(v) for v in value)
    return value


class ZeroPadding2D(Layer):
    """Pads height and width with zeros (keras.layers.ZeroPadding2D)."""

    type: Literal["ZeroPadding2D"]
    keras_class: ClassVar[str] = "ZeroPadding2D"
    padding: Annotated[
        tuple[tuple[NonNegative, NonNegative], tuple[NonNegative, NonNegative]],
        BeforeValidator(_padding_pairs),
    ] = ((1, 1), (1, 1))

    def output_shape(self, shapes):
        shape = shapes[0]
        if len(shape) != 3:
            raise ShapeError(
                f"expects a rank-3 input (height, width, channels), got {fmt_shape(shape)}"
            )
        (top, bottom), (left, right) = self.padding
        return (shape[0] + top + bottom, shape[1] + left + right, shape[2])

    def keras_args(self):
        return {"padding": self.padding, "data_format": "channels_last"}

    torch_layout: ClassVar[str] = lw.CF

    def torch_lowering(self, shapes, out, layout):
        args = (("padding", lw.fpad_arg(self.padding)),)
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.ZeroPad2d", args),), steps=(lw.call(lw.SELF, lw.X),)
        )


class UpSampling2D(Layer):
    """Repeats rows and columns (keras.layers.UpSampling2D)."""

    type: Literal["UpSampling2D"]
    keras_class: ClassVar[str] = "UpSampling2D"
    size: Pair = (2, 2)
    interpolation: Literal["nearest", "bilinear"] = "nearest"

    def output_shape(self, shapes):
        shape = shapes[0]
        if len(shape) != 3:
            raise ShapeError(
                f"expects a rank-3 input (height, width, channels), got {fmt_shape(shape)}"
            )
        return (shape[0] * self.size[0], shape[1] * self.size[1], shape[2])

    def keras_args(self):
        return {
            "size": self.size,
            "interpolation": self.interpolation,
            "data_format": "channels_last",
        }

    torch_layout: ClassVar[str] = lw.CF

    def torch_lowering(self, shapes, out, layout):
        """Keras 'bilinear' samples at half-pixel centers: torch align_corners=False."""
        args = (
            ("size", None),
            ("scale_factor", tuple(float(s) for s in self.size)),
            ("mode", self.interpolation),
            ("align_corners", None if self.interpolation == "nearest" else False),
            ("recompute_scale_factor", None),
        )
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.Upsample", args),), steps=(lw.call(lw.SELF, lw.X),)
        )


LAYERS = (ZeroPadding2D, UpSampling2D)
