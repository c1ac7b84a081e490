"""Core layers: Input, Dense, Flatten, Reshape, Dropout."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import (
    ActivationName,
    Initializer,
    Layer,
    PositiveInt,
    ShapeError,
    fmt_shape,
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

    type: Literal["Dense"]
    keras_class: ClassVar[str] = "Dense"
    units: PositiveInt
    activation: ActivationName | None = None
    use_bias: bool = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"

    def output_shape(self, shapes):
        return (*shapes[0][:-1], self.units)

    def count_params(self, shapes, out):
        return (shapes[0][-1] * self.units + self.units * self.use_bias, 0)

    def count_macs(self, shapes, out):
        return prod(shapes[0]) * self.units

    def keras_args(self):
        return {
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        cin = shapes[0][-1]
        weights = [
            lw.TorchWeight("kernel", (cin, self.units), "weight", "dense", self.kernel_initializer)
        ]
        if self.use_bias:
            weights.append(
                lw.TorchWeight("bias", (self.units,), "bias", "identity", self.bias_initializer)
            )
        args = (("in_features", cin), ("out_features", self.units), ("bias", self.use_bias))
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.Linear", args),),
            steps=(lw.call(lw.SELF, lw.X), *lw.activation_steps(self.activation, len(out), lw.CL)),
            weights=tuple(weights),
        )


class Flatten(Layer):
    """Flattens each sample, in channels-last (Keras) order (keras.layers.Flatten)."""

    type: Literal["Flatten"]
    keras_class: ClassVar[str] = "Flatten"

    def output_shape(self, shapes):
        return (prod(shapes[0]),)

    def keras_args(self):
        return {"data_format": "channels_last"}  # the order the next Dense's rows follow

    #: channels-last, as Keras: the following Dense takes Keras's kernel unpermuted
    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=(lw.call("torch.flatten", lw.X, start_dim=1),))


class Reshape(Layer):
    """Reshapes each sample; one dimension may be -1 (keras.layers.Reshape)."""

    type: Literal["Reshape"]
    keras_class: ClassVar[str] = "Reshape"
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


class Dropout(Layer):
    """Randomly zeroes a fraction ``rate`` of inputs while training (keras.layers.Dropout)."""

    type: Literal["Dropout"]
    keras_class: ClassVar[str] = "Dropout"
    rate: float = Field(ge=0.0, lt=1.0)
    seed: int | None = None

    def keras_args(self):
        return {"rate": self.rate, "seed": self.seed}

    def torch_lowering(self, shapes, out, layout):
        """torch draws its own masks (the seed is Keras's only); identity in eval()."""
        args = (("p", self.rate), ("inplace", False))
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.Dropout", args),), steps=(lw.call(lw.SELF, lw.X),)
        )


LAYERS = (Input, Dense, Flatten, Reshape, Dropout)
