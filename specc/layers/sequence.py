"""Sequence reshaping: RepeatVector, Permute, Cropping1D, ZeroPadding1D, UpSampling1D.

Every one works on the channels-last tensor (batch, steps, features) in all three targets.
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from dataclasses import replace
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BeforeValidator, Field, model_validator

from . import lowering as lw
from .base import Layer, PositiveInt, ShapeError, fmt_shape
from .conv import Conv1D, Conv2D
from .core import Dense

NonNegative = Annotated[int, Field(ge=0, le=100_000)]


def _pair(value):
    """Keras accepts n or (before, after)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list):
        return tuple(value)
    return value


Pair1D = Annotated[tuple[NonNegative, NonNegative], BeforeValidator(_pair)]


def _steps(shape, what: str = "") -> None:
    if len(shape) != 2:
        raise ShapeError(
            f"expects a rank-2 input (steps, features){what}, got {fmt_shape(shape)}",
            hint="add a Reshape layer before it",
        )


class RepeatVector(Layer):
    """Repeats a vector ``n`` times: (features,) -> (n, features) (keras.layers.RepeatVector)."""

    type: Literal["RepeatVector"]
    keras_class: ClassVar[str] = "RepeatVector"
    torch_doc: ClassVar[str] = "`x.unsqueeze(1).expand(-1, n, -1)`"
    onnx_doc: ClassVar[str] = "`Unsqueeze` then `Expand` to (1, n, 1)"
    n: PositiveInt

    def output_shape(self, shapes):
        if len(shapes[0]) != 1:
            raise ShapeError(
                f"expects a rank-1 input (features,), got {fmt_shape(shapes[0])}",
                hint="add a Flatten layer before it",
            )
        return (self.n, shapes[0][0])

    def keras_args(self):
        return {"n": self.n}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(
            steps=(
                lw.call(lw.Attr(lw.X, "unsqueeze"), 1),
                lw.call(lw.Attr(lw.X, "expand"), -1, self.n, -1),
            )
        )

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], lw.CL)
        axes = b.const(f"{layer.name}.axes", [1], "int64")
        y = b.node("Unsqueeze", [x, axes], b.tmp(layer, "unsqueezed"))
        b.node("Expand", [y, b.const(f"{layer.name}.repeats", [1, self.n, 1], "int64")], out)


class Permute(Layer):
    """Permutes the non-batch axes; ``dims`` counts from 1 (keras.layers.Permute)."""

    type: Literal["Permute"]
    keras_class: ClassVar[str] = "Permute"
    torch_doc: ClassVar[str] = "`x.permute(0, *dims)` of the channels-last tensor"
    onnx_doc: ClassVar[str] = "`Transpose` with perm `[0, *dims]` of the channels-last tensor"
    dims: list[PositiveInt] = Field(min_length=1, max_length=8)

    def output_shape(self, shapes):
        shape = shapes[0]
        if sorted(self.dims) != list(range(1, len(shape) + 1)):
            raise ShapeError(
                f"dims {self.dims} is not a permutation of 1..{len(shape)} for an input "
                f"{fmt_shape(shape)}",
                field="dims",
                hint="list every non-batch axis once, counting from 1",
            )
        return tuple(shape[d - 1] for d in self.dims)

    def keras_args(self):
        return {"dims": tuple(self.dims)}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=(lw.call(lw.Attr(lw.X, "permute"), 0, *self.dims),))

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        b.node("Transpose", [b.get(layer.inputs[0], lw.CL)], out, perm=[0, *self.dims])


class Cropping1D(Layer):
    """Crops steps at the start and end (keras.layers.Cropping1D)."""

    type: Literal["Cropping1D"]
    keras_class: ClassVar[str] = "Cropping1D"
    torch_doc: ClassVar[str] = "`x[:, start:end]` of the channels-last tensor"
    onnx_doc: ClassVar[str] = "`Slice` along the steps axis"
    cropping: Pair1D = (1, 1)

    def output_shape(self, shapes):
        _steps(shapes[0])
        steps = shapes[0][0] - sum(self.cropping)
        if steps <= 0:
            raise ShapeError(
                f"cropping {self.cropping} removes every one of the {shapes[0][0]} steps",
                field="cropping",
            )
        return (steps, shapes[0][1])

    def keras_args(self):
        return {"cropping": self.cropping}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        start, end = self.cropping[0], shapes[0][0] - self.cropping[1]
        return lw.TorchLowering(steps=(lw.Slice(lw.X, 1, ((start, end),)),))

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        name = layer.name
        start, end = self.cropping[0], b.shape_of(layer.inputs[0])[0] - self.cropping[1]
        b.node(
            "Slice",
            [
                b.get(layer.inputs[0], lw.CL),
                b.const(f"{name}.starts", [start], "int64"),
                b.const(f"{name}.ends", [end], "int64"),
                b.const(f"{name}.axes", [1], "int64"),
            ],
            out,
        )


class ZeroPadding1D(Layer):
    """Pads steps with zeros at the start and end (keras.layers.ZeroPadding1D)."""

    type: Literal["ZeroPadding1D"]
    keras_class: ClassVar[str] = "ZeroPadding1D"
    torch_doc: ClassVar[str] = "`F.pad(x, (0, 0, before, after))` of the channels-last tensor"
    onnx_doc: ClassVar[str] = "`Pad` (constant 0) along the steps axis"
    padding: Pair1D = (1, 1)

    def output_shape(self, shapes):
        _steps(shapes[0])
        return (shapes[0][0] + sum(self.padding), shapes[0][1])

    def keras_args(self):
        return {"padding": self.padding}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=(lw.call("F.pad", lw.X, (0, 0, *self.padding)),))

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        before, after = self.padding
        pads = b.const(f"{layer.name}.pads", [0, before, 0, 0, after, 0], "int64")
        b.node("Pad", [b.get(layer.inputs[0], lw.CL), pads], out, mode="constant")


class UpSampling1D(Layer):
    """Repeats each step ``size`` times (keras.layers.UpSampling1D)."""

    type: Literal["UpSampling1D"]
    keras_class: ClassVar[str] = "UpSampling1D"
    torch_doc: ClassVar[str] = "`torch.repeat_interleave(x, size, dim=1)`"
    onnx_doc: ClassVar[str] = "`Reshape` → `Expand` → `Reshape` (each step repeated exactly)"
    size: PositiveInt = 2

    def output_shape(self, shapes):
        _steps(shapes[0])
        return (shapes[0][0] * self.size, shapes[0][1])

    def keras_args(self):
        return {"size": self.size}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=(lw.call("torch.repeat_interleave", lw.X, self.size, dim=1),))

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        name = layer.name
        steps, features = b.shape_of(layer.inputs[0])
        x = b.get(layer.inputs[0], lw.CL)
        split = b.const(f"{name}.split", [0, steps, 1, features], "int64")
        y = b.node("Reshape", [x, split], b.tmp(layer, "split"))
        repeats = b.const(f"{name}.repeats", [1, 1, self.size, 1], "int64")
        y = b.node("Expand", [y, repeats], b.tmp(layer, "repeated"))
        full = b.const(f"{name}.shape", [0, steps * self.size, features], "int64")
        b.node("Reshape", [y, full], out)


class TimeDistributed(Layer):
    """Applies a Dense or convolution layer to every step (keras.layers.TimeDistributed);
    ``layer`` is the wrapped layer as a mapping, e.g. ``{type: Conv2D, filters: 8,
    kernel_size: 3}``. Its weights are shared by all steps."""

    keras_masking: ClassVar[str] = "pass"  # its Dense/Conv layers take no mask; it hands it on

    type: Literal["TimeDistributed"]
    keras_class: ClassVar[str] = "TimeDistributed"
    torch_doc: ClassVar[str] = (
        "steps folded into the batch (`reshape`), the wrapped layer's own lowering, unfolded"
    )
    onnx_doc: ClassVar[str] = (
        "Dense: its `MatMul` on the last axis; Conv1D/Conv2D: a `Conv` one dimension up with "
        "a kernel 1 step long (the symbolic batch kept)"
    )
    doc_example: ClassVar[tuple] = ({"layer": {"type": "Dense", "units": 8}}, ((5, 4),))
    layer: Annotated[Union[Dense, Conv1D, Conv2D], Field(discriminator="type")]  # noqa: UP007

    @model_validator(mode="after")
    def _plain_inner(self):
        if self.layer.name is not None or self.layer.inputs is not None:
            raise ValueError("the wrapped layer takes no name or inputs (the wrapper has them)")
        return self

    def _inner(self, shapes):
        if len(shapes[0]) < 2:
            raise ShapeError(
                f"expects (steps, ...) inputs of rank >= 2, got {fmt_shape(shapes[0])}",
                hint="add a Reshape layer before it",
            )
        return [shapes[0][1:]]

    def output_shape(self, shapes):
        return (shapes[0][0], *self.layer.output_shape(self._inner(shapes)))

    def weights(self, shapes):
        weights = self.layer.weights(self._inner(shapes))
        if self.layer.type == "Dense":
            return weights
        # ONNX runs the convolution one dimension up, with a kernel 1 step long (conv_time)
        return tuple(
            replace(w, transforms=(("pytorch", "conv"), ("onnx", "conv_time")))
            if w.name == "kernel"
            else w
            for w in weights
        )

    def count_macs(self, shapes, out):
        return shapes[0][0] * self.layer.count_macs(self._inner(shapes), out[1:])

    def regularizers(self):
        return self.layer.regularizers()

    def keras_args(self):
        inner = lw.call(f"keras.layers.{self.layer.keras_class}", **self.layer.keras_args())
        return {"layer": inner}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        inner_in = self._inner(shapes)
        inner_out = out[1:]
        want = self.layer.torch_layout
        inner = self.layer.torch_lowering(inner_in, inner_out, want)
        steps = [lw.call("torch.reshape", lw.X, (-1, *inner_in[0]))]
        rank = len(inner_in[0])
        cf = want == lw.CF and rank >= 2
        if cf:  # channels-last -> channels-first for the convolution
            steps.append(lw.call(lw.Attr(lw.X, "permute"), 0, rank, *range(1, rank)))
        steps += inner.steps
        if cf:
            steps.append(lw.call(lw.Attr(lw.X, "permute"), 0, *range(2, rank + 1), 1))
        steps.append(lw.call("torch.reshape", lw.X, (-1, *out)))
        return lw.TorchLowering(modules=inner.modules, steps=tuple(steps))

    def onnx_out_layout(self, rank: int, in_layouts: list[str]) -> str:
        return lw.CL if self.layer.type == "Dense" else lw.CF

    def onnx_lowering(self, b, layer, out, layout):
        inner = self.layer
        if inner.type == "Dense":  # MatMul on the last axis: every step at once
            inner.onnx_lowering(b, layer, out, layout)
            return
        # a convolution over (steps, *spatial) with a kernel 1 step long: channels-first
        # (batch, channels, steps, *spatial), the symbolic batch dimension kept
        in_shape = b.shape_of(layer.inputs[0])
        spatial = in_shape[1:-1]
        pads = inner._onnx_pads(spatial)
        n = len(spatial)
        x = b.get(layer.inputs[0], lw.CF)
        attrs = dict(
            kernel_shape=[1, *inner.kernel_size],
            strides=[1, *inner.strides],
            dilations=[1, *inner.dilation_rate],
            pads=[0, *pads[:n], 0, *pads[n:]],
            group=getattr(inner, "groups", 1),
        )
        w = b.weight(layer, "kernel")
        bias = [b.weight(layer, "bias")] if inner.use_bias else []

        def emit(name):
            return b.node("Conv", [x, w, *bias], name, **attrs)

        b.then_activation(
            inner.activation, b.tmp(layer, "conv"), out, emit, lw.CF, len(in_shape) + 1
        )


LAYERS = (RepeatVector, Permute, Cropping1D, ZeroPadding1D, UpSampling1D, TimeDistributed)
