"""Token embeddings: Embedding (integer ids -> vectors)."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import ClassVar, Literal

from . import lowering as lw
from .base import Initializer, Layer, PositiveInt, Regularizer, Weight, fmt_shape
from .base import ShapeError as _ShapeError


class Embedding(Layer):
    """Looks up a learned vector for each integer id (keras.layers.Embedding).

    Its input holds token ids (declare the input ``dtype: int32`` or ``int64``; float ids are
    truncated to integers, as Keras casts them). ``mask_zero: true`` marks id 0 as padding:
    Keras and PyTorch carry the mask to the layers after it as Keras does (recurrent layers
    skip masked steps, GlobalAveragePooling1D averages the real ones; a layer that would use
    it otherwise is refused by PyTorch); ONNX refuses it, at that field.
    """

    type: Literal["Embedding"]
    keras_class: ClassVar[str] = "Embedding"
    torch_doc: ClassVar[str] = (
        "`nn.Embedding(input_dim, output_dim)` on `x.long()`; the weight is Keras's "
        "(input_dim, output_dim) matrix; `mask_zero` as `ids != 0`, carried to the layers "
        "that use it as Keras"
    )
    onnx_doc: ClassVar[str] = (
        "`Gather` of the (input_dim, output_dim) matrix at the ids (integer inputs used as "
        "they are, float ids `Cast` to int64); `mask_zero` as `Not(Equal(ids, 0))`, carried to "
        "the layers that use it as Keras"
    )
    doc_example: ClassVar[tuple] = ({"input_dim": 100, "output_dim": 8}, ((12,),))
    #: this layer reads integer ids: the PyTorch target lets integer model inputs feed it
    accepts_integer_input: ClassVar[bool] = True
    input_dim: PositiveInt
    output_dim: PositiveInt
    embeddings_initializer: Initializer | Literal["uniform"] = "uniform"
    mask_zero: bool = False
    embeddings_regularizer: Regularizer = None
    regularized: ClassVar[dict[str, str]] = {"embeddings": "embeddings_regularizer"}

    def output_shape(self, shapes):
        if len(shapes[0]) > 7:
            raise _ShapeError(f"expects ids of rank <= 7, got {fmt_shape(shapes[0])}")
        return (*shapes[0], self.output_dim)

    def weights(self, shapes):
        return (
            Weight(
                "embeddings",
                (self.input_dim, self.output_dim),
                self.embeddings_initializer,
                layout="(input_dim, output_dim)",
            ),
        )

    def keras_args(self):
        return {
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": self.embeddings_initializer,
            "mask_zero": self.mask_zero,
            **self.keras_regularizer_args(),
        }

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        args = (("num_embeddings", self.input_dim), ("embedding_dim", self.output_dim))
        ids = lw.call(lw.Attr(lw.X, "long"))
        return lw.TorchLowering(
            modules=(lw.TorchModule("nn.Embedding", args),), steps=(lw.call(lw.SELF, ids),)
        )

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        source = layer.inputs[0]
        raw = next((t for t in b.model.inputs if t.name == source), None)
        if raw is not None and raw.dtype in ("int32", "int64"):
            ids, dtype = raw.name, raw.dtype  # Gather takes int32 and int64 indices
        else:
            x = b.get(source, lw.CL)
            ids = b.node("Cast", [x], b.tmp(layer, "ids"), to=7)  # float -> int64 truncates
            dtype = "int64"
        b.node("Gather", [b.weight(layer, "embeddings"), ids], out, axis=0)
        if self.mask_zero:  # Keras's mask: a step is real where its id is not 0
            zero = b.const(f"{layer.name}.zero", 0, dtype)
            padding = b.node("Equal", [ids, zero], b.tmp(layer, "padding"))
            b.masks[layer.name] = b.node("Not", [padding], b.tmp(layer, "mask"))


LAYERS = (Embedding,)
