"""Activation layers: Activation, ReLU, LeakyReLU, Softmax."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import ActivationName, Layer, normalize_axis


class Activation(Layer):
    """Applies a named activation (keras.layers.Activation)."""

    type: Literal["Activation"]
    keras_class: ClassVar[str] = "Activation"
    activation: ActivationName

    def keras_args(self):
        return {"activation": self.activation}

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=lw.activation_steps(self.activation, len(out), layout))


class ReLU(Layer):
    """Rectified linear unit with optional cap, slope and threshold (keras.layers.ReLU)."""

    type: Literal["ReLU"]
    keras_class: ClassVar[str] = "ReLU"
    max_value: float | None = Field(default=None, ge=0.0)
    negative_slope: float = Field(default=0.0, ge=0.0)
    threshold: float = Field(default=0.0, ge=0.0)  # Keras refuses a negative threshold

    def keras_args(self):
        return {
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }

    def torch_lowering(self, shapes, out, layout):
        """keras.activations.relu (ReLU.static_call in Keras 3), case by case."""
        slope, cap, threshold = self.negative_slope, self.max_value, self.threshold
        if slope == 0 and threshold == 0:
            if cap is None:
                return lw.TorchLowering(steps=(lw.call("F.relu", lw.X),))
            return lw.TorchLowering(steps=(lw.call("torch.clamp", lw.X, min=0.0, max=cap),))
        if slope != 0 and threshold == 0 and cap is None:
            return lw.TorchLowering(steps=(lw.call("F.leaky_relu", lw.X, negative_slope=slope),))
        # Keras keeps x above the threshold (clipped to [0, max_value] when capped) and
        # gives negative_slope * (x - threshold) at or below it
        kept = lw.X if cap is None else lw.call("torch.clamp", lw.X, min=0.0, max=cap)
        below = lw.BinOp("*", (lw.Lit(slope), lw.BinOp("-", (lw.X, lw.Lit(threshold)))))
        if slope == 0:
            below = lw.Lit(0.0)
        condition = lw.BinOp(">", (lw.X, lw.Lit(threshold)))
        return lw.TorchLowering(steps=(lw.call("torch.where", condition, kept, below),))


class LeakyReLU(Layer):
    """Leaky ReLU; Keras's default slope is 0.3 (torch's is 0.01) (keras.layers.LeakyReLU)."""

    type: Literal["LeakyReLU"]
    keras_class: ClassVar[str] = "LeakyReLU"
    negative_slope: float = Field(default=0.3, ge=0.0)

    def keras_args(self):
        return {"negative_slope": self.negative_slope}

    def torch_lowering(self, shapes, out, layout):
        slope = self.negative_slope
        return lw.TorchLowering(steps=(lw.call("F.leaky_relu", lw.X, negative_slope=slope),))


class Softmax(Layer):
    """Softmax over an axis (keras.layers.Softmax)."""

    type: Literal["Softmax"]
    keras_class: ClassVar[str] = "Softmax"
    axis: int = -1

    def output_shape(self, shapes):
        normalize_axis(self.axis, len(shapes[0]))
        return shapes[0]

    def keras_args(self):
        return {"axis": self.axis}

    def torch_lowering(self, shapes, out, layout):
        rank = len(out)
        dim = lw.torch_dim(normalize_axis(self.axis, rank), rank, layout)
        return lw.TorchLowering(steps=(lw.call("F.softmax", lw.X, dim=dim),))


LAYERS = (Activation, ReLU, LeakyReLU, Softmax)
