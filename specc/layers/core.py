"""Core layers: Input, Dense, Flatten, Reshape, Dropout."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import (
    DENSE_KERNEL,
    ActivationName,
    Initializer,
    Layer,
    PositiveInt,
    Regularizer,
    ShapeError,
    Weight,
    fmt_shape,
    keras_initializer,
    prod,
)


class Input(Layer):
    """A model input written as a layer, as in a Keras Sequential model."""

    type: Literal["Input"]
    keras_class: ClassVar[str] = "Input"
    arity: ClassVar[int | None] = 0
    shape: list[PositiveInt] = Field(min_length=1, max_length=8)
    dtype: Literal["float32", "float16", "float64", "int32", "int64", "uint8", "bool"] = "float32"

    def output_shape(self, shapes):
        return tuple(self.shape)


class Dense(Layer):
    """Fully connected layer on the last axis (keras.layers.Dense)."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["Dense"]
    keras_class: ClassVar[str] = "Dense"
    onnx_doc: ClassVar[str] = (
        "`Gemm` on (batch, features); `MatMul` (+ `Add`) on the last axis for rank > 2"
    )
    torch_doc: ClassVar[str] = "`nn.Linear` on the channels-last tensor"
    doc_example: ClassVar[tuple] = ({"units": 16}, ((8,),))
    units: PositiveInt
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer = None
    bias_regularizer: Regularizer = None
    regularized: ClassVar[dict[str, str]] = {
        "kernel": "kernel_regularizer",
        "bias": "bias_regularizer",
    }

    def output_shape(self, shapes):
        return (*shapes[0][:-1], self.units)

    def weights(self, shapes):
        kernel = Weight(
            "kernel",
            (shapes[0][-1], self.units),
            self.kernel_initializer,
            layout="(in, units)",
            transforms=DENSE_KERNEL,
        )
        if not self.use_bias:
            return (kernel,)
        bias = Weight("bias", (self.units,), self.bias_initializer, True, "(units,)", (), "bias")
        return (kernel, bias)

    def count_macs(self, shapes, out):
        return prod(shapes[0]) * self.units

    def keras_args(self):
        return {
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": keras_initializer(self.kernel_initializer),
            "bias_initializer": keras_initializer(self.bias_initializer),
            **self.keras_regularizer_args(),
        }

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        args = (("in_features", cin), ("out_features", self.units), ("bias", self.use_bias))
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.Linear", args),),
            steps=(lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, len(out), lw.CL)),
        )

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], lw.CL)
        rank = b.in_rank(layer)
        w = b.weight(layer, "kernel")
        bias = [b.weight(layer, "bias")] if self.use_bias else []

        def emit(name):
            if rank == 2:
                return b.node("Gemm", [x, w, *bias], name)
            if not bias:
                return b.node("MatMul", [x, w], name)
            y = b.node("MatMul", [x, w], b.tmp(layer, "matmul"))
            return b.node("Add", [y, bias[0]], name)

        b.then_activation(self.activation, b.tmp(layer, "dense"), out, emit, lw.CL, rank)


class Flatten(Layer):
    """Flattens each sample, in channels-last (Keras) order (keras.layers.Flatten)."""

    type: Literal["Flatten"]
    keras_class: ClassVar[str] = "Flatten"
    onnx_doc: ClassVar[str] = "`Flatten` of the channels-last tensor, so Dense weights carry over"
    torch_doc: ClassVar[str] = (
        "`torch.flatten(x, start_dim=1)` of the channels-last tensor (Keras's order)"
    )

    def output_shape(self, shapes):
        return (prod(shapes[0]),)

    def keras_args(self):
        return {"data_format": "channels_last"}  # the order the next Dense's rows follow

    #: channels-last, as Keras: the following Dense takes Keras's kernel unpermuted
    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=(lw.call("torch.flatten", lw.X, start_dim=1),))

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        # channels-last order, as Keras: the Dense weights after it carry over unchanged
        b.node("Flatten", [b.get(layer.inputs[0], lw.CL)], out, axis=1)


class Reshape(Layer):
    """Reshapes each sample; one dimension may be -1 (keras.layers.Reshape)."""

    type: Literal["Reshape"]
    keras_class: ClassVar[str] = "Reshape"
    onnx_doc: ClassVar[str] = (
        "`Reshape` of the channels-last tensor to `[0, *target]` (batch copied)"
    )
    torch_doc: ClassVar[str] = "`torch.reshape(x, (-1, *target))` of the channels-last tensor"
    target_shape: list[int] = Field(min_length=1, max_length=8)

    def output_shape(self, shapes):
        size = prod(shapes[0])
        target = list(self.target_shape)
        unknown = [i for i, d in enumerate(target) if d == -1]
        if len(unknown) > 1 or any(d == 0 or d < -1 for d in target):
            raise ShapeError(
                f"target_shape {fmt_shape(tuple(target))} may hold positive sizes and at most one -1",
                field="target_shape",
            )
        known = prod(d for d in target if d != -1)
        if unknown:
            if size % known:
                raise ShapeError(
                    f"cannot reshape {fmt_shape(shapes[0])} ({size:,} values) to "
                    f"{fmt_shape(tuple(target))}: {size:,} is not divisible by {known:,}",
                    field="target_shape",
                )
            target[unknown[0]] = size // known
        elif known != size:
            raise ShapeError(
                f"cannot reshape {fmt_shape(shapes[0])} ({size:,} values) to "
                f"{fmt_shape(tuple(target))} ({known:,} values)",
                field="target_shape",
            )
        return tuple(target)

    def keras_args(self):
        return {"target_shape": tuple(self.target_shape)}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=(lw.call("torch.reshape", lw.X, (-1, *out)),))

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        shape = b.const(f"{layer.name}.shape", [0, *layer.output_shape], "int64")
        b.node("Reshape", [b.get(layer.inputs[0], lw.CL), shape], out)


class Dropout(Layer):
    """Randomly zeroes a fraction ``rate`` of inputs while training (keras.layers.Dropout);
    ``noise_shape`` (batch axis first, ``null`` for the input's size) shares one draw along
    the axes where it is 1, e.g. ``[null, 1, 1, 1]`` drops whole samples."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["Dropout"]
    keras_class: ClassVar[str] = "Dropout"
    onnx_doc: ClassVar[str] = "`Identity` (inference)"
    torch_doc: ClassVar[str] = (
        "`nn.Dropout(p=rate)`; with `noise_shape`, `torch.mul(x, F.dropout(ones of the mask's "
        "shape))`; "
        "the seed is Keras-only; identity in `eval()`"
    )
    #: the field crosscheck's training step sets to 0 (the noise is random)
    noise_field: ClassVar[str] = "rate"
    rate: float = Field(ge=0.0, lt=1.0)
    noise_shape: list[Annotated[int, Field(ge=1)] | None] | None = Field(
        default=None, min_length=2, max_length=9
    )
    seed: int | None = None

    def output_shape(self, shapes):
        if self.noise_shape is not None:
            noise_mask(self.noise_shape, shapes[0])
        return shapes[0]

    def keras_args(self):
        noise = None if self.noise_shape is None else tuple(self.noise_shape)
        return {"rate": self.rate, "noise_shape": noise, "seed": self.seed}

    def torch_lowering(self, shapes, out, layout):
        """torch draws its own masks (the seed is Keras's only); identity in eval()."""
        if self.noise_shape is not None:
            mask = noise_mask(self.noise_shape, shapes[0])
            ones = lw.call("torch.ones_like", mask_slice(mask, shapes[0], layout))
            drop = lw.call("F.dropout", ones, p=self.rate, training=lw.Ref("self.training"))
            return lw.TorchLowering(steps=(lw.call("torch.mul", lw.X, drop),))
        args = (("p", self.rate), ("inplace", False))
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.Dropout", args),), steps=(lw.call(lw.SELF, lw.X),)
        )

    def onnx_lowering(self, b, layer, out, layout):
        # the identity at inference
        b.node("Identity", [b.get(layer.inputs[0], layout)], out)


def noise_mask(noise_shape: list, shape: tuple[int, ...]) -> tuple[bool, ...]:
    """For each axis (batch first): whether the mask is shared along it (a 1 in
    ``noise_shape`` where the input is longer); raises ShapeError as Keras would refuse."""
    if len(noise_shape) != len(shape) + 1:
        raise ShapeError(
            f"noise_shape has {len(noise_shape)} entries; the input "
            f"(batch, {', '.join(map(str, shape))}) has {len(shape) + 1} axes",
            field="noise_shape",
            hint="give one entry per axis, the batch first (null keeps the input's size)",
        )
    shared = [noise_shape[0] == 1]
    if noise_shape[0] not in (None, 1):
        raise ShapeError(
            "noise_shape's batch entry must be null or 1", field="noise_shape", hint="use null"
        )
    for entry, size in zip(noise_shape[1:], shape):
        if entry not in (None, 1, size):
            raise ShapeError(
                f"noise_shape entry {entry} must be null, 1 or the input's size {size}",
                field="noise_shape",
            )
        shared.append(entry == 1 and size != 1)
    return tuple(shared)


def mask_slice(shared: tuple[bool, ...], shape: tuple[int, ...], layout: str) -> lw.Expr:
    """``x[...]`` keeping one element along each shared axis, in the torch layout."""
    rank = len(shape)
    ranges: list[tuple[int, int] | None] = [None] * (rank + 1)
    ranges[0] = (0, 1) if shared[0] else None
    for k, size in enumerate(shape):
        ranges[lw.torch_dim(k, rank, layout)] = (0, 1) if shared[k + 1] else (0, size)
    skip = 0 if shared[0] else 1  # the batch axis, kept whole unless shared
    return lw.Slice(lw.X, skip, tuple(r for r in ranges[skip:] if r is not None))


LAYERS = (Input, Dense, Flatten, Reshape, Dropout)
