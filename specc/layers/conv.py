"""Convolutions: Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from . import lowering as lw
from .base import (
    ActivationName,
    Initializer,
    Layer,
    Padding,
    Pair,
    PositiveInt,
    Shape,
    ShapeError,
    Single,
    fmt_shape,
    prod,
    window_out,
)


class _Conv(Layer):
    """Fields and rules shared by the Keras convolution layers."""

    rank: ClassVar[int] = 2
    padding: Padding = "valid"
    activation: ActivationName | None = None
    use_bias: bool = True
    bias_initializer: Initializer = "zeros"

    @model_validator(mode="after")
    def _strides_with_dilation(self):
        # Keras refuses this combination at construction time.
        if any(s > 1 for s in self.strides) and any(d > 1 for d in self.dilation_rate):
            raise ValueError("strides > 1 cannot be combined with dilation_rate > 1 (as in Keras)")
        return self

    def _split(self, shapes: list[Shape]) -> tuple[tuple[int, ...], int]:
        shape = shapes[0]
        want = self.rank + 1
        if len(shape) != want:
            layout = "(steps, channels)" if self.rank == 1 else "(height, width, channels)"
            raise ShapeError(
                f"expects a rank-{want} input {layout}, got {fmt_shape(shape)}",
                hint="add a Reshape layer before it" if len(shape) < want else None,
            )
        return shape[:-1], shape[-1]

    def _spatial_out(self, shapes: list[Shape]) -> tuple[tuple[int, ...], int]:
        spatial, channels = self._split(shapes)
        out = window_out(spatial, self.kernel_size, self.strides, self.dilation_rate, self.padding)
        return out, channels

    # -- PyTorch ------------------------------------------------------------------------
    torch_layout: ClassVar[str] = lw.CF

    def _torch_padding(self, shapes: list[Shape]) -> tuple[tuple[int, ...], tuple]:
        """(padding argument of the torch module, steps before it): TF 'same' pads the odd
        pixel bottom/right, which torch's symmetric ``padding`` cannot say; then F.pad."""
        spatial = shapes[0][:-1]
        if self.padding == "valid":
            return (0,) * self.rank, ()
        pads = lw.same_pads(spatial, self.kernel_size, self.strides, self.dilation_rate)
        if all(before == after for before, after in pads):
            return tuple(before for before, _ in pads), ()
        return (0,) * self.rank, (lw.call("F.pad", lw.X, lw.fpad_arg(pads)),)

    def _torch_conv(self, cin: int, cout: int, groups: int, bias: bool, padding) -> tuple:
        return (
            ("in_channels", cin),
            ("out_channels", cout),
            ("kernel_size", self.kernel_size),
            ("stride", self.strides),
            ("padding", padding),
            ("dilation", self.dilation_rate),
            ("groups", groups),
            ("bias", bias),
            ("padding_mode", "zeros"),
        )

    def _torch_bias(self, n: int, suffix: str = "") -> tuple:
        if not self.use_bias:
            return ()
        return (lw.TorchWeight("bias", (n,), "bias", "identity", self.bias_initializer, suffix),)

    def _common_args(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "activation": self.activation,
            "use_bias": self.use_bias,
            # not keras.config.image_data_format(): a user's keras.json must not change the meaning
            "data_format": "channels_last",
        }


class Conv2D(_Conv):
    """2D convolution (keras.layers.Conv2D)."""

    type: Literal["Conv2D"]
    keras_class: ClassVar[str] = "Conv2D"
    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    groups: PositiveInt = 1
    kernel_initializer: Initializer = "glorot_uniform"

    def output_shape(self, shapes):
        out, channels = self._spatial_out(shapes)
        for n, what in ((channels, "input channels"), (self.filters, "filters")):
            if n % self.groups:
                raise ShapeError(
                    f"{what} ({n}) must be divisible by groups ({self.groups})", field="groups"
                )
        return (*out, self.filters)

    def count_params(self, shapes, out):
        cin = shapes[0][-1]
        return (
            prod(self.kernel_size) * (cin // self.groups) * self.filters
            + self.filters * self.use_bias,
            0,
        )

    def count_macs(self, shapes, out):
        cin = shapes[0][-1]
        return prod(out) * prod(self.kernel_size) * (cin // self.groups)

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "groups": self.groups,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        padding, pre = self._torch_padding(shapes)
        kernel = (*self.kernel_size, cin // self.groups, self.filters)
        return lw.TorchLowering(
            modules=(
                lw.TorchModule(
                    "nn.Conv2d",
                    self._torch_conv(cin, self.filters, self.groups, self.use_bias, padding),
                ),
            ),
            steps=(*pre, lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, 3, lw.CF)),
            weights=(
                lw.TorchWeight("kernel", kernel, "weight", "conv", self.kernel_initializer),
                *self._torch_bias(self.filters),
            ),
        )


class Conv1D(_Conv):
    """1D convolution over (steps, channels) (keras.layers.Conv1D)."""

    type: Literal["Conv1D"]
    keras_class: ClassVar[str] = "Conv1D"
    rank: ClassVar[int] = 1
    filters: PositiveInt
    kernel_size: Single
    strides: Single = (1,)
    dilation_rate: Single = (1,)
    kernel_initializer: Initializer = "glorot_uniform"

    def output_shape(self, shapes):
        out, _ = self._spatial_out(shapes)
        return (*out, self.filters)

    def count_params(self, shapes, out):
        cin = shapes[0][-1]
        return (self.kernel_size[0] * cin * self.filters + self.filters * self.use_bias, 0)

    def count_macs(self, shapes, out):
        return prod(out) * self.kernel_size[0] * shapes[0][-1]

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        padding, pre = self._torch_padding(shapes)
        kernel = (*self.kernel_size, cin, self.filters)
        return lw.TorchLowering(
            modules=(
                lw.TorchModule(
                    "nn.Conv1d", self._torch_conv(cin, self.filters, 1, self.use_bias, padding)
                ),
            ),
            steps=(*pre, lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, 2, lw.CF)),
            weights=(
                lw.TorchWeight("kernel", kernel, "weight", "conv", self.kernel_initializer),
                *self._torch_bias(self.filters),
            ),
        )


class DepthwiseConv2D(_Conv):
    """Depthwise 2D convolution: one kernel per input channel (keras.layers.DepthwiseConv2D)."""

    type: Literal["DepthwiseConv2D"]
    keras_class: ClassVar[str] = "DepthwiseConv2D"
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    depth_multiplier: PositiveInt = 1
    depthwise_initializer: Initializer = "glorot_uniform"

    def output_shape(self, shapes):
        out, channels = self._spatial_out(shapes)
        return (*out, channels * self.depth_multiplier)

    def count_params(self, shapes, out):
        cout = shapes[0][-1] * self.depth_multiplier
        return (prod(self.kernel_size) * cout + cout * self.use_bias, 0)

    def count_macs(self, shapes, out):
        return prod(out) * prod(self.kernel_size)

    def keras_args(self):
        return {
            **self._common_args(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": self.depthwise_initializer,
            "bias_initializer": self.bias_initializer,
        }

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        cout = cin * self.depth_multiplier
        padding, pre = self._torch_padding(shapes)
        kernel = (*self.kernel_size, cin, self.depth_multiplier)
        return lw.TorchLowering(
            modules=(
                lw.TorchModule(
                    "nn.Conv2d", self._torch_conv(cin, cout, cin, self.use_bias, padding)
                ),
            ),
            steps=(*pre, lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, 3, lw.CF)),
            weights=(
                lw.TorchWeight("kernel", kernel, "weight", "depthwise", self.depthwise_initializer),
                *self._torch_bias(cout),
            ),
        )


class SeparableConv2D(_Conv):
    """Depthwise then pointwise 2D convolution (keras.layers.SeparableConv2D)."""

    type: Literal["SeparableConv2D"]
    keras_class: ClassVar[str] = "SeparableConv2D"
    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    depth_multiplier: PositiveInt = 1
    depthwise_initializer: Initializer = "glorot_uniform"
    pointwise_initializer: Initializer = "glorot_uniform"

    def output_shape(self, shapes):
        out, _ = self._spatial_out(shapes)
        return (*out, self.filters)

    def count_params(self, shapes, out):
        mid = shapes[0][-1] * self.depth_multiplier
        return (prod(self.kernel_size) * mid + mid * self.filters + self.filters * self.use_bias, 0)

    def count_macs(self, shapes, out):
        mid = shapes[0][-1] * self.depth_multiplier
        spatial = prod(out[:-1])
        return spatial * mid * prod(self.kernel_size) + spatial * mid * self.filters

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": self.depthwise_initializer,
            "pointwise_initializer": self.pointwise_initializer,
            "bias_initializer": self.bias_initializer,
        }

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        mid = cin * self.depth_multiplier
        padding, pre = self._torch_padding(shapes)
        depthwise = self._torch_conv(cin, mid, cin, False, padding)
        pointwise = (
            ("in_channels", mid),
            ("out_channels", self.filters),
            ("kernel_size", (1, 1)),
            ("stride", (1, 1)),
            ("padding", (0, 0)),
            ("dilation", (1, 1)),
            ("groups", 1),
            ("bias", self.use_bias),
            ("padding_mode", "zeros"),
        )
        return lw.TorchLowering(
            modules=(
                lw.TorchModule("nn.Conv2d", depthwise, "depthwise"),
                lw.TorchModule("nn.Conv2d", pointwise, "pointwise"),
            ),
            steps=(
                *pre,
                lw.call(lw.Module("depthwise"), lw.X),
                lw.call(lw.Module("pointwise"), lw.X),
                *lw.activation_steps(self.activation, 3, lw.CF),
            ),
            weights=(
                lw.TorchWeight(
                    "depthwise_kernel",
                    (*self.kernel_size, cin, self.depth_multiplier),
                    "weight",
                    "depthwise",
                    self.depthwise_initializer,
                    "depthwise",
                ),
                lw.TorchWeight(
                    "pointwise_kernel",
                    (1, 1, mid, self.filters),
                    "weight",
                    "conv",
                    self.pointwise_initializer,
                    "pointwise",
                ),
                *self._torch_bias(self.filters, "pointwise"),
            ),
        )


class Conv2DTranspose(_Conv):
    """Transposed 2D convolution (keras.layers.Conv2DTranspose)."""

    type: Literal["Conv2DTranspose"]
    keras_class: ClassVar[str] = "Conv2DTranspose"
    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    kernel_initializer: Initializer = "glorot_uniform"

    def output_shape(self, shapes):
        spatial, _ = self._split(shapes)
        out = []
        for size, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            effective = (k - 1) * d + 1
            # keras.src.utils.conv_utils.deconv_output_length with output_padding=None
            out.append(size * s if self.padding == "same" else size * s + max(effective - s, 0))
        return (*out, self.filters)

    def count_params(self, shapes, out):
        cin = shapes[0][-1]
        return (prod(self.kernel_size) * cin * self.filters + self.filters * self.use_bias, 0)

    def count_macs(self, shapes, out):
        return prod(shapes[0]) * prod(self.kernel_size) * self.filters

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }

    def torch_lowering(self, shapes, out, layout):
        """torch crops ``padding`` on both sides and adds ``output_padding`` at the end; TF's
        'same' crops the odd pixel at the end, so an uneven crop becomes a slice."""
        spatial, cin = shapes[0][:-1], shapes[0][-1]
        padding, output_padding, ranges, sliced = [], [], [], False
        for size, k, s, d, want in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate, out[:-1]
        ):
            full = (size - 1) * s + (k - 1) * d + 1  # torch with padding 0
            total = max(full - want, 0) if self.padding == "same" else 0
            before, after = total // 2, total - total // 2
            output_padding.append(max(want - full, 0))
            padding.append(before if before == after else 0)
            ranges.append((before, before + want) if before != after else (0, want))
            sliced = sliced or before != after
        steps: list = [lw.call(lw.SELF, lw.X)]
        if sliced:
            steps.append(lw.Slice(lw.X, 2, tuple(ranges)))
        args = (
            ("in_channels", cin),
            ("out_channels", self.filters),
            ("kernel_size", self.kernel_size),
            ("stride", self.strides),
            ("padding", tuple(padding)),
            ("output_padding", tuple(output_padding)),
            ("groups", 1),
            ("bias", self.use_bias),
            ("dilation", self.dilation_rate),
            ("padding_mode", "zeros"),
        )
        kernel = (*self.kernel_size, self.filters, cin)
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.ConvTranspose2d", args),),
            steps=(*steps, *lw.activation_steps(self.activation, 3, lw.CF)),
            weights=(
                lw.TorchWeight("kernel", kernel, "weight", "conv", self.kernel_initializer),
                *self._torch_bias(self.filters),
            ),
        )


LAYERS = (Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose)
