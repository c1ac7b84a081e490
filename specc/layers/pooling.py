"""Pooling: MaxPooling1D/2D, AveragePooling1D/2D, GlobalAverage/MaxPooling1D/2D."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import ClassVar, Literal

from . import lowering as lw
from .base import Layer, Padding, Pair, Shape, ShapeError, Single, fmt_shape, window_out


class _Pooling(Layer):
    rank: ClassVar[int] = 2
    padding: Padding = "valid"

    @property
    def effective_strides(self) -> tuple[int, ...]:
        """Keras: strides default to the pool size."""
        return self.strides if self.strides is not None else self.pool_size

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = shapes[0]
        if len(shape) != self.rank + 1:
            raise ShapeError(f"expects a rank-{self.rank + 1} input, got {fmt_shape(shape)}")
        ones = (1,) * self.rank
        out = window_out(
            shape[:-1], self.pool_size, self.effective_strides, ones, self.padding, "pool"
        )
        return (*out, shape[-1])

    def keras_args(self):
        return {
            "pool_size": self.pool_size,
            "strides": self.effective_strides,
            "padding": self.padding,
            "data_format": "channels_last",
        }

    # -- PyTorch ------------------------------------------------------------------------
    torch_layout: ClassVar[str] = lw.CF
    torch_class: ClassVar[str] = ""

    def _torch_pads(self, shapes):
        if self.padding == "valid":
            return ((0, 0),) * self.rank
        return lw.same_pads(shapes[0][:-1], self.pool_size, self.effective_strides)

    def _torch_args(self, padding) -> tuple:
        return (
            ("kernel_size", self.pool_size),
            ("stride", self.effective_strides),
            ("padding", padding),
        )

    def torch_lowering(self, shapes, out, layout):
        return self._torch_max(shapes) if "Max" in self.torch_class else self._torch_avg(shapes)

    def _torch_max(self, shapes):
        """'same' pads with -inf (TF never lets padding win a max)."""
        pads = self._torch_pads(shapes)
        pre: tuple = ()
        padding = tuple(before for before, _ in pads)
        if any(before != after for before, after in pads):
            pre = (lw.call("F.pad", lw.X, lw.fpad_arg(pads), value=lw.Ref('float("-inf")')),)
            padding = (0,) * self.rank
        args = (
            *self._torch_args(padding),
            ("dilation", (1,) * self.rank),
            ("return_indices", False),
            ("ceil_mode", False),
        )
        return lw.TorchLowering(
            modules=(lw.TorchModule(self.torch_class, args),),
            steps=(*pre, lw.call(lw.SELF, lw.X)),
        )

    def _torch_avg(self, shapes):
        """'same' averages only real values (TF excludes the padding): count_include_pad=False
        for even padding; for uneven padding, pad with zeros and divide by the count of real
        values (the same pooling of ones)."""
        pads = self._torch_pads(shapes)
        steps: tuple = (lw.call(lw.SELF, lw.X),)
        padding = tuple(before for before, _ in pads)
        if any(before != after for before, after in pads):
            padding = (0,) * self.rank
            fpad = lw.fpad_arg(pads)
            ones = lw.call(lw.Attr(lw.X, "new_ones"), (1, 1, *shapes[0][:-1]))
            steps = (
                lw.call(lw.SELF, lw.call("F.pad", lw.X, fpad)),
                lw.BinOp("/", (lw.X, lw.call(lw.SELF, lw.call("F.pad", ones, fpad)))),
            )
        args = (*self._torch_args(padding), ("ceil_mode", False), ("count_include_pad", False))
        if self.rank == 2:
            args += (("divisor_override", None),)
        return lw.TorchLowering(modules=(lw.TorchModule(self.torch_class, args),), steps=steps)

    # -- ONNX ---------------------------------------------------------------------------
    onnx_layout: ClassVar[str] = lw.CF

    def onnx_lowering(self, b, layer, out, layout):
        in_shape = b.shape_of(layer.inputs[0])
        x = b.get(layer.inputs[0], lw.CF)
        strides = self.effective_strides
        ones = (1,) * len(strides)
        if self.padding == "same":
            pads = lw.onnx_pads(lw.same_pads(in_shape[:-1], self.pool_size, strides, ones))
        else:
            pads = [0] * (2 * len(strides))
        attrs = dict(kernel_shape=list(self.pool_size), strides=list(strides), pads=pads)
        if "Max" in self.torch_class:
            b.node("MaxPool", [x], out, **attrs)
        else:  # Keras/TF 'same' average pooling divides by the number of real pixels
            b.node("AveragePool", [x], out, count_include_pad=0, **attrs)


class MaxPooling2D(_Pooling):
    """Max pooling over (height, width) (keras.layers.MaxPooling2D)."""

    type: Literal["MaxPooling2D"]
    keras_class: ClassVar[str] = "MaxPooling2D"
    onnx_doc: ClassVar[str] = "`MaxPool` (explicit 'same' pads, never the maximum)"
    torch_doc: ClassVar[str] = "`nn.MaxPool2d`; uneven 'same' pads with −inf first"
    torch_class: ClassVar[str] = "nn.MaxPool2d"
    pool_size: Pair = (2, 2)
    strides: Pair | None = None


class AveragePooling2D(_Pooling):
    """Average pooling over (height, width); 'same' excludes the padding (keras.layers.AveragePooling2D)."""

    type: Literal["AveragePooling2D"]
    keras_class: ClassVar[str] = "AveragePooling2D"
    onnx_doc: ClassVar[str] = (
        "`AveragePool` with `count_include_pad=0`: 'same' divides by the real pixels, as TF"
    )
    torch_doc: ClassVar[str] = (
        "`nn.AvgPool2d(count_include_pad=False)`; uneven 'same': zero-pad, pool, divide by the same pooling of ones"
    )
    torch_class: ClassVar[str] = "nn.AvgPool2d"
    pool_size: Pair = (2, 2)
    strides: Pair | None = None


class MaxPooling1D(_Pooling):
    """Max pooling over steps (keras.layers.MaxPooling1D)."""

    type: Literal["MaxPooling1D"]
    keras_class: ClassVar[str] = "MaxPooling1D"
    onnx_doc: ClassVar[str] = "`MaxPool` (explicit 'same' pads, never the maximum)"
    torch_doc: ClassVar[str] = "`nn.MaxPool1d`; uneven 'same' pads with −inf first"
    torch_class: ClassVar[str] = "nn.MaxPool1d"
    rank: ClassVar[int] = 1
    pool_size: Single = (2,)
    strides: Single | None = None


class AveragePooling1D(_Pooling):
    """Average pooling over steps (keras.layers.AveragePooling1D)."""

    type: Literal["AveragePooling1D"]
    keras_class: ClassVar[str] = "AveragePooling1D"
    onnx_doc: ClassVar[str] = (
        "`AveragePool` with `count_include_pad=0`: 'same' divides by the real values, as TF"
    )
    torch_doc: ClassVar[str] = (
        "`nn.AvgPool1d(count_include_pad=False)`; uneven 'same': zero-pad, pool, divide by the same pooling of ones"
    )
    torch_class: ClassVar[str] = "nn.AvgPool1d"
    rank: ClassVar[int] = 1
    pool_size: Single = (2,)
    strides: Single | None = None


class _GlobalPooling(Layer):
    rank: ClassVar[int] = 2
    keepdims: bool = False

    def output_shape(self, shapes):
        shape = shapes[0]
        if len(shape) != self.rank + 1:
            raise ShapeError(f"expects a rank-{self.rank + 1} input, got {fmt_shape(shape)}")
        return (*(1,) * self.rank, shape[-1]) if self.keepdims else (shape[-1],)

    def keras_args(self):
        return {"keepdims": self.keepdims, "data_format": "channels_last"}

    torch_layout: ClassVar[str] = lw.CF
    torch_reduce: ClassVar[str] = "mean"

    def torch_lowering(self, shapes, out, layout):
        dims = tuple(range(2, 2 + self.rank))
        step = lw.call(lw.Attr(lw.X, self.torch_reduce), dim=dims, keepdim=self.keepdims)
        return lw.TorchLowering(steps=(step,))

    onnx_layout: ClassVar[str] = lw.CF

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], lw.CF)
        op = "GlobalMaxPool" if self.torch_reduce == "amax" else "GlobalAveragePool"
        if self.keepdims:
            b.node(op, [x], out)
        else:
            y = b.node(op, [x], b.tmp(layer, "pooled"))
            b.node("Flatten", [y], out, axis=1)


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over (height, width) (keras.layers.GlobalAveragePooling2D)."""

    type: Literal["GlobalAveragePooling2D"]
    keras_class: ClassVar[str] = "GlobalAveragePooling2D"
    onnx_doc: ClassVar[str] = "`GlobalAveragePool`, then `Flatten` unless `keepdims`"
    torch_doc: ClassVar[str] = "`x.mean(dim=(2, 3), keepdim=…)`"


class GlobalMaxPooling2D(_GlobalPooling):
    """Max over (height, width) (keras.layers.GlobalMaxPooling2D)."""

    type: Literal["GlobalMaxPooling2D"]
    keras_class: ClassVar[str] = "GlobalMaxPooling2D"
    onnx_doc: ClassVar[str] = "`GlobalMaxPool`, then `Flatten` unless `keepdims`"
    torch_doc: ClassVar[str] = "`x.amax(dim=(2, 3), keepdim=…)`"
    torch_reduce: ClassVar[str] = "amax"


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over steps (keras.layers.GlobalAveragePooling1D)."""

    type: Literal["GlobalAveragePooling1D"]
    keras_class: ClassVar[str] = "GlobalAveragePooling1D"
    onnx_doc: ClassVar[str] = "`GlobalAveragePool`, then `Flatten` unless `keepdims`"
    torch_doc: ClassVar[str] = (
        "`x.mean(dim=2, keepdim=…)`; under a mask, the mean over the real steps, as Keras"
    )
    rank: ClassVar[int] = 1
    keras_masking: ClassVar[str] = "use"

    def passes_mask(self) -> bool:
        return False

    def onnx_mask_lowering(self, b, layer, out, layout, masks):
        # Keras: sum(x * mask) / sum(mask) over the steps, here channels-last (axis 1)
        x = b.get(layer.inputs[0], lw.CL)
        axis = b.const(f"{layer.name}.steps_axis", [1], "int64")
        mask = b.node("Unsqueeze", [masks[0], b.const(f"{layer.name}.last_axis", [2], "int64")],
                      b.tmp(layer, "mask3"))  # fmt: skip
        weights = b.node("Cast", [mask], b.tmp(layer, "weights"), to=1)
        total = b.node("ReduceSum", [b.node("Mul", [x, weights], b.tmp(layer, "masked")), axis],
                       b.tmp(layer, "total"), keepdims=1)  # fmt: skip
        count = b.node("ReduceSum", [weights, axis], b.tmp(layer, "count"), keepdims=1)
        if not self.keepdims:
            b.node("Flatten", [b.node("Div", [total, count], b.tmp(layer, "mean"))], out, axis=1)
        elif layout == lw.CF:
            mean = b.node("Div", [total, count], b.tmp(layer, "mean"))
            b.node("Transpose", [mean], out, perm=[0, 2, 1])
        else:
            b.node("Div", [total, count], out)

    def torch_mask_steps(self, lowering, masks, out):
        mask = masks[0]
        # Keras: sum(x * mask) / sum(mask) over the steps (channels-first here: axis 2)
        dtype = lw.Attr(lw.X, "dtype")
        weights = lw.call(lw.Attr(lw.call(lw.Attr(mask, "unsqueeze"), 1), "to"), dtype)
        count = lw.call(lw.Attr(mask, "sum"), dim=1, keepdim=True)
        if self.keepdims:
            count = lw.call(lw.Attr(count, "unsqueeze"), 1)
        total = lw.call(lw.Attr(lw.X, "sum"), dim=2, keepdim=self.keepdims)
        return (
            lw.BinOp("*", (lw.X, weights)),
            lw.BinOp("/", (total, lw.call(lw.Attr(count, "to"), dtype))),
        )


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over steps (keras.layers.GlobalMaxPooling1D)."""

    type: Literal["GlobalMaxPooling1D"]
    keras_class: ClassVar[str] = "GlobalMaxPooling1D"
    onnx_doc: ClassVar[str] = "`GlobalMaxPool`, then `Flatten` unless `keepdims`"
    torch_doc: ClassVar[str] = "`x.amax(dim=2, keepdim=…)`"
    torch_reduce: ClassVar[str] = "amax"
    rank: ClassVar[int] = 1


LAYERS = (
    MaxPooling1D,
    MaxPooling2D,
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
)
