"""In-model preprocessing: Rescaling."""

from __future__ import annotations

from typing import ClassVar, Literal

from . import lowering as lw
from .base import Layer


class Rescaling(Layer):
    """Multiplies by ``scale`` and adds ``offset``: ``x * scale + offset``, computed in float32
    (keras.layers.Rescaling; e.g. ``scale: 0.00392156862745098`` maps [0, 255] to [0, 1])."""

    type: Literal["Rescaling"]
    keras_class: ClassVar[str] = "Rescaling"
    scale: float
    offset: float = 0.0

    torch_doc: ClassVar[str] = "`x * scale + offset` (the add is left out when offset is 0)"
    onnx_doc: ClassVar[str] = "`Mul` by the float32 scale, then `Add` of the offset (unless 0)"

    def keras_args(self):
        return {"scale": self.scale, "offset": self.offset}

    def torch_lowering(self, shapes, out, layout):
        scaled = lw.BinOp("*", (lw.X, lw.Lit(self.scale)))
        if self.offset == 0.0:
            return lw.TorchLowering(steps=(scaled,))
        # a - b is exactly a + (-b) in IEEE arithmetic: write what a person would
        op = "-" if self.offset < 0 else "+"
        return lw.TorchLowering(steps=(lw.BinOp(op, (scaled, lw.Lit(abs(self.offset)))),))

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], layout)
        scale = b.const(f"{layer.name}.scale", self.scale)
        if self.offset == 0.0:
            b.node("Mul", [x, scale], out)
            return
        y = b.node("Mul", [x, scale], b.tmp(layer, "scaled"))
        b.node("Add", [y, b.const(f"{layer.name}.offset", self.offset)], out)


LAYERS = (Rescaling,)
