"""Spatial reshaping: ZeroPadding2D, UpSampling2D."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import math
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
    onnx_doc: ClassVar[str] = "`Pad` (constant 0) in the tensor's layout"
    torch_doc: ClassVar[str] = (
        "`nn.ZeroPad2d((left, right, top, bottom))`; a symmetric one read only by a convolution "
        "(or a max pooling of values never negative) is folded into that layer's `padding`"
    )
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

    def onnx_lowering(self, b, layer, out, layout):
        (top, bottom), (left, right) = self.padding
        if layout == lw.CF:
            pads = [0, 0, top, left, 0, 0, bottom, right]
        else:
            pads = [0, top, left, 0, 0, bottom, right, 0]
        p = b.const(f"{layer.name}.pads", pads, "int64")
        b.node("Pad", [b.get(layer.inputs[0], layout), p], out, mode="constant")


class UpSampling2D(Layer):
    """Repeats rows and columns (keras.layers.UpSampling2D)."""

    type: Literal["UpSampling2D"]
    keras_class: ClassVar[str] = "UpSampling2D"
    onnx_doc: ClassVar[str] = (
        "nearest: `Reshape` → `Expand` → `Reshape` (repeats rows and columns exactly, either layout); bilinear: `MatMul` by constant interpolation matrices, half-pixel centers clamped at the edges, as `tf.image.resize` (channels-first: `A_h · X · A_wᵀ`)"
    )
    torch_doc: ClassVar[str] = (
        "`nn.Upsample(scale_factor=…, mode=…)`, `align_corners=False` for bilinear (half-pixel centers)"
    )
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

    def onnx_out_layout(self, rank: int, in_layouts: list[str]) -> str:
        if self.interpolation == "bilinear":
            return lw.CF
        return super().onnx_out_layout(rank, in_layouts)

    def onnx_lowering(self, b, layer, out, layout):
        """Integer-factor upsampling without Resize: ONNX shape inference loses the symbolic
        batch dimension of a Resize with scales, so 'nearest' repeats rows and columns with
        Reshape/Expand/Reshape (in either layout) and 'bilinear' multiplies by interpolation
        matrices (channels-first: A_h @ X @ A_w^T)."""
        name = layer.name
        h, w, c = b.shape_of(layer.inputs[0])
        sh, sw = self.size
        if self.interpolation == "nearest":  # keras: ops.repeat on both axes
            x = b.get(layer.inputs[0], layout)
            if layout == lw.CF:
                split, grow = [0, 0, h, 1, w, 1], [1, 1, 1, sh, 1, sw]
                full = [0, 0, h * sh, w * sw]
            else:
                split, grow = [0, h, 1, w, 1, c], [1, 1, sh, 1, sw, 1]
                full = [0, h * sh, w * sw, c]
            y = b.node(
                "Reshape", [x, b.const(f"{name}.split", split, "int64")], b.tmp(layer, "split")
            )
            repeats = b.const(f"{name}.repeats", grow, "int64")
            y = b.node("Expand", [y, repeats], b.tmp(layer, "repeated"))
            b.node("Reshape", [y, b.const(f"{name}.shape", full, "int64")], out)
            return
        # tf.image.resize bilinear, half-pixel centers, no antialiasing (keras.ops.image.resize)
        x = b.get(layer.inputs[0], lw.CF)
        rows = b.const(f"{name}.rows", _bilinear_matrix(h, sh))  # (h*sh, h)
        cols = b.const(f"{name}.cols", [list(r) for r in zip(*_bilinear_matrix(w, sw))])
        y = b.node("MatMul", [x, cols], b.tmp(layer, "cols"))  # cols: (w, w*sw)
        b.node("MatMul", [rows, y], out)


def _bilinear_matrix(size: int, scale: int) -> list[list[float]]:
    """Rows of 1-D linear interpolation weights with half-pixel centers, clamped at the edges."""
    matrix = [[0.0] * size for _ in range(size * scale)]
    for o in range(size * scale):
        src = (o + 0.5) / scale - 0.5
        low = math.floor(src)
        frac = src - low
        matrix[o][min(max(low, 0), size - 1)] += 1.0 - frac
        matrix[o][min(max(low + 1, 0), size - 1)] += frac
    return matrix


LAYERS = (ZeroPadding2D, UpSampling2D)
