"""Attention: MultiHeadAttention, and keras_hub's PositionEmbedding.

MultiHeadAttention reads ``inputs: [query, value]`` or ``[query, value, key]`` (self-attention:
``[x, x]``); Keras's call argument ``use_causal_mask`` is a field here. Its weights are
Keras's (EinsumDense kernels (features, heads, head size)); the PyTorch target runs it with a
module the generated file defines (``KerasMultiHeadAttention``), ONNX with ``Einsum``
(opset 12, below the target's minimum 13) and ``Softmax``.

PositionEmbedding is keras_hub.layers.PositionEmbedding (core Keras has none): the Keras
target defines it in the generated file; its output is the learned position vectors in the
input's shape, to be added to the input (``Add``).
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from . import lowering as lw
from .base import Initializer, Layer, PositiveInt, Regularizer, ShapeError, Weight, fmt_shape

KERAS_MHA = "KerasMultiHeadAttention"
lw.HELPER_TEMPLATES.setdefault(KERAS_MHA, "pytorch/keras_multi_head_attention.py.j2")


def _query_key_value(shapes):
    """(query, key, value) shapes of an attention layer's [query, value(, key)] inputs."""
    if len(shapes) > 3:
        raise ShapeError(
            f"reads [query, value] or [query, value, key], got {len(shapes)} inputs",
            field="inputs",
        )
    for s in shapes:
        if len(s) != 2:
            raise ShapeError(
                f"expects rank-2 inputs (steps, features), got {fmt_shape(s)}",
                hint="add a Reshape layer before it",
            )
    query, value = shapes[0], shapes[1]
    key = shapes[2] if len(shapes) == 3 else value
    if key[0] != value[0]:
        raise ShapeError(
            f"key and value need the same number of steps, got {key[0]} and {value[0]}",
            field="inputs",
        )
    return query, key, value


def _allowed(b, layer, masks: tuple, causal: bool, with_query: bool) -> str:
    """The bool (batch or 1, query steps, key steps) value of the score entries Keras keeps:
    the query step's mask (``with_query``) and the value's (and key's) masks, ANDed with
    the causal mask."""
    name = layer.name
    parts = []
    if with_query and masks[0] is not None:
        parts.append(b.node("Unsqueeze", [masks[0], b.const(f"{name}.axis2", [2], "int64")],
                            b.tmp(layer, "query_mask")))  # fmt: skip
    for k, mask in enumerate(masks[1:3]):
        if mask is not None:
            parts.append(b.node("Unsqueeze", [mask, b.const(f"{name}.axis1", [1], "int64")],
                                b.tmp(layer, f"key_mask{k}")))  # fmt: skip
    if causal:
        tq, tk = b.shape_of(layer.inputs[0])[0], b.shape_of(layer.inputs[1])[0]
        lower = [[[j <= i for j in range(tk)] for i in range(tq)]]
        parts.append(b.const(f"{name}.causal_allowed", lower, "bool"))
    allowed = parts[0]
    for k, part in enumerate(parts[1:]):
        allowed = b.node("And", [allowed, part], b.tmp(layer, f"allowed{k}"))
    return allowed


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention (keras.layers.MultiHeadAttention)."""

    # Keras: a query step attends to a value step where both are real (and the key's, and
    # the causal mask, allow it); the output carries the query's mask on
    keras_masking: ClassVar[str] = "use"
    keras_runtime_masks: ClassVar[bool] = True
    keras_clears_input_masks: ClassVar[bool] = True

    def output_mask(self, masks):
        return masks[0]

    def torch_mask_steps(self, lowering, masks, out):
        (call,) = lowering.steps
        names = ("query_mask", "value_mask", "key_mask")
        given = {name: m for name, m in zip(names, masks, strict=False) if m is not None}
        return (lw.call(call.func, *call.args, **given),)

    type: Literal["MultiHeadAttention"]
    keras_class: ClassVar[str] = "MultiHeadAttention"
    #: Keras calls it as layer(query, value[, key]), not with a list
    keras_call_style: ClassVar[str] = "positional"
    arity: ClassVar[int | None] = None
    torch_doc: ClassVar[str] = (
        "`KerasMultiHeadAttention` (emitted in the file): Keras's einsum projections and "
        "weight layout, causal mask, the inputs' Keras masks, dropout on the attention "
        "probabilities"
    )
    onnx_doc: ClassVar[str] = (
        "`Einsum` projections (+ bias), `Einsum` scores scaled by 1/sqrt(key_dim), a constant "
        "-1e9 causal mask, `Softmax`, `Einsum` to the output"
    )
    doc_example: ClassVar[tuple] = ({"num_heads": 2, "key_dim": 4}, ((6, 8), (6, 8)))
    num_heads: PositiveInt
    key_dim: PositiveInt
    value_dim: PositiveInt | None = None
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    use_bias: bool = True
    output_shape_: PositiveInt | None = Field(default=None, alias="output_shape")
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: Regularizer = None
    bias_regularizer: Regularizer = None
    #: Keras gives the regularizers to all four projections
    regularized: ClassVar[dict[str, str]] = {
        f"{part}_{kind}": f"{kind}_regularizer"
        for part in ("query", "key", "value", "output")
        for kind in ("kernel", "bias")
    }
    use_causal_mask: bool = False

    def _dims(self, shapes):
        return _query_key_value(shapes)

    @property
    def _value_dim(self) -> int:
        return self.value_dim or self.key_dim

    def output_shape(self, shapes):
        query, _, _ = self._dims(shapes)
        return (query[0], self.output_shape_ or query[-1])

    def weights(self, shapes):
        query, key, value = self._dims(shapes)
        h, dk, dv = self.num_heads, self.key_dim, self._value_dim
        out = self.output_shape_ or query[-1]
        parts = (
            ("query", (query[-1], h, dk), (h, dk)),
            ("key", (key[-1], h, dk), (h, dk)),
            ("value", (value[-1], h, dv), (h, dv)),
            ("output", (h, dv, out), (out,)),
        )
        weights = []
        for part, kernel, bias in parts:
            weights.append(
                Weight(
                    f"{part}_kernel",
                    kernel,
                    self.kernel_initializer,
                    layout="(features, heads, head size)"
                    if part != "output"
                    else "(heads, value_dim, features)",
                    torch_attr=f"{part}_kernel",
                    keras_name="kernel",
                )
            )
            if self.use_bias:
                weights.append(
                    Weight(
                        f"{part}_bias",
                        bias,
                        self.bias_initializer,
                        layout="(heads, head size)" if part != "output" else "(features,)",
                        torch_attr=f"{part}_bias",
                        keras_name="bias",
                    )
                )
        return tuple(weights)

    def count_macs(self, shapes, out):
        query, key, value = self._dims(shapes)
        h, dk, dv = self.num_heads, self.key_dim, self._value_dim
        tq, tk = query[0], key[0]
        projections = tq * query[-1] * h * dk + tk * key[-1] * h * dk + tk * value[-1] * h * dv
        attention = h * tq * tk * (dk + dv)
        return projections + attention + tq * h * dv * out[-1]

    def keras_args(self):
        return {
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self.output_shape_,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            **self.keras_regularizer_args(),
        }

    def keras_call_kwargs(self) -> dict:
        return {"use_causal_mask": self.use_causal_mask}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        query, key, value = self._dims(shapes)
        args = (
            ("query_features", query[-1]),
            ("key_features", key[-1]),
            ("value_features", value[-1]),
            ("num_heads", self.num_heads),
            ("key_dim", self.key_dim),
            ("value_dim", self._value_dim),
            ("output_features", out[-1]),
            ("use_bias", self.use_bias),
            ("dropout", self.dropout),
            ("use_causal_mask", self.use_causal_mask),
        )
        inputs = tuple(lw.Input(i) for i in range(len(shapes)))
        return lw.TorchLowering(
            modules=(lw.TorchModule(KERAS_MHA, args),), steps=(lw.call(lw.SELF, *inputs),)
        )

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_mask_lowering(self, b, layer, out, layout, masks):
        self.onnx_lowering(b, layer, out, layout, masks)

    def onnx_lowering(self, b, layer, out, layout, masks=()):
        name = layer.name
        xs = [b.get(i, lw.CL) for i in layer.inputs]
        query, value = xs[0], xs[1]
        key = xs[2] if len(xs) == 3 else value

        def project(x, part):
            y = b.node(
                "Einsum",
                [x, b.weight(layer, f"{part}_kernel")],
                b.tmp(layer, part),
                equation="abc,cde->abde",
            )
            if not self.use_bias:
                return y
            return b.node("Add", [y, b.weight(layer, f"{part}_bias")], b.tmp(layer, f"{part}_b"))

        q = project(query, "query")
        q = b.node(
            "Mul",
            [q, b.const(f"{name}.scale", 1.0 / float(self.key_dim) ** 0.5)],
            b.tmp(layer, "query_scaled"),
        )
        k, v = project(key, "key"), project(value, "value")
        scores = b.node("Einsum", [k, q], b.tmp(layer, "scores"), equation="aecd,abcd->acbe")
        if any(m is not None for m in masks):  # as Keras: masked scores become -1e9
            allowed = _allowed(b, layer, masks, self.use_causal_mask, with_query=True)
            heads = b.node("Unsqueeze", [allowed, b.const(f"{name}.heads_axis", [1], "int64")],
                           b.tmp(layer, "allowed_heads"))  # fmt: skip
            scores = b.node("Where", [heads, scores, b.const(f"{name}.masked_score", -1e9)],
                            b.tmp(layer, "masked"))  # fmt: skip
        elif self.use_causal_mask:
            tq = b.shape_of(layer.inputs[0])[0]
            tk = b.shape_of(layer.inputs[1])[0]
            mask = [[0.0 if j <= i else -1e9 for j in range(tk)] for i in range(tq)]
            scores = b.node(
                "Add", [scores, b.const(f"{name}.causal", mask)], b.tmp(layer, "masked")
            )
        probs = b.node("Softmax", [scores], b.tmp(layer, "probs"), axis=-1)
        y = b.node("Einsum", [probs, v], b.tmp(layer, "attended"), equation="acbe,aecd->abcd")
        kernel = b.weight(layer, "output_kernel")
        if not self.use_bias:
            b.node("Einsum", [y, kernel], out, equation="abcd,cde->abe")
            return
        y = b.node("Einsum", [y, kernel], b.tmp(layer, "output"), equation="abcd,cde->abe")
        b.node("Add", [y, b.weight(layer, "output_bias")], out)


class PositionEmbedding(Layer):
    """Learned position vectors in the input's shape (keras_hub.layers.PositionEmbedding):
    for an input (steps, features), the first ``steps`` rows of a (sequence_length, features)
    table; add it to the input with ``Add``."""

    type: Literal["PositionEmbedding"]
    keras_class: ClassVar[str] = "PositionEmbedding"
    #: defined in the generated Keras file (templates/keras/position_embedding.py.j2)
    keras_helper: ClassVar[str] = "keras/position_embedding.py.j2"
    torch_doc: ClassVar[str] = "an `nn.Parameter` table; `table[:steps].expand_as(x).clone()`"
    onnx_doc: ClassVar[str] = (
        "the table `Slice`d to the steps, broadcast to the batch by `Where` (its condition "
        "shaped (batch, steps, 1) from the input)"
    )
    doc_example: ClassVar[tuple] = ({"sequence_length": 16}, ((10, 8),))
    sequence_length: PositiveInt
    initializer: Initializer = "glorot_uniform"

    def output_shape(self, shapes):
        shape = shapes[0]
        if len(shape) != 2:
            raise ShapeError(
                f"expects a rank-2 input (steps, features), got {fmt_shape(shape)}",
                hint="add a Reshape layer before it",
            )
        if shape[0] > self.sequence_length:
            raise ShapeError(
                f"the input has {shape[0]} steps, more than sequence_length {self.sequence_length}",
                field="sequence_length",
            )
        return shape

    def weights(self, shapes):
        return (
            Weight(
                "embeddings",
                (self.sequence_length, shapes[0][-1]),
                self.initializer,
                layout="(sequence_length, features)",
                torch_attr="embeddings",
            ),
        )

    def keras_args(self):
        return {"sequence_length": self.sequence_length, "initializer": self.initializer}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        steps = shapes[0][0]
        table = lw.Attr(lw.SELF, "embeddings")
        return lw.TorchLowering(
            modules=(
                lw.TorchModule(
                    "KerasPositionEmbedding",
                    (("sequence_length", self.sequence_length), ("features", shapes[0][-1])),
                ),
            ),
            # a copy, not a view of the parameter: a view keeps requires_grad even under
            # torch.no_grad(), and its output could not become a numpy array
            steps=(
                lw.call(lw.Attr(lw.Slice(table, 0, ((0, steps),)), "expand_as"), lw.X),
                lw.call(lw.Attr(lw.X, "clone")),
            ),
        )

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        name = layer.name
        steps, features = b.shape_of(layer.inputs[0])
        x = b.get(layer.inputs[0], lw.CL)
        table = b.weight(layer, "embeddings")
        rows = b.node(
            "Slice",
            [
                table,
                b.const(f"{name}.starts", [0], "int64"),
                b.const(f"{name}.ends", [steps], "int64"),
                b.const(f"{name}.axes", [0], "int64"),
            ],
            b.tmp(layer, "rows"),
        )
        # broadcast to the batch: Where(cond, rows, rows) with a condition of shape
        # (batch, steps, 1) taken from the input (Expand to Shape(x) would lose the
        # symbolic batch dimension in ONNX shape inference)
        first = b.const(f"{name}.first", [0], "int64")
        column = b.node("Gather", [x, first], b.tmp(layer, "column"), axis=2)
        cond = b.node("IsNaN", [column], b.tmp(layer, "batch_shaped"))
        b.node("Where", [cond, rows, rows], out)


lw.HELPER_TEMPLATES.setdefault("KerasPositionEmbedding", "pytorch/keras_position_embedding.py.j2")


KERAS_ATTENTION = "KerasAttention"
lw.HELPER_TEMPLATES.setdefault(KERAS_ATTENTION, "pytorch/keras_attention.py.j2")


class _ScoreAttention(Layer):
    """Attention over [query, value] or [query, value, key] (Keras calls it with a list)."""

    # Keras: the value's mask keeps scores of padded value steps out of the softmax, the
    # query's zeroes the output at padded query steps and is handed on (the key's is unused)
    keras_masking: ClassVar[str] = "use"
    keras_runtime_masks: ClassVar[bool] = True

    def output_mask(self, masks):
        return masks[0]

    def torch_mask_steps(self, lowering, masks, out):
        (call,) = lowering.steps
        given = {n: m for n, m in zip(("query_mask", "value_mask"), masks) if m is not None}
        return (lw.call(call.func, *call.args, **given),)

    arity: ClassVar[int | None] = None
    score_mode_name: ClassVar[str] = "dot"
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    use_causal_mask: bool = False

    def _dims(self, shapes):
        query, key, value = _query_key_value(shapes)
        if query[-1] != key[-1]:
            raise ShapeError(
                f"query and key need the same features, got {query[-1]} and {key[-1]}",
                field="inputs",
            )
        return query, key, value

    def output_shape(self, shapes):
        query, _, value = self._dims(shapes)
        return (query[0], value[-1])

    def count_macs(self, shapes, out):
        query, key, value = self._dims(shapes)
        return query[0] * key[0] * (query[-1] + value[-1])

    def keras_call_kwargs(self) -> dict:
        return {"use_causal_mask": self.use_causal_mask}

    def _score_mode(self) -> str:
        return self.score_mode_name

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        query, _, _ = self._dims(shapes)
        args = (
            ("score_mode", self._score_mode()),
            ("use_scale", self.use_scale),
            ("dim", query[-1]),
            ("dropout", self.dropout),
            ("use_causal_mask", self.use_causal_mask),
        )
        inputs = tuple(lw.Input(i) for i in range(len(shapes)))
        return lw.TorchLowering(
            modules=(lw.TorchModule(KERAS_ATTENTION, args),),
            steps=(lw.call(lw.SELF, *inputs),),
        )

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_mask_lowering(self, b, layer, out, layout, masks):
        self.onnx_lowering(b, layer, out, layout, masks)

    def onnx_lowering(self, b, layer, out, layout, masks=()):
        name = layer.name
        xs = [b.get(i, lw.CL) for i in layer.inputs]
        query, value = xs[0], xs[1]
        key = xs[2] if len(xs) == 3 else value
        mode = self._score_mode()
        if mode == "dot":
            keys = b.node("Transpose", [key], b.tmp(layer, "key_t"), perm=[0, 2, 1])
            scores = b.node("MatMul", [query, keys], b.tmp(layer, "scores"))
            if self.use_scale:
                scores = b.node("Mul", [scores, b.weight(layer, "scale")], b.tmp(layer, "scaled"))
        else:
            q = b.node(
                "Unsqueeze", [query, b.const(f"{name}.axis2", [2], "int64")], b.tmp(layer, "q")
            )
            k = b.node(
                "Unsqueeze", [key, b.const(f"{name}.axis1", [1], "int64")], b.tmp(layer, "k")
            )
            pairs = b.node("Add", [q, k], b.tmp(layer, "pairs"))
            if mode == "concat" and self.use_scale:
                pairs = b.node("Mul", [b.weight(layer, "scale"), pairs], b.tmp(layer, "scaled"))
            t = b.node("Tanh", [pairs], b.tmp(layer, "tanh"))
            if mode == "additive" and self.use_scale:
                t = b.node("Mul", [b.weight(layer, "scale"), t], b.tmp(layer, "weighted"))
            last = b.const(f"{name}.last", [-1], "int64")
            scores = b.node("ReduceSum", [t, last], b.tmp(layer, "scores"), keepdims=0)
            if mode == "concat":
                scores = b.node(
                    "Mul",
                    [b.weight(layer, "concat_score_weight"), scores],
                    b.tmp(layer, "concat_scores"),
                )
        value_mask = masks[1] if len(masks) > 1 else None
        if value_mask is not None:  # as Keras: masked scores lose 1e9
            allowed = _allowed(b, layer, (None, value_mask), self.use_causal_mask, False)
            lowered = b.node("Sub", [scores, b.const(f"{name}.penalty", 1.0e9)],
                             b.tmp(layer, "lowered"))  # fmt: skip
            scores = b.node("Where", [allowed, scores, lowered], b.tmp(layer, "masked"))
        elif self.use_causal_mask:
            tq = b.shape_of(layer.inputs[0])[0]
            tv = b.shape_of(layer.inputs[1])[0]
            mask = [[0.0 if j <= i else 1.0e9 for j in range(tv)] for i in range(tq)]
            scores = b.node(
                "Sub", [scores, b.const(f"{name}.causal", mask)], b.tmp(layer, "masked")
            )
        weights = b.node("Softmax", [scores], b.tmp(layer, "weights"), axis=-1)
        query_mask = masks[0] if masks else None
        if query_mask is None:
            b.node("MatMul", [weights, value], out)
            return
        y = b.node("MatMul", [weights, value], b.tmp(layer, "attended"))
        rows = b.node("Unsqueeze", [query_mask, b.const(f"{name}.last_axis", [2], "int64")],
                      b.tmp(layer, "query_rows"))  # fmt: skip
        b.node("Where", [rows, y, b.const(f"{name}.zero", 0.0)], out)  # 0 at padded queries


class Attention(_ScoreAttention):
    """Dot-product (Luong-style) attention (keras.layers.Attention): softmax(q·kᵀ) · v."""

    type: Literal["Attention"]
    keras_class: ClassVar[str] = "Attention"
    torch_doc: ClassVar[str] = (
        "`KerasAttention` (emitted in the file): Keras's scores, causal mask, the inputs' "
        "Keras masks and dropout"
    )
    onnx_doc: ClassVar[str] = (
        "`MatMul` scores (dot) or `Unsqueeze`/`Add`/`Tanh`/`ReduceSum` (concat), constant "
        "causal mask, `Softmax`, `MatMul`"
    )
    doc_example: ClassVar[tuple] = ({"use_scale": True}, ((6, 4), (5, 4)))
    use_scale: bool = False
    score_mode: Literal["dot", "concat"] = "dot"

    def _score_mode(self) -> str:
        return self.score_mode

    def weights(self, shapes):
        out = []
        if self.use_scale:
            out.append(Weight("scale", (), "ones", layout="()", torch_attr="scale"))
        if self.score_mode == "concat":
            out.append(
                Weight(
                    "concat_score_weight", (), "ones", layout="()", torch_attr="concat_score_weight"
                )
            )
        return tuple(out)

    def keras_args(self):
        return {"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout}


class AdditiveAttention(_ScoreAttention):
    """Additive (Bahdanau-style) attention (keras.layers.AdditiveAttention):
    scores = Σ scale · tanh(q + k)."""

    type: Literal["AdditiveAttention"]
    keras_class: ClassVar[str] = "AdditiveAttention"
    score_mode_name: ClassVar[str] = "additive"
    torch_doc: ClassVar[str] = (
        "`KerasAttention` (emitted in the file, additive scores): Keras's causal mask, the "
        "inputs' Keras masks and dropout"
    )
    onnx_doc: ClassVar[str] = (
        "`Unsqueeze`/`Add`/`Tanh`, `Mul` by the scale, `ReduceSum`, constant causal mask, "
        "`Softmax`, `MatMul`"
    )
    doc_example: ClassVar[tuple] = ({}, ((6, 4), (5, 4)))
    use_scale: bool = True

    def weights(self, shapes):
        if not self.use_scale:
            return ()
        dim = shapes[0][-1]
        return (
            Weight("scale", (dim,), "glorot_uniform", layout="(features,)", torch_attr="scale"),
        )

    def keras_args(self):
        return {"use_scale": self.use_scale, "dropout": self.dropout}


LAYERS = (MultiHeadAttention, PositionEmbedding, Attention, AdditiveAttention)
