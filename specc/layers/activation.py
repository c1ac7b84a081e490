"""Activation layers: Activation, ReLU, LeakyReLU, Softmax."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import ActivationName, Layer, normalize_axis


class Activation(Layer):
    """Applies a named activation (keras.layers.Activation)."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["Activation"]
    keras_class: ClassVar[str] = "Activation"
    onnx_doc: ClassVar[str] = "the activation's operators (see the activation table)"
    torch_doc: ClassVar[str] = "the activation's functions (see the activation table)"
    activation: ActivationName

    def keras_args(self):
        return {"activation": self.activation}

    def torch_lowering(self, shapes, out, layout):
        return lw.TorchLowering(steps=lw.activation_steps(self.activation, len(out), layout))

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], layout)
        b.activation(self.activation, x, out, layout, b.in_rank(layer))


class ReLU(Layer):
    """Rectified linear unit with optional cap, slope and threshold (keras.layers.ReLU)."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["ReLU"]
    keras_class: ClassVar[str] = "ReLU"
    onnx_doc: ClassVar[str] = (
        "`keras.activations.relu`: `x` if `x > threshold` else 0 (`Greater`, `Cast`, `Mul`; `Relu` when threshold is 0), `Clip(0, max_value)`, minus `negative_slope · Relu(threshold - x)`; plain `LeakyRelu` when only a slope is set"
    )
    torch_doc: ClassVar[str] = (
        "`F.relu`, `F.relu6` (max_value 6), `torch.clamp(F.relu(x), max=max_value)`, `F.leaky_relu`, or in general `torch.where(x > t, clamp(x, 0, max), slope·(x − t))`; gradients at the bounds as TensorFlow's"
    )
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
            # the gradients at the bounds follow TensorFlow's: relu6 passes none at 0 or 6
            # (F.relu6 neither; torch.clamp would pass both); relu then clip passes it at
            # max_value only
            if cap == 6:
                return lw.TorchLowering(steps=(lw.call("F.relu6", lw.X),))
            clipped = lw.call("torch.clamp", lw.call("F.relu", lw.X), max=cap)
            return lw.TorchLowering(steps=(clipped,))
        if slope != 0 and threshold == 0 and cap is None:
            return lw.TorchLowering(steps=(lw.call("F.leaky_relu", lw.X, negative_slope=slope),))
        # Keras keeps x above the threshold (clipped to [0, max_value] when capped) and
        # gives negative_slope * (x - threshold) at or below it
        kept = lw.X if cap is None else lw.call("torch.clamp", lw.X, min=0.0, max=cap)
        if cap == 6 and threshold == 0:  # Keras's relu6: no gradient at 6
            kept = lw.call("F.relu6", lw.X)
        below = lw.BinOp("*", (lw.Lit(slope), lw.BinOp("-", (lw.X, lw.Lit(threshold)))))
        if slope == 0:
            below = lw.Lit(0.0)
        condition = lw.BinOp(">", (lw.X, lw.Lit(threshold)))
        return lw.TorchLowering(steps=(lw.call("torch.where", condition, kept, below),))

    def onnx_lowering(self, b, layer, out, layout):
        """x if x > threshold else 0, clipped to max_value, minus
        negative_slope * relu(threshold - x) (keras.activations.relu)."""
        x = b.get(layer.inputs[0], layout)
        slope, cap, threshold = self.negative_slope, self.max_value, self.threshold
        name = layer.name
        if slope != 0 and cap is None and threshold == 0:
            b.node("LeakyRelu", [x], out, alpha=slope)
            return
        last = slope == 0 and cap is None
        if threshold != 0:
            t = b.const(f"{name}.threshold", threshold)
            mask = b.node("Greater", [x, t], b.tmp(layer, "above"))
            mask = b.node("Cast", [mask], b.tmp(layer, "mask"), to=1)
            pos = b.node("Mul", [x, mask], out if last else b.tmp(layer, "positive"))
        elif cap is not None:
            pos = x
        else:
            pos = b.node("Relu", [x], out if last else b.tmp(layer, "positive"))
        if cap is not None:
            lo, hi = b.const(f"{name}.min", 0.0), b.const(f"{name}.max", cap)
            pos = b.node("Clip", [pos, lo, hi], out if slope == 0 else b.tmp(layer, "clipped"))
        if slope != 0:
            if threshold != 0:
                t = b.const(f"{name}.threshold", threshold)
                neg = b.node("Sub", [t, x], b.tmp(layer, "below"))
            else:
                neg = b.node("Neg", [x], b.tmp(layer, "below"))
            neg = b.node("Relu", [neg], b.tmp(layer, "negative"))
            slope_value = b.const(f"{name}.negative_slope", slope)
            neg = b.node("Mul", [neg, slope_value], b.tmp(layer, "scaled"))
            b.node("Sub", [pos, neg], out)


class LeakyReLU(Layer):
    """Leaky ReLU; Keras's default slope is 0.3 (torch's is 0.01) (keras.layers.LeakyReLU)."""

    keras_masking: ClassVar[str] = "pass"

    type: Literal["LeakyReLU"]
    keras_class: ClassVar[str] = "LeakyReLU"
    onnx_doc: ClassVar[str] = "`LeakyRelu(alpha=negative_slope)` (Keras's default 0.3)"
    torch_doc: ClassVar[str] = (
        "`F.leaky_relu(x, negative_slope=…)` (Keras's default 0.3, never torch's 0.01)"
    )
    negative_slope: float = Field(default=0.3, ge=0.0)

    def keras_args(self):
        return {"negative_slope": self.negative_slope}

    def torch_lowering(self, shapes, out, layout):
        slope = self.negative_slope
        return lw.TorchLowering(steps=(lw.call("F.leaky_relu", lw.X, negative_slope=slope),))

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], layout)
        b.node("LeakyRelu", [x], out, alpha=self.negative_slope)


class Softmax(Layer):
    """Softmax over an axis (keras.layers.Softmax)."""

    keras_masking: ClassVar[str] = "refuse"

    type: Literal["Softmax"]
    keras_class: ClassVar[str] = "Softmax"
    onnx_doc: ClassVar[str] = "`Softmax` on the spec's axis mapped to the layout used"
    torch_doc: ClassVar[str] = "`F.softmax` on the spec's axis mapped to the layout used"
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

    def onnx_lowering(self, b, layer, out, layout):
        rank = len(layer.output_shape)
        axis = lw.torch_dim(normalize_axis(self.axis, rank), rank, layout)
        b.node("Softmax", [b.get(layer.inputs[0], layout)], out, axis=axis)


LAYERS = (Activation, ReLU, LeakyReLU, Softmax)
