"""Pooling: MaxPooling1D/2D, AveragePooling1D/2D, GlobalAverage/MaxPooling1D/2D."""

from __future__ import annotations

from typing import ClassVar, Literal

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
        }


class MaxPooling2D(_Pooling):
    """Max pooling over (height, width) (keras.layers.MaxPooling2D)."""

    type: Literal["MaxPooling2D"]
    keras_class: ClassVar[str] = "MaxPooling2D"
    pool_size: Pair = (2, 2)
    strides: Pair | None = None


class AveragePooling2D(_Pooling):
    """Average pooling over (height, width); 'same' excludes the padding (keras.layers.AveragePooling2D)."""

    type: Literal["AveragePooling2D"]
    keras_class: ClassVar[str] = "AveragePooling2D"
    pool_size: Pair = (2, 2)
    strides: Pair | None = None


class MaxPooling1D(_Pooling):
    """Max pooling over steps (keras.layers.MaxPooling1D)."""

    type: Literal["MaxPooling1D"]
    keras_class: ClassVar[str] = "MaxPooling1D"
    rank: ClassVar[int] = 1
    pool_size: Single = (2,)
    strides: Single | None = None


class AveragePooling1D(_Pooling):
    """Average pooling over steps (keras.layers.AveragePooling1D)."""

    type: Literal["AveragePooling1D"]
    keras_class: ClassVar[str] = "AveragePooling1D"
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
        return {"keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over (height, width) (keras.layers.GlobalAveragePooling2D)."""

    type: Literal["GlobalAveragePooling2D"]
    keras_class: ClassVar[str] = "GlobalAveragePooling2D"


class GlobalMaxPooling2D(_GlobalPooling):
    """Max over (height, width) (keras.layers.GlobalMaxPooling2D)."""

    type: Literal["GlobalMaxPooling2D"]
    keras_class: ClassVar[str] = "GlobalMaxPooling2D"


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over steps (keras.layers.GlobalAveragePooling1D)."""

    type: Literal["GlobalAveragePooling1D"]
    keras_class: ClassVar[str] = "GlobalAveragePooling1D"
    rank: ClassVar[int] = 1


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over steps (keras.layers.GlobalMaxPooling1D)."""

    type: Literal["GlobalMaxPooling1D"]
    keras_class: ClassVar[str] = "GlobalMaxPooling1D"
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
