"""What every layer type shares: the pydantic base, field types and the shape arithmetic.

A layer module is the one place a layer type is declared: its pydantic model (spec fields
with Keras names and defaults), its rules (``output_shape``, ``weights``, ``count_macs``)
and its lowering to every target (``keras_args``, ``torch_lowering``, ``onnx_lowering``).
Parameter counts, the canonical weight layout, seeded initial values, ONNX initializers and
the PyTorch state-dict conversion all derive from :meth:`Layer.weights`.
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

Shape = tuple[int, ...]  # one sample's shape, channels-last, without the batch dimension

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]

#: the Keras activation strings specc accepts; each is lowered once, for every target, in
#: layers.lowering.ACTIVATIONS
ACTIVATIONS = (
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "swish",
    "silu",
    "softplus",
    "relu6",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "mish",
    "log_softmax",
    "softsign",
    "exponential",
)
ActivationName = Literal[ACTIVATIONS]  # type: ignore[valid-type]
InitializerName = Literal[
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "zeros",
    "ones",
]


class _InitializerConfig(BaseModel):
    """A Keras initializer written as a mapping like its Keras config: ``type`` is the
    class name (keras.initializers.<type>), the other keys its arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def keras_config(self) -> dict:
        """The ``{'class_name', 'config'}`` mapping Keras's layers accept as an initializer."""
        config = self.model_dump(exclude={"type"})
        return {"class_name": self.type, "config": config}  # type: ignore[attr-defined]

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.model_dump(exclude={"type"}).items())
        return f"{self.type}({args})"  # type: ignore[attr-defined]


class VarianceScaling(_InitializerConfig):
    """keras.initializers.VarianceScaling: variance ``scale / max(1, fan)`` (Keras's fans)."""

    type: Literal["VarianceScaling"]
    scale: float = Field(default=1.0, gt=0.0)
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform"] = "truncated_normal"
    seed: int | None = None


class TruncatedNormal(_InitializerConfig):
    """keras.initializers.TruncatedNormal: normal draws beyond two ``stddev`` redrawn."""

    type: Literal["TruncatedNormal"]
    mean: float = 0.0
    stddev: float = Field(default=0.05, gt=0.0)
    seed: int | None = None


class RandomNormal(_InitializerConfig):
    """keras.initializers.RandomNormal."""

    type: Literal["RandomNormal"]
    mean: float = 0.0
    stddev: float = Field(default=0.05, gt=0.0)
    seed: int | None = None


class RandomUniform(_InitializerConfig):
    """keras.initializers.RandomUniform: uniform in [minval, maxval)."""

    type: Literal["RandomUniform"]
    minval: float = -0.05
    maxval: float = 0.05
    seed: int | None = None


class Orthogonal(_InitializerConfig):
    """keras.initializers.Orthogonal: an orthogonal matrix (the kernel flattened to
    (everything but the last axis, last axis)) times ``gain``."""

    type: Literal["Orthogonal"]
    gain: float = 1.0
    seed: int | None = None


class Constant(_InitializerConfig):
    """keras.initializers.Constant."""

    type: Literal["Constant"]
    value: float = 0.0


InitializerConfig = Annotated[
    VarianceScaling | TruncatedNormal | RandomNormal | RandomUniform | Orthogonal | Constant,
    Field(discriminator="type"),
]
#: a Keras initializer: a name, or a mapping like its Keras config
Initializer = InitializerName | InitializerConfig


def keras_initializer(initializer) -> str | dict:
    """An initializer as a Keras layer argument: the name, or Keras's config mapping."""
    return initializer if isinstance(initializer, str) else initializer.keras_config()


Padding = Literal["valid", "same"]
PositiveInt = Annotated[int, Field(ge=1, le=1_000_000_000)]


def _as_tuple(n: int):
    def convert(value):
        if isinstance(value, bool):
            return value  # let pydantic reject it
        if isinstance(value, int):
            return (value,) * n
        if isinstance(value, list):
            return tuple(value)
        return value

    return convert


Pair = Annotated[tuple[PositiveInt, PositiveInt], BeforeValidator(_as_tuple(2))]
Single = Annotated[tuple[PositiveInt], BeforeValidator(_as_tuple(1))]


@dataclass(frozen=True)
class Weight:
    """One weight of a layer, as Keras's ``build()`` creates it.

    ``name`` and ``shape`` are Keras's (the canonical ``.npz`` key is ``<layer>/<name>``);
    ``initializer`` is a Keras initializer name; ``layout`` describes the Keras layout for
    messages. ``transforms`` maps a target to the conversion its layout needs (see
    specc.weights.TRANSFORMS; default 'identity'); ``torch_module`` / ``torch_attr`` name
    the module (suffix, '' for the layer's own) and tensor the PyTorch target stores it in.
    """

    name: str
    shape: tuple[int, ...]
    initializer: str
    trainable: bool = True
    layout: str = "(channels,)"
    transforms: tuple[tuple[str, str], ...] = ()
    torch_attr: str = "weight"
    torch_module: str = ""
    #: the Keras variable's own name when it differs from ``name`` (a wrapper's weights,
    #: e.g. Bidirectional's ``forward_kernel`` is the variable ``kernel``)
    keras_name: str = ""

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def keras_variable(self) -> str:
        return self.keras_name or self.name

    def transform(self, target: str) -> str:
        return dict(self.transforms).get(target, "identity")


#: kernels: torch and ONNX both want (out, in, *spatial)
CONV_KERNEL = (("pytorch", "conv"), ("onnx", "conv"))
#: depthwise kernels (kh, kw, C, M) -> (C*M, 1, kh, kw) in torch and ONNX
DEPTHWISE_KERNEL = (("pytorch", "depthwise"), ("onnx", "depthwise"))
#: Dense kernels: torch's Linear stores (out, in); ONNX's MatMul/Gemm takes Keras's (in, out)
DENSE_KERNEL = (("pytorch", "dense"),)


class ShapeError(Exception):
    """A layer cannot be applied to its input; ``field`` names the spec field to point at."""

    def __init__(self, message: str, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint


class _RegularizerConfig(BaseModel):
    """A Keras weight regularizer written as a mapping like its Keras config."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def factors(self) -> tuple[float, float]:
        """(l1, l2): the penalty ``l1 * sum(|w|) + l2 * sum(w ** 2)`` Keras adds to the loss."""
        return getattr(self, "l1", 0.0), getattr(self, "l2", 0.0)


NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class L1(_RegularizerConfig):
    """keras.regularizers.L1: ``l1 * sum(|w|)``."""

    type: Literal["L1"]
    l1: NonNegative = 0.01


class L2(_RegularizerConfig):
    """keras.regularizers.L2: ``l2 * sum(w ** 2)`` (no factor 1/2, as Keras)."""

    type: Literal["L2"]
    l2: NonNegative = 0.01


class L1L2(_RegularizerConfig):
    """keras.regularizers.L1L2: ``l1 * sum(|w|) + l2 * sum(w ** 2)``."""

    type: Literal["L1L2"]
    l1: NonNegative = 0.0
    l2: NonNegative = 0.0


RegularizerConfig = Annotated[L1 | L2 | L1L2, Field(discriminator="type")]
#: a Keras weight regularizer: 'l1' / 'l2' (Keras's identifiers, factor 0.01), 'l1_l2'
#: (both 0.01, as Keras 2's ``l1_l2()``), or a mapping like its Keras config
_Regularizer = Literal["l1", "l2", "l1_l2"] | RegularizerConfig
#: a regularizer field: unset (None) leaves no trace in the layer's config, so that specs
#: without regularizers keep their spec hash
Regularizer = Annotated[_Regularizer | None, Field(exclude_if=lambda value: value is None)]
_REGULARIZER_NAMES = {"l1": (0.01, 0.0), "l2": (0.0, 0.01), "l1_l2": (0.01, 0.01)}


def regularizer_factors(regularizer) -> tuple[float, float]:
    """(l1, l2) of a regularizer field value."""
    if isinstance(regularizer, str):
        return _REGULARIZER_NAMES[regularizer]
    return regularizer.factors()


def keras_regularizer(regularizer) -> dict | None:
    """A regularizer as a Keras layer argument, every factor explicit (``L1L2`` for 'l1_l2')."""
    if regularizer is None:
        return None
    l1, l2 = regularizer_factors(regularizer)
    if isinstance(regularizer, str):
        kind = {"l1": "L1", "l2": "L2", "l1_l2": "L1L2"}[regularizer]
    else:
        kind = regularizer.type
    config = {"L1": {"l1": l1}, "L2": {"l2": l2}, "L1L2": {"l1": l1, "l2": l2}}[kind]
    return {"class_name": kind, "config": config, "module": "keras.regularizers"}


class Layer(BaseModel):
    """Base of every layer type. ``type`` is the Keras class name."""

    # allow_inf_nan: a non-finite number (.inf, NaN) has no Python literal in generated code
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, defer_build=True, allow_inf_nan=False
    )

    name: Name | None = Field(default=None, description="Unique layer name (default: Keras-style).")
    inputs: list[Name] | None = Field(
        default=None,
        description="Names of the layers or model inputs this layer reads (default: previous layer).",
    )

    #: how many inputs the layer takes: 1, or None for "two or more" (merges), 0 for Input
    arity: ClassVar[int | None] = 1
    #: the Keras class that implements the layer (keras.layers.<keras_class>)
    keras_class: ClassVar[str] = ""
    #: target name -> why this layer type has no lowering there (the coverage test
    #: requires a lowering or a reason for every registered target)
    refusals: ClassVar[dict[str, str]] = {}
    #: one line each on how the PyTorch and ONNX targets lower it (the generated docs tables)
    torch_doc: ClassVar[str] = ""
    onnx_doc: ClassVar[str] = ""
    #: (fields, input shapes) of an example instance, for layers with weights: the weight
    #: tables of the docs are computed from it
    doc_example: ClassVar[tuple | None] = None
    #: weight name -> the field holding its regularizer (Keras's ``kernel_regularizer``...);
    #: the penalty enters the training loss of every backend (see :meth:`regularizers`)
    regularized: ClassVar[dict[str, str]] = {}
    #: what Keras does with the mask of an ``Embedding(mask_zero=True)`` reaching the layer:
    #: "drop" (Keras's ``supports_masking`` False: computes as without it and hands no mask
    #: on), "pass" (computes as without it and hands it on), "merge" (computes as without
    #: it and hands on what :meth:`output_mask` makes of its inputs' masks), "use" (takes it
    #: into account: :meth:`torch_mask_steps`, :meth:`onnx_mask_lowering`), "refuse" (uses
    #: it in a way the targets do not reproduce). tests/test_masking.py checks the first
    #: against Keras's supports_masking.
    keras_masking: ClassVar[str] = "drop"
    #: Keras gives it its inputs' masks at run time from the tensors (its saved call records
    #: no ``mask=``, unlike a recurrent layer's or pooling's): attention layers
    keras_runtime_masks: ClassVar[bool] = False
    #: when it runs, Keras clears the masks of the tensors it reads (MultiHeadAttention)
    keras_clears_input_masks: ClassVar[bool] = False

    @property
    def layer_type(self) -> str:
        return self.type  # type: ignore[attr-defined]

    # -- rules every layer defines ---------------------------------------------------------
    def output_shape(self, shapes: list[Shape]) -> Shape:
        return shapes[0]

    def weights(self, shapes: list[Shape]) -> tuple[Weight, ...]:
        """Every weight this layer creates for these input shapes, in Keras's order."""
        return ()

    def count_params(self, shapes: list[Shape], out: Shape) -> tuple[int, int]:
        """(trainable, non_trainable), counted as Keras counts them: from :meth:`weights`."""
        weights = self.weights(shapes)
        trainable = sum(w.size for w in weights if w.trainable)
        return trainable, sum(w.size for w in weights if not w.trainable)

    def count_macs(self, shapes: list[Shape], out: Shape) -> int:
        """Multiply-accumulates per sample (weight layers only; element-wise ops count 0)."""
        return 0

    def keras_args(self) -> dict:
        """Every constructor argument for keras.layers.<keras_class>, written explicitly."""
        return {}

    def passes_mask(self) -> bool:
        """Whether the output carries the input's mask on (Keras's ``compute_mask``)."""
        return self.keras_masking == "pass"

    def output_mask(self, masks: tuple[str | None, ...]) -> str | None:
        """The Embedding whose mask the output carries, given the one each input carries
        (Keras's ``compute_mask``); by default the first input's, where it passes masks."""
        return masks[0] if self.passes_mask() else None

    def check_masks(self, masks: tuple, out: Shape, target: str) -> None:
        """Raise lowering.Unsupported where the inputs' masks (the Embedding each carries,
        or None) combine in a way ``target`` does not reproduce ("merge" and "use" layers)."""

    def onnx_mask_lowering(self, b, layer, out: str, layout: str, masks: tuple) -> None:
        """:meth:`onnx_lowering` taking the inputs' masks into account ("use" layers):
        ``masks[i]`` is input i's mask value (bool (batch, steps)) or None."""
        from .lowering import Unsupported

        raise Unsupported(
            f"{self.layer_type} takes the mask of an Embedding (mask_zero: true), which the "
            "ONNX target does not reproduce for this layer",
            hint="set mask_zero: false on the Embedding, or use the Keras or PyTorch target",
        )

    def torch_mask_steps(self, lowering, masks: tuple, out: Shape) -> tuple:
        """The forward steps of ``lowering`` taking the inputs' masks into account ("use"
        layers): ``masks[i]`` is the expression of input i's mask (a bool tensor
        (batch, steps), True at real steps), None where that input carries none; ``out`` is
        the output shape. Raises lowering.Unsupported for what the target cannot do."""
        from .lowering import Unsupported

        raise Unsupported(f"{self.layer_type} does not take a Keras mask in the PyTorch target")

    def regularizers(self) -> dict[str, tuple[float, float]]:
        """Weight name -> (l1, l2) factors, for the weights that have a regularizer."""
        out = {}
        for weight, field in self.regularized.items():
            value = getattr(self, field)
            if value is not None:
                out[weight] = regularizer_factors(value)
        return out

    def keras_regularizer_args(self) -> dict:
        """The set regularizer fields as Keras arguments (unset ones are left out, so that
        specs without regularizers keep their generated code)."""
        fields = dict.fromkeys(self.regularized.values())
        return {f: keras_regularizer(getattr(self, f)) for f in fields if getattr(self, f)}

    # -- what the PyTorch backend needs (see lowering.py) -----------------------------------
    #: the layout the torch code wants this layer's input in: "cf", "cl" or "any"
    torch_layout: ClassVar[str] = "any"

    def torch_lowering(self, shapes: list[Shape], out: Shape, layout: str):
        """Modules, forward steps and weight mapping of the PyTorch backend (a TorchLowering)."""
        from .lowering import Unsupported

        reason = self.refusals.get("pytorch", f"{self.layer_type} has no PyTorch lowering")
        raise Unsupported(reason)

    # -- what the ONNX target needs (see specc/targets/onnx) --------------------------------
    #: the layout this layer's ONNX nodes produce: "cf", "cl", or "any" (that of the inputs)
    onnx_layout: ClassVar[str] = "any"
    #: (opset, what needs it) when the lowering needs a newer opset than the target's minimum
    onnx_min_opset: ClassVar[tuple[int, str] | None] = None

    def onnx_out_layout(self, rank: int, in_layouts: list[str]) -> str:
        """The layout of the output value for a rank-``rank`` sample (inputs in ``in_layouts``)."""
        if self.onnx_layout != "any":
            return self.onnx_layout
        return "cf" if "cf" in in_layouts else "cl"

    def onnx_lowering(self, b, layer, out: str, layout: str) -> None:
        """Emit this layer's ONNX nodes through the graph builder ``b`` (writing ``out``)."""
        from .lowering import Unsupported

        raise Unsupported(self.refusals.get("onnx", f"{self.layer_type} has no ONNX lowering"))


# --------------------------------------------------------------------------- arithmetic


def require_rank(shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise ShapeError(
            f"expects a rank-{rank} input {what} (batch excluded), got {fmt_shape(shape)}",
            hint="add a Reshape or Flatten layer before it" if len(shape) != rank else None,
        )


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_dims(dims) -> str:
    return "x".join(str(d) for d in dims)


def conv_out(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Keras/TF output length of a convolution or pooling window along one axis."""
    effective = (kernel - 1) * dilation + 1
    if padding == "same":
        return math.ceil(size / stride)
    return (size - effective) // stride + 1 if size >= effective else 0


def window_out(
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: str,
    what: str = "kernel",
) -> tuple[int, ...]:
    """Output spatial dims; raises ShapeError when the window does not fit ('valid')."""
    effective = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    out = tuple(
        conv_out(s, k, st, d, padding) for s, k, st, d in zip(sizes, kernel, strides, dilation)
    )
    if padding == "valid" and any(e > s for e, s in zip(effective, sizes)):
        dilated = ""
        if any(d > 1 for d in dilation):
            dilated = f" (dilated to {fmt_dims(effective)})"
        field = "kernel_size" if what == "kernel" else "pool_size"
        raise ShapeError(
            f"{what} {fmt_dims(kernel)}{dilated} does not fit input {fmt_dims(sizes)} "
            f"(padding 'valid')",
            field=field,
            hint="use padding: same, a smaller window, or fewer downsampling layers before it",
        )
    return out


def normalize_axis(axis: int, rank: int, field: str = "axis") -> int:
    """Keras axis (counting the batch as 0) -> index into the per-sample shape."""
    full = axis + rank + 1 if axis < 0 else axis
    if not 1 <= full <= rank:
        raise ShapeError(
            f"axis {axis} is out of range for an input of rank {rank} (+ batch)",
            field=field,
            hint=f"use -1 or 1..{rank}; axis 0 is the batch",
        )
    return full - 1


def prod(values) -> int:
    return math.prod(values)
