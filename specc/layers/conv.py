"""Convolutions: Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import ClassVar, Literal

from pydantic import model_validator

from . import lowering as lw
from .base import (
    CONV_KERNEL,
    DEPTHWISE_KERNEL,
    ActivationName,
    Initializer,
    Layer,
    Padding,
    Pair,
    PositiveInt,
    Regularizer,
    Shape,
    ShapeError,
    Single,
    Weight,
    fmt_shape,
    keras_initializer,
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
    bias_regularizer: Regularizer = None

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
        # 'causal' (Conv1D) pads (k - 1) * d steps before: the length of 'same', as Keras
        padding = "same" if self.padding == "causal" else self.padding
        out = window_out(spatial, self.kernel_size, self.strides, self.dilation_rate, padding)
        return out, channels

    def _pads(self, sizes) -> tuple[tuple[int, int], ...]:
        """(before, after) per spatial axis: TF's 'same', or all before for 'causal'."""
        if self.padding == "causal":
            return tuple(((k - 1) * d, 0) for k, d in zip(self.kernel_size, self.dilation_rate))
        return lw.same_pads(sizes, self.kernel_size, self.strides, self.dilation_rate)

    # -- PyTorch ------------------------------------------------------------------------
    torch_layout: ClassVar[str] = lw.CF

    def _torch_padding(self, shapes: list[Shape]) -> tuple[tuple[int, ...], tuple]:
        """(padding argument of the torch module, steps before it): TF 'same' pads the odd
        pixel bottom/right, which torch's symmetric ``padding`` cannot say; then F.pad."""
        spatial = shapes[0][:-1]
        if self.padding == "valid":
            return (0,) * self.rank, ()
        pads = self._pads(spatial)
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

    def _bias(self, n: int, module: str = "") -> tuple[Weight, ...]:
        if not self.use_bias:
            return ()
        return (
            Weight("bias", (n,), self.bias_initializer, True, "(filters,)", (), "bias", module),
        )

    # -- ONNX ---------------------------------------------------------------------------
    onnx_layout: ClassVar[str] = lw.CF

    def _onnx_pads(self, sizes) -> list[int]:
        if self.padding == "valid":
            return [0] * (2 * len(sizes))
        return lw.onnx_pads(self._pads(sizes))

    def onnx_lowering(self, b, layer, out, layout):
        in_shape = b.shape_of(layer.inputs[0])
        x = b.get(layer.inputs[0], lw.CF)
        attrs = dict(
            kernel_shape=list(self.kernel_size),
            strides=list(self.strides),
            dilations=list(self.dilation_rate),
            pads=self._onnx_pads(in_shape[:-1]),
        )
        bias = [b.weight(layer, "bias")] if self.use_bias else []
        emit = self._onnx_emit(b, layer, x, bias, attrs, in_shape)
        b.then_activation(
            self.activation, b.tmp(layer, "conv"), out, emit, lw.CF, len(in_shape) + 1
        )

    def _onnx_emit(self, b, layer, x, bias, attrs, in_shape):
        """A function emitting the convolution into the value it is given."""
        w = b.weight(layer, "kernel")
        group = getattr(self, "groups", 1)
        return lambda name: b.node("Conv", [x, w, *bias], name, group=group, **attrs)

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
    onnx_doc: ClassVar[str] = (
        "`Conv` (group, dilations); `'same'` as explicit pads with the odd pixel at the end (bottom/right), as TensorFlow"
    )
    torch_doc: ClassVar[str] = (
        "`nn.Conv2d` (groups, dilation) on NCHW; 'same' as symmetric `padding=(p, q)` or `F.pad` then `padding=0` (never torch's `padding='same'`, which refuses stride > 1)"
    )
    doc_example: ClassVar[tuple] = ({"filters": 16, "kernel_size": 3}, ((8, 8, 4),))
    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    groups: PositiveInt = 1
    kernel_initializer: Initializer = "glorot_uniform"
    kernel_regularizer: Regularizer = None
    regularized: ClassVar[dict[str, str]] = {
        "kernel": "kernel_regularizer",
        "bias": "bias_regularizer",
    }

    def output_shape(self, shapes):
        out, channels = self._spatial_out(shapes)
        for n, what in ((channels, "input channels"), (self.filters, "filters")):
            if n % self.groups:
                raise ShapeError(
                    f"{what} ({n}) must be divisible by groups ({self.groups})", field="groups"
                )
        return (*out, self.filters)

    def weights(self, shapes):
        kernel = (*self.kernel_size, shapes[0][-1] // self.groups, self.filters)
        return (
            Weight(
                "kernel",
                kernel,
                self.kernel_initializer,
                layout="(kh, kw, in_channels/groups, filters)",
                transforms=CONV_KERNEL,
            ),
            *self._bias(self.filters),
        )

    def count_macs(self, shapes, out):
        cin = shapes[0][-1]
        return prod(out) * prod(self.kernel_size) * (cin // self.groups)

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "groups": self.groups,
            "kernel_initializer": keras_initializer(self.kernel_initializer),
            "bias_initializer": keras_initializer(self.bias_initializer),
            **self.keras_regularizer_args(),
        }

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        padding, pre = self._torch_padding(shapes)
        return lw.TorchLowering(
            modules=(
                lw.TorchModule(
                    "nn.Conv2d",
                    self._torch_conv(cin, self.filters, self.groups, self.use_bias, padding),
                ),
            ),
            steps=(*pre, lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, 3, lw.CF)),
        )


class Conv1D(_Conv):
    """1D convolution over (steps, channels) (keras.layers.Conv1D)."""

    type: Literal["Conv1D"]
    keras_class: ClassVar[str] = "Conv1D"
    onnx_doc: ClassVar[str] = (
        "`Conv` (dilations); `'same'` as explicit pads with the odd pixel at the end, as "
        "TensorFlow; `'causal'` as pads `[(k - 1) * d, 0]`"
    )
    torch_doc: ClassVar[str] = (
        "`nn.Conv1d` on NCL; 'same' as explicit symmetric `padding` or `F.pad` (odd pixel at "
        "the end); 'causal' as `F.pad(x, ((k - 1) * d, 0))`"
    )
    doc_example: ClassVar[tuple] = ({"filters": 16, "kernel_size": 3}, ((10, 4),))
    rank: ClassVar[int] = 1
    #: 'causal' pads (kernel_size - 1) * dilation_rate steps at the start only, so output
    #: step t sees inputs up to t (keras.layers.Conv1D; WaveNet / TCN)
    padding: Literal["valid", "same", "causal"] = "valid"
    filters: PositiveInt
    kernel_size: Single
    strides: Single = (1,)
    dilation_rate: Single = (1,)
    kernel_initializer: Initializer = "glorot_uniform"
    kernel_regularizer: Regularizer = None
    regularized: ClassVar[dict[str, str]] = {
        "kernel": "kernel_regularizer",
        "bias": "bias_regularizer",
    }

    def output_shape(self, shapes):
        out, _ = self._spatial_out(shapes)
        return (*out, self.filters)

    def weights(self, shapes):
        return (
            Weight(
                "kernel",
                (*self.kernel_size, shapes[0][-1], self.filters),
                self.kernel_initializer,
                layout="(kernel, in_channels, filters)",
                transforms=CONV_KERNEL,
            ),
            *self._bias(self.filters),
        )

    def count_macs(self, shapes, out):
        return prod(out) * self.kernel_size[0] * shapes[0][-1]

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "kernel_initializer": keras_initializer(self.kernel_initializer),
            "bias_initializer": keras_initializer(self.bias_initializer),
            **self.keras_regularizer_args(),
        }

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        padding, pre = self._torch_padding(shapes)
        return lw.TorchLowering(
            modules=(
                lw.TorchModule(
                    "nn.Conv1d", self._torch_conv(cin, self.filters, 1, self.use_bias, padding)
                ),
            ),
            steps=(*pre, lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, 2, lw.CF)),
        )


class DepthwiseConv2D(_Conv):
    """Depthwise 2D convolution: one kernel per input channel (keras.layers.DepthwiseConv2D)."""

    type: Literal["DepthwiseConv2D"]
    keras_class: ClassVar[str] = "DepthwiseConv2D"
    onnx_doc: ClassVar[str] = "`Conv` with `group = cin`"
    torch_doc: ClassVar[str] = "`nn.Conv2d(groups=C, out_channels=C·M)`"
    doc_example: ClassVar[tuple] = ({"kernel_size": 3, "depth_multiplier": 2}, ((8, 8, 4),))
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    depth_multiplier: PositiveInt = 1
    depthwise_initializer: Initializer = "glorot_uniform"
    depthwise_regularizer: Regularizer = None
    #: Keras 3 names the depthwise variable 'kernel'; its argument is depthwise_regularizer
    regularized: ClassVar[dict[str, str]] = {
        "kernel": "depthwise_regularizer",
        "bias": "bias_regularizer",
    }

    def output_shape(self, shapes):
        out, channels = self._spatial_out(shapes)
        return (*out, channels * self.depth_multiplier)

    def weights(self, shapes):
        cin = shapes[0][-1]
        return (
            # Keras 3 names this variable 'kernel'
            Weight(
                "kernel",
                (*self.kernel_size, cin, self.depth_multiplier),
                self.depthwise_initializer,
                layout="(kh, kw, in_channels, depth_multiplier)",
                transforms=DEPTHWISE_KERNEL,
            ),
            *self._bias(cin * self.depth_multiplier),
        )

    def count_macs(self, shapes, out):
        return prod(out) * prod(self.kernel_size)

    def keras_args(self):
        return {
            **self._common_args(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": keras_initializer(self.depthwise_initializer),
            "bias_initializer": keras_initializer(self.bias_initializer),
            **self.keras_regularizer_args(),
        }

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        cout = cin * self.depth_multiplier
        padding, pre = self._torch_padding(shapes)
        return lw.TorchLowering(
            modules=(
                lw.TorchModule(
                    "nn.Conv2d", self._torch_conv(cin, cout, cin, self.use_bias, padding)
                ),
            ),
            steps=(*pre, lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, 3, lw.CF)),
        )

    def _onnx_emit(self, b, layer, x, bias, attrs, in_shape):
        w = b.weight(layer, "kernel")
        return lambda name: b.node("Conv", [x, w, *bias], name, group=in_shape[-1], **attrs)


class SeparableConv2D(_Conv):
    """Depthwise then pointwise 2D convolution (keras.layers.SeparableConv2D)."""

    type: Literal["SeparableConv2D"]
    keras_class: ClassVar[str] = "SeparableConv2D"
    onnx_doc: ClassVar[str] = (
        "depthwise `Conv` (`<layer>/depthwise`), then a 1x1 `Conv` with the bias"
    )
    torch_doc: ClassVar[str] = (
        "two modules `<name>_depthwise` (no bias) and `<name>_pointwise` (1x1, bias)"
    )
    doc_example: ClassVar[tuple] = ({"filters": 16, "kernel_size": 3}, ((8, 8, 4),))
    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    depth_multiplier: PositiveInt = 1
    depthwise_initializer: Initializer = "glorot_uniform"
    pointwise_initializer: Initializer = "glorot_uniform"
    depthwise_regularizer: Regularizer = None
    pointwise_regularizer: Regularizer = None
    regularized: ClassVar[dict[str, str]] = {
        "depthwise_kernel": "depthwise_regularizer",
        "pointwise_kernel": "pointwise_regularizer",
        "bias": "bias_regularizer",
    }

    def output_shape(self, shapes):
        out, _ = self._spatial_out(shapes)
        return (*out, self.filters)

    def weights(self, shapes):
        cin = shapes[0][-1]
        mid = cin * self.depth_multiplier
        return (
            Weight(
                "depthwise_kernel",
                (*self.kernel_size, cin, self.depth_multiplier),
                self.depthwise_initializer,
                layout="(kh, kw, in_channels, depth_multiplier)",
                transforms=DEPTHWISE_KERNEL,
                torch_module="depthwise",
            ),
            Weight(
                "pointwise_kernel",
                (1, 1, mid, self.filters),
                self.pointwise_initializer,
                layout="(1, 1, in_channels*depth_multiplier, filters)",
                transforms=CONV_KERNEL,
                torch_module="pointwise",
            ),
            *self._bias(self.filters, "pointwise"),
        )

    def count_macs(self, shapes, out):
        mid = shapes[0][-1] * self.depth_multiplier
        spatial = prod(out[:-1])
        return spatial * mid * prod(self.kernel_size) + spatial * mid * self.filters

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": keras_initializer(self.depthwise_initializer),
            "pointwise_initializer": keras_initializer(self.pointwise_initializer),
            "bias_initializer": keras_initializer(self.bias_initializer),
            **self.keras_regularizer_args(),
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
        )

    def _onnx_emit(self, b, layer, x, bias, attrs, in_shape):
        dw = b.weight(layer, "depthwise_kernel")
        pw = b.weight(layer, "pointwise_kernel")
        ones = [1] * self.rank

        def emit(name):
            mid = b.node("Conv", [x, dw], b.tmp(layer, "depthwise"), group=in_shape[-1], **attrs)
            return b.node(
                "Conv",
                [mid, pw, *bias],
                name,
                kernel_shape=ones,
                strides=ones,
                dilations=ones,
                pads=[0] * (2 * self.rank),
                group=1,
            )

        return emit


class Conv2DTranspose(_Conv):
    """Transposed 2D convolution (keras.layers.Conv2DTranspose)."""

    type: Literal["Conv2DTranspose"]
    keras_class: ClassVar[str] = "Conv2DTranspose"
    onnx_doc: ClassVar[str] = (
        "`ConvTranspose` with explicit pads and `output_padding` giving Keras's size: `'same'` crops `max(k_eff - s, 0)` with the odd pixel at the end; a kernel smaller than the stride adds `s - k_eff` at the end"
    )
    torch_doc: ClassVar[str] = (
        "`nn.ConvTranspose2d` with `output_padding` for k_eff < s; symmetric crop → `padding`; uneven crop → `padding=0` and a slice"
    )
    doc_example: ClassVar[tuple] = ({"filters": 16, "kernel_size": 3}, ((8, 8, 4),))
    filters: PositiveInt
    kernel_size: Pair
    strides: Pair = (1, 1)
    dilation_rate: Pair = (1, 1)
    kernel_initializer: Initializer = "glorot_uniform"
    kernel_regularizer: Regularizer = None
    regularized: ClassVar[dict[str, str]] = {
        "kernel": "kernel_regularizer",
        "bias": "bias_regularizer",
    }

    def output_shape(self, shapes):
        spatial, _ = self._split(shapes)
        out = []
        for size, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            effective = (k - 1) * d + 1
            # keras.src.utils.conv_utils.deconv_output_length with output_padding=None
            out.append(size * s if self.padding == "same" else size * s + max(effective - s, 0))
        return (*out, self.filters)

    def weights(self, shapes):
        return (
            Weight(
                "kernel",
                (*self.kernel_size, self.filters, shapes[0][-1]),
                self.kernel_initializer,
                layout="(kh, kw, filters, in_channels)",
                transforms=CONV_KERNEL,
            ),
            *self._bias(self.filters),
        )

    def count_macs(self, shapes, out):
        return prod(shapes[0]) * prod(self.kernel_size) * self.filters

    def keras_args(self):
        return {
            "filters": self.filters,
            **self._common_args(),
            "kernel_initializer": keras_initializer(self.kernel_initializer),
            "bias_initializer": keras_initializer(self.bias_initializer),
            **self.keras_regularizer_args(),
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
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.ConvTranspose2d", args),),
            steps=(*steps, *lw.activation_steps(self.activation, 3, lw.CF)),
        )

    def _onnx_emit(self, b, layer, x, bias, attrs, in_shape):
        """Keras's output size; TF crops the odd pixel at the end."""
        w = b.weight(layer, "kernel")
        begin, end, extra = [], [], []
        for k, s, d in zip(self.kernel_size, self.strides, self.dilation_rate):
            effective = (k - 1) * d + 1
            total = max(effective - s, 0) if self.padding == "same" else 0
            begin.append(total // 2)
            end.append(total - total // 2)
            extra.append(max(s - effective, 0))
        attrs = {**attrs, "pads": begin + end}
        return lambda name: b.node(
            "ConvTranspose", [x, w, *bias], name, output_padding=extra, **attrs
        )


LAYERS = (Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose)
