"""Activation layers: Activation, ReLU, LeakyReLU, Softmax."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import ActivationName, Layer, normalize_axis


class Activation(Layer):
    """Applies a named activation (keras.layers.Activation)."""

    type: Literal["Activation"]
    keras_class: ClassVar[str] = "Activation"
    activation: ActivationName

    def keras_args(self):
        return {"activation": self.activation}


class ReLU(Layer):
    """Rectified linear unit with optional cap, slope and threshold (keras.layers.ReLU)."""

    type: Literal["ReLU"]
    keras_class: ClassVar[str] = "ReLU"
    max_value: float | None = Field(default=None, ge=0.0)
    negative_slope: float = Field(default=0.0, ge=0.0)
    threshold: float = 0.0

    def keras_args(self):
        return {
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


class LeakyReLU(Layer):
    """Leaky ReLU; Keras's default slope is 0.3 (torch's is 0.01) (keras.layers.LeakyReLU)."""

    type: Literal["LeakyReLU"]
    keras_class: ClassVar[str] = "LeakyReLU"
    negative_slope: float = Field(default=0.3, ge=0.0)

    def keras_args(self):
        return {"negative_slope": self.negative_slope}


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


LAYERS = (Activation, ReLU, LeakyReLU, Softmax)
