"""Normalization: BatchNormalization, LayerNormalization, GroupNormalization."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import Layer, ShapeError, Weight, normalize_axis


def _affine(n: tuple[int], scale: bool, center: bool) -> tuple[Weight, ...]:
    """gamma (if ``scale``) then beta (if ``center``), as Keras's normalization layers."""
    gamma = Weight("gamma", n, "ones", torch_attr="weight")
    beta = Weight("beta", n, "zeros", torch_attr="bias")
    return (gamma,) * scale + (beta,) * center


class BatchNormalization(Layer):
    """Batch normalization (keras.layers.BatchNormalization).

    Keras counts gamma/beta as trainable and the moving mean/variance as non-trainable.
    Keras momentum 0.99 means torch momentum 0.01; epsilon defaults to 1e-3 (torch: 1e-5).
    Keras's moving variance takes the biased batch variance (torch's nn.BatchNorm: the
    unbiased one), so the PyTorch target emits its own ``KerasBatchNorm`` module.
    """

    keras_masking: ClassVar[str] = "refuse"

    type: Literal["BatchNormalization"]
    keras_class: ClassVar[str] = "BatchNormalization"
    onnx_doc: ClassVar[str] = (
        "`BatchNormalization` (inference), the spec's `epsilon` and `momentum`; another axis than the channels is moved to position 1 and back; `center/scale: false` use constant 0/1"
    )
    torch_doc: ClassVar[str] = (
        "`KerasBatchNorm` (emitted in the file): Keras's momentum, epsilon and biased moving variance; channels axis only; gamma and beta each optional (`scale`, `center`)"
    )
    doc_example: ClassVar[tuple] = ({}, ((8, 8, 4),))
    axis: int = -1
    momentum: float = Field(default=0.99, ge=0.0, le=1.0)
    epsilon: float = Field(default=1e-3, gt=0.0, le=1.0)
    center: bool = True
    scale: bool = True

    def output_shape(self, shapes):
        normalize_axis(self.axis, len(shapes[0]))
        return shapes[0]

    def weights(self, shapes):
        n = (shapes[0][normalize_axis(self.axis, len(shapes[0]))],)
        return (
            *_affine(n, self.scale, self.center),
            Weight("moving_mean", n, "zeros", False, torch_attr="running_mean"),
            Weight("moving_variance", n, "ones", False, torch_attr="running_var"),
        )

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
        if rank > 4:
            raise lw.Unsupported(f"no torch BatchNorm for inputs of rank {rank} (+ batch)")
        channels = shapes[0][-1]
        # KerasBatchNorm (emitted in the generated file): Keras's training-mode semantics,
        # the biased batch variance in the moving variance, and Keras's momentum
        args = (
            ("num_features", channels),
            ("eps", self.epsilon),
            ("momentum", self.momentum),
            ("scale", self.scale),
            ("center", self.center),
        )
        return lw.TorchLowering(
            modules=(lw.TorchModule(lw.KERAS_BATCH_NORM, args),),
            steps=(lw.call(lw.SELF, lw.X),),
        )

    def onnx_out_layout(self, rank: int, in_layouts: list[str]) -> str:
        return lw.CF if normalize_axis(self.axis, rank) == rank - 1 else lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        rank = len(layer.output_shape)  # sample rank
        k = normalize_axis(self.axis, rank)
        n = layer.output_shape[k]
        name = layer.name
        gamma = b.weight(layer, "gamma") if self.scale else b.const(f"{name}.gamma", [1.0] * n)
        beta = b.weight(layer, "beta") if self.center else b.const(f"{name}.beta", [0.0] * n)
        stats = [b.weight(layer, "moving_mean"), b.weight(layer, "moving_variance")]
        attrs = dict(epsilon=self.epsilon, momentum=self.momentum)
        if rank == 1 or k == rank - 1:
            x = b.get(layer.inputs[0], lw.CF)
            b.node("BatchNormalization", [x, gamma, beta, *stats], out, **attrs)
            return
        # another axis: move it to position 1 of the channels-last tensor and back
        x = b.get(layer.inputs[0], lw.CL)
        perm = [0, k + 1, *(i for i in range(1, rank + 1) if i != k + 1)]
        back = [perm.index(i) for i in range(rank + 1)]
        y = b.node("Transpose", [x], b.tmp(layer, "moved"), perm=perm)
        y = b.node(
            "BatchNormalization", [y, gamma, beta, *stats], b.tmp(layer, "normalized"), **attrs
        )
        b.node("Transpose", [y], out, perm=back)


class LayerNormalization(Layer):
    """Layer normalization over the last axis (keras.layers.LayerNormalization)."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["LayerNormalization"]
    keras_class: ClassVar[str] = "LayerNormalization"
    onnx_doc: ClassVar[str] = (
        "`LayerNormalization` over the last axis (another axis is moved last and back); opset >= 17"
    )
    torch_doc: ClassVar[str] = (
        "`nn.LayerNorm(eps=…, elementwise_affine=scale, bias=center)`; last axis only; center without scale refused"
    )
    doc_example: ClassVar[tuple] = ({}, ((8, 4),))
    axis: int = -1
    epsilon: float = Field(default=1e-3, gt=0.0, le=1.0)
    center: bool = True
    scale: bool = True

    def output_shape(self, shapes):
        normalize_axis(self.axis, len(shapes[0]))
        return shapes[0]

    def weights(self, shapes):
        n = (shapes[0][normalize_axis(self.axis, len(shapes[0]))],)
        return _affine(n, self.scale, self.center)

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
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.LayerNorm", args),),
            steps=(lw.call(lw.SELF, lw.X),),
        )

    onnx_layout: ClassVar[str] = lw.CL
    onnx_min_opset: ClassVar[tuple[int, str] | None] = (17, "the LayerNormalization operator")

    def onnx_lowering(self, b, layer, out, layout):
        rank = len(layer.output_shape)
        k = normalize_axis(self.axis, rank)
        n = layer.output_shape[k]
        gamma = (
            b.weight(layer, "gamma") if self.scale else b.const(f"{layer.name}.gamma", [1.0] * n)
        )
        beta = [b.weight(layer, "beta")] if self.center else []
        x = b.get(layer.inputs[0], lw.CL)
        if k == rank - 1:
            b.node("LayerNormalization", [x, gamma, *beta], out, axis=-1, epsilon=self.epsilon)
            return
        perm = [*(i for i in range(rank + 1) if i != k + 1), k + 1]
        back = [perm.index(i) for i in range(rank + 1)]
        y = b.node("Transpose", [x], b.tmp(layer, "moved"), perm=perm)
        y = b.node(
            "LayerNormalization",
            [y, gamma, *beta],
            b.tmp(layer, "normalized"),
            axis=-1,
            epsilon=self.epsilon,
        )
        b.node("Transpose", [y], out, perm=back)


class GroupNormalization(Layer):
    """Group normalization (keras.layers.GroupNormalization): the channels split into
    ``groups`` contiguous groups (-1: one per channel), each normalized over its channels and
    every spatial position, then scaled by gamma and shifted by beta per channel."""

    keras_masking: ClassVar[str] = "refuse"

    type: Literal["GroupNormalization"]
    keras_class: ClassVar[str] = "GroupNormalization"
    onnx_doc: ClassVar[str] = (
        "`Reshape` to (batch, groups, rest), `InstanceNormalization` (epsilon), `Reshape` back, "
        "`Mul` by gamma and `Add` beta per channel"
    )
    torch_doc: ClassVar[str] = (
        "`nn.GroupNorm(num_groups, num_channels, eps, affine)` on the channels-first tensor; "
        "channels axis only; center != scale refused"
    )
    doc_example: ClassVar[tuple] = ({"groups": 2}, ((8, 8, 4),))
    groups: int = Field(default=32, ge=-1)
    axis: int = -1
    epsilon: float = Field(default=1e-3, ge=0.0, le=1.0)  # Keras accepts 0
    center: bool = True
    scale: bool = True

    def _groups(self, shape) -> int:
        channels = shape[normalize_axis(self.axis, len(shape))]
        groups = channels if self.groups == -1 else self.groups
        if groups == 0 or groups > channels or channels % groups:
            raise ShapeError(
                f"groups ({self.groups}) must divide the {channels} channels "
                f"(and be at most {channels})",
                field="groups",
                hint="use a divisor of the channel count, or -1 for one group per channel",
            )
        return groups

    def output_shape(self, shapes):
        self._groups(shapes[0])
        return shapes[0]

    def weights(self, shapes):
        n = (shapes[0][normalize_axis(self.axis, len(shapes[0]))],)
        return _affine(n, self.scale, self.center)

    def keras_args(self):
        return {
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }

    def _channels_only(self, shape, target: str) -> None:
        if normalize_axis(self.axis, len(shape)) != len(shape) - 1:
            raise lw.Unsupported(
                f"GroupNormalization over an axis other than the channels (last) one is not "
                f"supported by the {target} target",
                field="axis",
                hint="use axis: -1",
            )

    torch_layout: ClassVar[str] = lw.CF

    def torch_lowering(self, shapes, out, layout):
        shape = shapes[0]
        self._channels_only(shape, "PyTorch")
        if self.center != self.scale:
            raise lw.Unsupported(
                "torch's GroupNorm has both or neither of gamma and beta (center != scale)",
                field="center" if not self.center else "scale",
                hint="set center and scale to the same value",
            )
        args = (
            ("num_groups", self._groups(shape)),
            ("num_channels", shape[-1]),
            ("eps", self.epsilon),
            ("affine", self.scale),
        )
        # .contiguous(): torch 2.13's CPU GroupNorm backward crashes (SIGSEGV) on a strided
        # view such as a cropped channels-last tensor whose input needs no gradient
        contiguous = lw.call(lw.Attr(lw.X, "contiguous"))
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.GroupNorm", args),), steps=(lw.call(lw.SELF, contiguous),)
        )

    onnx_layout: ClassVar[str] = lw.CF

    def onnx_lowering(self, b, layer, out, layout):
        shape = b.shape_of(layer.inputs[0])
        self._channels_only(shape, "ONNX")
        groups, channels, name = self._groups(shape), shape[-1], layer.name
        x = b.get(layer.inputs[0], lw.CF)
        grouped = b.const(f"{name}.grouped", [0, groups, -1], "int64")
        y = b.node("Reshape", [x, grouped], b.tmp(layer, "grouped"))
        ones = b.const(f"{name}.group_scale", [1.0] * groups)
        zeros = b.const(f"{name}.group_bias", [0.0] * groups)
        y = b.node(
            "InstanceNormalization",
            [y, ones, zeros],
            b.tmp(layer, "normalized"),
            epsilon=self.epsilon,
        )
        last = not (self.scale or self.center)
        back = b.const(f"{name}.shape", [0, channels, *shape[:-1]], "int64")
        y = b.node("Reshape", [y, back], out if last else b.tmp(layer, "ungrouped"))
        if last:
            return
        per_channel = b.const(f"{name}.per_channel", [channels, *(1,) * (len(shape) - 1)], "int64")
        if self.scale:
            gamma = b.node(
                "Reshape", [b.weight(layer, "gamma"), per_channel], b.tmp(layer, "gamma")
            )
            y = b.node("Mul", [y, gamma], out if not self.center else b.tmp(layer, "scaled"))
        if self.center:
            beta = b.node("Reshape", [b.weight(layer, "beta"), per_channel], b.tmp(layer, "beta"))
            b.node("Add", [y, beta], out)


LAYERS = (BatchNormalization, LayerNormalization, GroupNormalization)
