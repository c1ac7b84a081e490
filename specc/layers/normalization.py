"""Normalization: BatchNormalization, LayerNormalization."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import Layer, normalize_axis


class BatchNormalization(Layer):
    """Batch normalization (keras.layers.BatchNormalization).

    Keras counts gamma/beta as trainable and the moving mean/variance as non-trainable.
    Keras momentum 0.99 means torch momentum 0.01; epsilon defaults to 1e-3 (torch: 1e-5).
    Keras's moving variance takes the biased batch variance (torch's nn.BatchNorm: the
    unbiased one), so the PyTorch target emits its own ``KerasBatchNorm`` module.
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

    torch_layout: ClassVar[str] = lw.CF

    def torch_lowering(self, shapes, out, layout):
        """A ``KerasBatchNorm`` module (templates/pytorch/keras_batch_norm.py.j2: Keras's
        momentum and moving-variance update through torch's fused batch-norm kernel plus a
        per-channel correction); eps as the spec says (Keras default 1e-3)."""
        rank = len(shapes[0])
        if normalize_axis(self.axis, rank) != rank - 1:
            raise lw.Unsupported(
                "BatchNormalization over an axis other than the channels (last) one is not supported",
                field="axis",
                hint="use axis: -1",
            )
        if self.center != self.scale:
            raise lw.Unsupported(
                "torch's BatchNorm has both or neither of gamma and beta (center != scale)",
                field="center" if not self.center else "scale",
                hint="set center and scale to the same value",
            )
        if rank > 4:
            raise lw.Unsupported(f"no torch BatchNorm for inputs of rank {rank} (+ batch)")
        channels = shapes[0][-1]
        # KerasBatchNorm (emitted in the generated file): Keras's training-mode semantics,
        # the biased batch variance in the moving variance, and Keras's momentum
        args = (
            ("num_features", channels),
            ("eps", self.epsilon),
            ("momentum", self.momentum),
            ("affine", self.center),
        )
        weights = []
        if self.scale:
            weights.append(lw.TorchWeight("gamma", (channels,), "weight", initializer="ones"))
        if self.center:
            weights.append(lw.TorchWeight("beta", (channels,), "bias", initializer="zeros"))
        weights += [
            lw.TorchWeight("moving_mean", (channels,), "running_mean", trainable=False),
            lw.TorchWeight("moving_variance", (channels,), "running_var", trainable=False),
        ]
        return lw.TorchLowering(
            modules=(lw.TorchModule(lw.KERAS_BATCH_NORM, args),),
            steps=(lw.call(lw.SELF, lw.X),),
            weights=tuple(weights),
        )


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

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        rank = len(shapes[0])
        if normalize_axis(self.axis, rank) != rank - 1:
            raise lw.Unsupported(
                "LayerNormalization over an axis other than the last one is not supported",
                field="axis",
                hint="use axis: -1",
            )
        if self.center and not self.scale:
            raise lw.Unsupported(
                "torch's LayerNorm has no beta without gamma (center without scale)",
                field="scale",
                hint="set scale: true, or center: false",
            )
        channels = shapes[0][-1]
        args = (
            ("normalized_shape", (channels,)),
            ("eps", self.epsilon),
            ("elementwise_affine", self.scale),
            ("bias", self.center),
        )
        weights = []
        if self.scale:
            weights.append(lw.TorchWeight("gamma", (channels,), "weight", initializer="ones"))
        if self.center:
            weights.append(lw.TorchWeight("beta", (channels,), "bias", initializer="zeros"))
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.LayerNorm", args),),
            steps=(lw.call(lw.SELF, lw.X),),
            weights=tuple(weights),
        )


LAYERS = (BatchNormalization, LayerNormalization)
