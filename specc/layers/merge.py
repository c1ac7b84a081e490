"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate.

The element-wise merges broadcast as Keras's do: numpy's rules over the per-sample axes
(a (112, 112, 32) tensor times a (1, 1, 32) one, as in a squeeze-and-excite gate)."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import ClassVar, Literal

from . import lowering as lw
from .base import Layer, Shape, ShapeError, fmt_shape, normalize_axis


def broadcast(shapes: list[Shape]) -> Shape:
    """Keras's merge broadcasting (Merge._compute_elemwise_op_output_shape): numpy's rules
    over the per-sample axes, aligned on the right; a lower-rank input gains leading 1s."""
    out = shapes[0]
    for other in shapes[1:]:
        long, short = (out, other) if len(out) >= len(other) else (other, out)
        merged = list(long[: len(long) - len(short)])
        for a, b in zip(long[len(long) - len(short) :], short):
            if a != b and 1 not in (a, b):
                listed = ", ".join(fmt_shape(s) for s in shapes)
                raise ShapeError(
                    f"cannot merge inputs of shapes {listed}: {a} and {b} do not broadcast",
                    field="inputs",
                    hint="element-wise merges need equal sizes or 1 on each axis (numpy "
                    "broadcasting, aligned on the last axis); project with a 1x1 Conv2D or Dense",
                )
            merged.append(b if a == 1 else a)
        out = tuple(merged)
    return out


def _one_mask(layer: Layer, masks: tuple, target: str) -> None:
    """Refuse the masks of two different Embeddings meeting in ``layer``."""
    if len({m for m in masks if m is not None}) > 1:
        raise lw.Unsupported(
            f"{layer.layer_type} combines the masks of two Embeddings with mask_zero: true, "
            f"which the {target} target does not reproduce",
            field="inputs",
            hint="set mask_zero: true on one Embedding only, or use the Keras target",
        )


class _ElementwiseMerge(Layer):
    # Keras computes the merge as without masks and ORs the inputs' masks when every input
    # has one (else the output has none); Multiply, Maximum and Minimum also change their
    # values
    keras_masking: ClassVar[str] = "merge"
    arity: ClassVar[int | None] = None

    def output_mask(self, masks):
        return None if None in masks else masks[0]

    def check_masks(self, masks, out, target):
        if None not in masks:
            _one_mask(self, masks, target)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return broadcast(shapes)

    #: the torch operator joining the inputs, or the torch function folding them pairwise
    torch_operator: ClassVar[str] = ""
    torch_function: ClassVar[str] = ""

    @staticmethod
    def _torch_inputs(shapes, layout) -> tuple:
        """Every input, a lower-rank one given leading 1-axes as Keras's expand_dims(x, 1)
        (torch then broadcasts as numpy); channels-first ones moved last and back for it."""
        rank = max(len(s) for s in shapes)
        inputs = []
        for i, shape in enumerate(shapes):
            x = lw.Input(i)
            if len(shape) < rank:
                if layout == lw.CF and len(shape) >= 2:
                    x = lw.call("torch.movedim", x, 1, -1)
                x = lw.call("torch.reshape", x, (-1, *(1,) * (rank - len(shape)), *shape))
                if layout == lw.CF:
                    x = lw.call("torch.movedim", x, -1, 1)
            inputs.append(x)
        return tuple(inputs)

    def torch_lowering(self, shapes, out, layout):
        inputs = self._torch_inputs(shapes, layout)
        if self.torch_function:
            folded = inputs[0]
            for other in inputs[1:]:
                folded = lw.call(self.torch_function, folded, other)
            return lw.TorchLowering(steps=(folded,))
        steps: tuple = (lw.BinOp(self.torch_operator, inputs),)
        if self.layer_type == "Average":  # Keras sums, then divides by the count
            steps += (lw.BinOp("/", (lw.X, lw.Lit(len(shapes)))),)
        return lw.TorchLowering(steps=steps)

    #: the ONNX operator over all inputs (variadic), or the binary one folded pairwise
    onnx_op: ClassVar[str] = ""

    def onnx_lowering(self, b, layer, out, layout):
        ranks = {len(b.shape_of(name)) for name in layer.inputs}
        if len(ranks) == 1:
            self._onnx_merge(b, layer, [b.get(name, layout) for name in layer.inputs], out)
            return
        # different ranks: ONNX aligns the batch axis on the right too, so each lower-rank
        # input is reshaped to (batch, 1, ..., *shape) first (Keras's expand_dims(x, 1))
        rank = max(ranks)
        xs, expanded = [], {}
        for name in layer.inputs:
            x = b.get(name, lw.CL)
            shape = b.shape_of(name)
            if len(shape) < rank and name not in expanded:  # once per input, read twice or not
                target = b.const(
                    f"{layer.name}.{name}.shape", [0, *(1,) * (rank - len(shape)), *shape], "int64"
                )
                expanded[name] = b.node("Reshape", [x, target], b.tmp(layer, f"{name}/expanded"))
            xs.append(expanded.get(name, x))
        if layout == lw.CL:
            self._onnx_merge(b, layer, xs, out)
            return
        y = self._onnx_merge(b, layer, xs, b.tmp(layer, "channels_last"))
        b.node("Transpose", [y], out, perm=[0, rank, *range(1, rank)])

    def _onnx_merge(self, b, layer, xs, out):
        op = self.onnx_op
        if op == "Add" and len(xs) > 2:
            op = "Sum"
        if op in ("Add", "Sub", "Sum", "Mean", "Max", "Min"):
            return b.node(op, xs, out)
        y = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            y = b.node(op, [y, x], out if i == len(xs) - 1 else b.tmp(layer, f"{op.lower()}{i}"))
        return y


class Add(_ElementwiseMerge):
    """Element-wise sum (keras.layers.Add)."""

    type: Literal["Add"]
    keras_class: ClassVar[str] = "Add"
    onnx_doc: ClassVar[str] = "`Add` (`Sum` for 3+ inputs)"
    torch_doc: ClassVar[str] = "`a + b + …`"
    onnx_op: ClassVar[str] = "Add"
    torch_operator: ClassVar[str] = "+"


class Subtract(_ElementwiseMerge):
    """First input minus the second (keras.layers.Subtract); exactly two inputs."""

    type: Literal["Subtract"]
    keras_class: ClassVar[str] = "Subtract"
    onnx_doc: ClassVar[str] = "`Sub`"
    torch_doc: ClassVar[str] = "`a - b`"
    onnx_op: ClassVar[str] = "Sub"
    torch_operator: ClassVar[str] = "-"
    arity: ClassVar[int | None] = 2


class Multiply(_ElementwiseMerge):
    """Element-wise product (keras.layers.Multiply)."""

    type: Literal["Multiply"]
    keras_class: ClassVar[str] = "Multiply"
    # under masks Keras multiplies masked values as 1, then zeroes the masked output steps
    keras_masking: ClassVar[str] = "refuse"
    onnx_doc: ClassVar[str] = "chained `Mul`"
    torch_doc: ClassVar[str] = "`a * b * …`"
    onnx_op: ClassVar[str] = "Mul"
    torch_operator: ClassVar[str] = "*"


class Average(_ElementwiseMerge):
    """Element-wise mean (keras.layers.Average)."""

    type: Literal["Average"]
    keras_class: ClassVar[str] = "Average"
    onnx_doc: ClassVar[str] = "`Mean`"
    torch_doc: ClassVar[str] = "`(a + b + …) / n` (Keras sums, then divides)"
    onnx_op: ClassVar[str] = "Mean"
    torch_operator: ClassVar[str] = "+"


class Maximum(_ElementwiseMerge):
    """Element-wise maximum (keras.layers.Maximum)."""

    type: Literal["Maximum"]
    keras_class: ClassVar[str] = "Maximum"
    # under masks Keras replaces masked values by the other input's before comparing
    keras_masking: ClassVar[str] = "refuse"
    onnx_doc: ClassVar[str] = "`Max`"
    torch_doc: ClassVar[str] = "`torch.maximum` folded pairwise"
    onnx_op: ClassVar[str] = "Max"
    torch_function: ClassVar[str] = "torch.maximum"


class Minimum(_ElementwiseMerge):
    """Element-wise minimum (keras.layers.Minimum)."""

    type: Literal["Minimum"]
    keras_class: ClassVar[str] = "Minimum"
    # under masks Keras replaces masked values by the other input's before comparing
    keras_masking: ClassVar[str] = "refuse"
    onnx_doc: ClassVar[str] = "`Min`"
    torch_doc: ClassVar[str] = "`torch.minimum` folded pairwise"
    onnx_op: ClassVar[str] = "Min"
    torch_function: ClassVar[str] = "torch.minimum"


class Concatenate(Layer):
    """Joins inputs along ``axis``; the other dimensions must match (keras.layers.Concatenate)."""

    # Keras: the inputs' masks (all steps real where an input has none) joined along the
    # axis, then ANDed over the features: on the last axis, the one mask they carry
    keras_masking: ClassVar[str] = "merge"

    def output_mask(self, masks):
        return next((m for m in masks if m is not None), None)

    type: Literal["Concatenate"]
    keras_class: ClassVar[str] = "Concatenate"
    onnx_doc: ClassVar[str] = "`Concat`, the Keras axis mapped to the layout used"
    torch_doc: ClassVar[str] = "`torch.cat` on the Keras axis mapped to the layout used"
    arity: ClassVar[int | None] = None
    axis: int = -1

    def output_shape(self, shapes):
        rank = len(shapes[0])
        listed = ", ".join(fmt_shape(s) for s in shapes)
        if any(len(s) != rank for s in shapes):
            raise ShapeError(
                f"cannot concatenate inputs of different ranks: {listed}", field="inputs"
            )
        axis = normalize_axis(self.axis, rank)
        for other in shapes[1:]:
            if any(a != b for i, (a, b) in enumerate(zip(shapes[0], other)) if i != axis):
                raise ShapeError(
                    f"cannot concatenate on axis {self.axis}: {listed} differ on another axis",
                    field="inputs",
                    hint="all dimensions except the concatenation axis must match",
                )
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return tuple(out)

    def keras_args(self):
        return {"axis": self.axis}

    def torch_lowering(self, shapes, out, layout):
        rank = len(out)
        dim = lw.torch_dim(normalize_axis(self.axis, rank), rank, layout)
        inputs = lw.ListOf(tuple(lw.Input(i) for i in range(len(shapes))))
        return lw.TorchLowering(steps=(lw.call("torch.cat", inputs, dim=dim),))

    def check_masks(self, masks, out, target):
        _one_mask(self, masks, target)
        if normalize_axis(self.axis, len(out)) != len(out) - 1:
            raise lw.Unsupported(
                f"Concatenate along axis {self.axis} joins the steps of masked sequences "
                f"(Keras joins their masks too), which the {target} target does not reproduce",
                field="axis",
                hint="concatenate the features (axis: -1), or set mask_zero: false",
            )

    def onnx_lowering(self, b, layer, out, layout):
        rank = len(layer.output_shape)
        axis = lw.torch_dim(normalize_axis(self.axis, rank), rank, layout)
        b.node("Concat", [b.get(name, layout) for name in layer.inputs], out, axis=axis)


LAYERS = (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate)
