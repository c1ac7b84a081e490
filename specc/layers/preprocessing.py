"""In-model preprocessing: Rescaling, Normalization, Resizing, CenterCrop, Cropping2D."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import math
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, model_validator

from . import lowering as lw
from .base import Layer, PositiveInt, Shape, ShapeError, Weight, fmt_shape, normalize_axis
from .reshaping import NonNegative, _padding_pairs


class Rescaling(Layer):
    """Multiplies by ``scale`` and adds ``offset``: ``x * scale + offset``, computed in float32
    (keras.layers.Rescaling; e.g. ``scale: 0.00392156862745098`` maps [0, 255] to [0, 1])."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["Rescaling"]
    keras_class: ClassVar[str] = "Rescaling"
    scale: float
    offset: float = 0.0

    torch_doc: ClassVar[str] = "`x * scale + offset` (the add is left out when offset is 0)"
    onnx_doc: ClassVar[str] = "`Mul` by the float32 scale, then `Add` of the offset (unless 0)"

    def keras_args(self):
        return {"scale": self.scale, "offset": self.offset}

    def torch_lowering(self, shapes, out, layout):
        scaled = lw.BinOp("*", (lw.X, lw.Lit(self.scale)))
        if self.offset == 0.0:
            return lw.TorchLowering(steps=(scaled,))
        # a - b is exactly a + (-b) in IEEE arithmetic: write what a person would
        op = "-" if self.offset < 0 else "+"
        return lw.TorchLowering(steps=(lw.BinOp(op, (scaled, lw.Lit(abs(self.offset)))),))

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], layout)
        scale = b.const(f"{layer.name}.scale", self.scale)
        if self.offset == 0.0:
            b.node("Mul", [x, scale], out)
            return
        y = b.node("Mul", [x, scale], b.tmp(layer, "scaled"))
        b.node("Add", [y, b.const(f"{layer.name}.offset", self.offset)], out)


# ----------------------------------------------------------------------------- Normalization


class Normalization(Layer):
    """Standardizes with a per-feature mean and variance: ``(x - mean) / max(sqrt(variance),
    1e-7)``, or back with ``invert: true`` (keras.layers.Normalization). ``axis`` lists the
    axes that keep their own statistics (default -1, the features; ``null``: one mean and
    variance for everything). Give ``mean`` and ``variance`` (a number, or one per entry of
    the last kept axis), or leave both out: the layer then holds them as non-trainable
    weights ``mean``, ``variance`` and ``count`` (as Keras counts them), which ``specc train``
    computes from the training split before training, as Keras's ``adapt`` does."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["Normalization"]
    keras_class: ClassVar[str] = "Normalization"
    torch_doc: ClassVar[str] = (
        "`KerasNormalization` (emitted in the file): `(x - mean) / clamp(sqrt(variance), min=1e-7)` "
        "on the channels-last tensor, mean and variance as buffers"
    )
    onnx_doc: ClassVar[str] = "`Sub`, `Sqrt`, `Max` with 1e-7, `Div` (`Mul`, `Add` when inverted)"
    doc_example: ClassVar[tuple] = ({}, ((8, 3),))
    axis: int | list[int] | None = -1
    mean: float | list[float] | None = None
    variance: float | list[float] | None = None
    invert: bool = False

    @model_validator(mode="after")
    def _both_or_neither(self):
        if (self.mean is None) != (self.variance is None):
            raise ValueError("give both mean and variance, or neither (as in Keras)")
        if isinstance(self.mean, list) != isinstance(self.variance, list) or (
            isinstance(self.mean, list) and len(self.mean) != len(self.variance)
        ):
            raise ValueError("mean and variance must have the same shape (as in Keras)")
        if self.variance is not None:
            values = self.variance if isinstance(self.variance, list) else [self.variance]
            if any(v < 0 for v in values):
                raise ValueError("variance must not be negative")
        return self

    def kept(self, shape: Shape) -> tuple[int, ...]:
        """Per-sample indices of the axes keeping their own statistics, sorted."""
        axes = [] if self.axis is None else [self.axis] if isinstance(self.axis, int) else self.axis
        kept = sorted({normalize_axis(a, len(shape)) for a in axes})
        if isinstance(self.axis, list) and len(kept) != len(axes):
            raise ShapeError(f"axis {self.axis} names an axis twice", field="axis")
        return tuple(kept)

    def output_shape(self, shapes):
        shape = shapes[0]
        kept = self.kept(shape)
        if isinstance(self.mean, list):
            want = shape[kept[-1]] if kept else 1
            if len(self.mean) != want:
                raise ShapeError(
                    f"mean and variance have {len(self.mean)} values; the last kept axis "
                    f"has {want}",
                    field="mean",
                    hint="give one value per entry of the last axis in axis, or a single number",
                )
        return shape

    def stats_shape(self, shape: Shape) -> tuple[int, ...]:
        return tuple(shape[k] for k in self.kept(shape))

    def broadcast_shape(self, shape: Shape) -> tuple[int, ...]:
        kept = self.kept(shape)
        return tuple(d if k in kept else 1 for k, d in enumerate(shape))

    def weights(self, shapes):
        if self.mean is not None:
            return ()
        n = self.stats_shape(shapes[0])
        layout = "(" + ", ".join(map(str, n)) + ("," if len(n) == 1 else "") + ")"
        return (
            Weight("mean", n, "zeros", False, layout, torch_attr="mean"),
            Weight("variance", n, "ones", False, layout, torch_attr="variance"),
            Weight("count", (), "zeros", False, "()", torch_attr="count"),
        )

    def keras_args(self):
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        return {
            "axis": axis,
            "mean": self.mean,
            "variance": self.variance,
            "invert": self.invert,
        }

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        shape = shapes[0]
        mean = tuple(self.mean) if isinstance(self.mean, list) else self.mean
        variance = tuple(self.variance) if isinstance(self.variance, list) else self.variance
        args = (
            ("shape", self.stats_shape(shape)),
            ("broadcast", self.broadcast_shape(shape)),
            ("invert", self.invert),
            ("mean", mean),
            ("variance", variance),
        )
        return lw.TorchLowering(
            modules=(lw.TorchModule(lw.KERAS_NORMALIZATION, args),),
            steps=(lw.call(lw.SELF, lw.X),),
        )

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        shape = b.shape_of(layer.inputs[0])
        full = [1, *self.broadcast_shape(shape)]
        x = b.get(layer.inputs[0], lw.CL)
        name = layer.name
        if self.mean is None:
            target = b.const(f"{name}.broadcast", full, "int64")
            mean = b.node("Reshape", [b.weight(layer, "mean"), target], b.tmp(layer, "mean"))
            var = b.node("Reshape", [b.weight(layer, "variance"), target], b.tmp(layer, "var"))
        else:
            stats = self.stats_shape(shape)
            mean = b.const(f"{name}.mean", _broadcast(self.mean, stats, full))
            var = b.const(f"{name}.variance", _broadcast(self.variance, stats, full))
        std = b.node("Sqrt", [var], b.tmp(layer, "std"))
        std = b.node(
            "Max", [std, b.const("const.keras_epsilon", KERAS_EPSILON)], b.tmp(layer, "safe_std")
        )
        if self.invert:
            y = b.node("Mul", [x, std], b.tmp(layer, "scaled"))
            b.node("Add", [mean, y], out)
            return
        y = b.node("Sub", [x, mean], b.tmp(layer, "centered"))
        b.node("Div", [y, std], out)


#: keras.config.epsilon(), the floor of Normalization's standard deviation
KERAS_EPSILON = 1e-7


def _broadcast(values, stats: tuple[int, ...], full: list[int]):
    """Spec values (a number or the last kept axis's list) as a nested list of shape ``full``."""
    import numpy as np

    array = np.broadcast_to(np.asarray(values, dtype=np.float32), stats)
    return np.ascontiguousarray(array).reshape(full)


# ----------------------------------------------------------------------------- image layers


def _image(shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            f"expects a rank-3 input (height, width, channels), got {fmt_shape(shape)}",
            hint="add a Reshape layer before it" if len(shape) < 3 else None,
        )
    return shape  # type: ignore[return-value]


def _resize_rows(size: int, out: int, mode: str) -> list[list[float]]:
    """The (out, size) matrix of tf.image.resize along one axis, half-pixel centers, no
    antialiasing: 'bilinear' interpolates the two nearest rows (clamped at the edges),
    'nearest' takes row floor((o + 0.5) * size / out)."""
    scale = size / out
    matrix = [[0.0] * size for _ in range(out)]
    for o in range(out):
        if mode == "nearest":
            matrix[o][min(math.floor((o + 0.5) * scale), size - 1)] = 1.0
            continue
        src = (o + 0.5) * scale - 0.5
        low = math.floor(src)
        frac = src - low
        matrix[o][min(max(low, 0), size - 1)] += 1.0 - frac
        matrix[o][min(max(low + 1, 0), size - 1)] += frac
    return matrix


class Resizing(Layer):
    """Resizes images to ``height`` x ``width`` (keras.layers.Resizing; tf.image.resize with
    half-pixel centers). PyTorch and ONNX express 'bilinear' and 'nearest' without
    antialiasing, cropping or padding to the aspect ratio; other options are refused there."""

    type: Literal["Resizing"]
    keras_class: ClassVar[str] = "Resizing"
    torch_doc: ClassVar[str] = (
        "`F.interpolate(size=…, mode='bilinear', align_corners=False, antialias=False)` or "
        "`mode='nearest-exact'` (half-pixel centers, as TensorFlow)"
    )
    onnx_doc: ClassVar[str] = (
        "`MatMul` by constant interpolation matrices (half-pixel centers, as `tf.image.resize`; "
        "channels-first: `A_h · X · A_wᵀ`): exact for 'bilinear' and 'nearest'"
    )
    height: PositiveInt
    width: PositiveInt
    interpolation: Literal["bilinear", "nearest", "bicubic", "lanczos3", "lanczos5", "area"] = (
        "bilinear"
    )
    crop_to_aspect_ratio: bool = False
    pad_to_aspect_ratio: bool = False
    fill_mode: Literal["constant"] = "constant"
    fill_value: float = 0.0
    antialias: bool = False

    def output_shape(self, shapes):
        return (self.height, self.width, _image(shapes[0])[2])

    def keras_args(self):
        return {
            "height": self.height,
            "width": self.width,
            "interpolation": self.interpolation,
            "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
            "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "antialias": self.antialias,
            "data_format": "channels_last",
        }

    def _refuse(self, target: str) -> None:
        if self.interpolation not in ("bilinear", "nearest"):
            raise lw.Unsupported(
                f"{target} has no exact equivalent of TensorFlow's '{self.interpolation}' resize",
                field="interpolation",
                hint="use interpolation: bilinear or nearest",
            )
        for flag in ("crop_to_aspect_ratio", "pad_to_aspect_ratio", "antialias"):
            if getattr(self, flag):
                raise lw.Unsupported(
                    f"Resizing with {flag}: true is not supported by the {target} target",
                    field=flag,
                    hint=f"use {flag}: false",
                )

    torch_layout: ClassVar[str] = lw.CF

    def torch_lowering(self, shapes, out, layout):
        self._refuse("PyTorch")
        mode = "bilinear" if self.interpolation == "bilinear" else "nearest-exact"
        kwargs = dict(size=(self.height, self.width), mode=mode)
        if mode == "bilinear":
            kwargs.update(align_corners=False, antialias=False)
        return lw.TorchLowering(steps=(lw.call("F.interpolate", lw.X, **kwargs),))

    onnx_layout: ClassVar[str] = lw.CF

    def onnx_lowering(self, b, layer, out, layout):
        self._refuse("ONNX")
        h, w, _ = b.shape_of(layer.inputs[0])
        name = layer.name
        x = b.get(layer.inputs[0], lw.CF)
        rows = b.const(f"{name}.rows", _resize_rows(h, self.height, self.interpolation))
        cols = _resize_rows(w, self.width, self.interpolation)
        cols = b.const(f"{name}.cols", [list(c) for c in zip(*cols)])  # (w, width)
        y = b.node("MatMul", [x, cols], b.tmp(layer, "cols"))
        b.node("MatMul", [rows, y], out)


class CenterCrop(Layer):
    """Crops the central ``height`` x ``width`` window of images (keras.layers.CenterCrop;
    the window starts at (size - target) // 2). An input smaller than the window is resized
    by Keras instead, which the PyTorch and ONNX targets refuse."""

    type: Literal["CenterCrop"]
    keras_class: ClassVar[str] = "CenterCrop"
    torch_doc: ClassVar[str] = "a slice `x[..., top:top + height, left:left + width]`"
    onnx_doc: ClassVar[str] = "`Slice` of the height and width axes"
    height: PositiveInt
    width: PositiveInt

    def output_shape(self, shapes):
        return (self.height, self.width, _image(shapes[0])[2])

    def keras_args(self):
        return {"height": self.height, "width": self.width, "data_format": "channels_last"}

    def _window(self, shape: Shape, target: str) -> tuple[tuple[int, int], tuple[int, int]]:
        h, w, _ = shape
        if h < self.height or w < self.width:
            raise lw.Unsupported(
                f"CenterCrop of a {h}x{w} input to {self.height}x{self.width}: Keras resizes "
                f"an input smaller than the window, which the {target} target does not do",
                field="height" if h < self.height else "width",
                hint="crop to at most the input's size",
            )
        top, left = (h - self.height) // 2, (w - self.width) // 2
        return (top, top + self.height), (left, left + self.width)

    def torch_lowering(self, shapes, out, layout):
        rows, cols = self._window(shapes[0], "PyTorch")
        return lw.TorchLowering(steps=(lw.Slice(lw.X, 2 if layout == lw.CF else 1, (rows, cols)),))

    def onnx_lowering(self, b, layer, out, layout):
        rows, cols = self._window(b.shape_of(layer.inputs[0]), "ONNX")
        axes = [2, 3] if layout == lw.CF else [1, 2]
        name = layer.name
        starts = b.const(f"{name}.starts", [rows[0], cols[0]], "int64")
        ends = b.const(f"{name}.ends", [rows[1], cols[1]], "int64")
        axes_value = b.const(f"{name}.axes", axes, "int64")
        b.node("Slice", [b.get(layer.inputs[0], layout), starts, ends, axes_value], out)


class Cropping2D(Layer):
    """Crops rows and columns off the edges of images (keras.layers.Cropping2D):
    ``cropping`` is c, [ch, cw] or [[top, bottom], [left, right]]."""

    type: Literal["Cropping2D"]
    keras_class: ClassVar[str] = "Cropping2D"
    torch_doc: ClassVar[str] = "a slice `x[..., top:height - bottom, left:width - right]`"
    onnx_doc: ClassVar[str] = "`Slice` of the height and width axes"
    cropping: Annotated[
        tuple[tuple[NonNegative, NonNegative], tuple[NonNegative, NonNegative]],
        BeforeValidator(_padding_pairs),
    ] = ((0, 0), (0, 0))

    def output_shape(self, shapes):
        h, w, c = _image(shapes[0])
        (top, bottom), (left, right) = self.cropping
        if top + bottom >= h or left + right >= w:
            raise ShapeError(
                f"cropping {self.cropping} leaves nothing of a {h}x{w} input",
                field="cropping",
                hint="crop less than the input's height and width",
            )
        return (h - top - bottom, w - left - right, c)

    def keras_args(self):
        return {"cropping": self.cropping, "data_format": "channels_last"}

    def _window(self, shape):
        (top, bottom), (left, right) = self.cropping
        return (top, shape[0] - bottom), (left, shape[1] - right)

    def torch_lowering(self, shapes, out, layout):
        rows, cols = self._window(shapes[0])
        return lw.TorchLowering(steps=(lw.Slice(lw.X, 2 if layout == lw.CF else 1, (rows, cols)),))

    def onnx_lowering(self, b, layer, out, layout):
        rows, cols = self._window(b.shape_of(layer.inputs[0]))
        axes = [2, 3] if layout == lw.CF else [1, 2]
        name = layer.name
        starts = b.const(f"{name}.starts", [rows[0], cols[0]], "int64")
        ends = b.const(f"{name}.ends", [rows[1], cols[1]], "int64")
        axes_value = b.const(f"{name}.axes", axes, "int64")
        b.node("Slice", [b.get(layer.inputs[0], layout), starts, ends, axes_value], out)


LAYERS = (Rescaling, Normalization, Resizing, CenterCrop, Cropping2D)
