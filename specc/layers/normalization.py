"""Normalization: BatchNormalization, LayerNormalization."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Layer, normalize_axis


class BatchNormalization(Layer):
    """Batch normalization (keras.layers.BatchNormalization).

    Keras counts gamma/beta as trainable and the moving mean/variance as non-trainable.
    Keras momentum 0.99 means torch momentum 0.01; epsilon defaults to 1e-3 (torch: 1e-5).
    """

    type: Literal["BatchNormalization"]
    keras_class: ClassVar[str] = "BatchNormalization"
    axis: int = -1
    momentum: float = Field(default=0.99, ge=0.0, le=1.0)
    epsilon: float = Field(default=1e-3, gt=0.0, le=1.0)
    center: bool = True
    scale: bool = True

    def output_shape(self, shapes):
        normalize_axis(self.axis, len(shapes[0]))
        return shapes[0]

    def count_params(self, shapes, out):
        channels = shapes[0][normalize_axis(self.axis, len(shapes[0]))]
        return (channels * (self.center + self.scale), 2 * channels)

    def keras_args(self):
        return {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }


class LayerNormalization(Layer):
    """Layer normalization over the last axis (keras.layers.LayerNormalization)."""

    type: Literal["LayerNormalization"]
    keras_class: ClassVar[str] = "LayerNormalization"
    axis: int = -1
    epsilon: float = Field(default=1e-3, gt=0.0, le=1.0)
    center: bool = True
    scale: bool = True

    def output_shape(self, shapes):
        normalize_axis(self.axis, len(shapes[0]))
        return shapes[0]

    def count_params(self, shapes, out):
        channels = shapes[0][normalize_axis(self.axis, len(shapes[0]))]
        return (channels * (self.center + self.scale), 0)

    def keras_args(self):
        return {
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }


LAYERS = (BatchNormalization, LayerNormalization)
