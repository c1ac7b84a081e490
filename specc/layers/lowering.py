"""What a layer tells the PyTorch backend, as plain data (no torch import).

A layer's ``torch_lowering(shapes, out, layout)`` returns a :class:`TorchLowering`: the
modules it creates in ``__init__`` (constructor name and every argument), the forward steps
(small expression trees applied in order, each to the previous result), and how its Keras
weights map onto torch parameters. The code generator only formats this data.

Layouts: the generated torch module works on channels-first tensors (NCHW / NCL) where a
convolution, pooling or BatchNormalization needs them, and on channels-last tensors (as
Keras) where Dense, Flatten, Reshape and LayerNormalization need them. ``CF`` / ``CL`` name
the two; tensors of rank <= 1 (batch excluded) are the same in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .initializers import TRUNCATED_STD, keras_fans, variance_scale

CF, CL, ANY = "cf", "cl", "any"

#: a module class the generated file defines itself (templates/pytorch/keras_batch_norm.py.j2):
#: BatchNormalization with Keras's momentum and moving-variance update
KERAS_BATCH_NORM = "KerasBatchNorm"
HELPER_TEMPLATES = {KERAS_BATCH_NORM: "pytorch/keras_batch_norm.py.j2"}


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expr:
    """Base of the small expression language of forward steps."""


@dataclass(frozen=True)
class Input(Expr):
    """The layer's i-th input (for a chained step: the previous step's result)."""

    index: int = 0


@dataclass(frozen=True)
class Module(Expr):
    """``self.<attribute>`` of one of the layer's modules (``suffix`` '' is the layer's own)."""

    suffix: str = ""


@dataclass(frozen=True)
class Lit(Expr):
    """A Python literal: int, float, bool, None, str, or tuples of them."""

    value: object


@dataclass(frozen=True)
class Ref(Expr):
    """A fixed name or dotted path from the generated module's imports, e.g. ``F.relu``."""

    text: str


@dataclass(frozen=True)
class Call(Expr):
    func: Expr | str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True)
class BinOp(Expr):
    """``a op b op c`` (left-associative, one operator)."""

    op: str
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Attr(Expr):
    """``<base>.<name>`` (a method access)."""

    base: Expr
    name: str


@dataclass(frozen=True)
class Slice(Expr):
    """``base[:, :, a:b, ...]``: keep everything of the first ``skip`` axes, then ranges."""

    base: Expr
    skip: int
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ListOf(Expr):
    """``[a, b, c]``."""

    items: tuple[Expr, ...]


def call(func: Expr | str, *args: Expr, **kwargs: Expr) -> Call:
    """A call; plain Python values in args/kwargs become literals."""
    return Call(
        func,
        tuple(a if isinstance(a, Expr) else Lit(a) for a in args),
        tuple((k, v if isinstance(v, Expr) else Lit(v)) for k, v in kwargs.items()),
    )


X = Input(0)
SELF = Module("")


# --------------------------------------------------------------------------- lowering data


@dataclass(frozen=True)
class TorchModule:
    """One ``self.<name>[_<suffix>] = <cls>(**args)`` line of ``__init__``."""

    cls: str
    args: tuple[tuple[str, object], ...]
    suffix: str = ""


@dataclass(frozen=True)
class TorchLowering:
    modules: tuple[TorchModule, ...] = ()
    steps: tuple[Expr, ...] = ()
    out_layout: str | None = None  # None: the input layout
    comment: str | None = None


class Unsupported(Exception):
    """A valid spec the PyTorch backend cannot express exactly; ``field`` locates it."""

    def __init__(self, message: str, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint


# --------------------------------------------------------------------------- helpers


def torch_dim(axis_index: int, rank: int, layout: str) -> int:
    """Per-sample Keras axis index (0-based, channels-last) -> torch dim in ``layout``."""
    if layout == CF and rank >= 2:
        axis_index = 0 if axis_index == rank - 1 else axis_index + 1
    return axis_index + 1


def same_pads(sizes, kernel, strides, dilation=None) -> tuple[tuple[int, int], ...]:
    """TF 'same' padding per axis: (before, after), the odd pixel after (bottom/right)."""
    dilation = dilation or (1,) * len(sizes)
    pads = []
    for size, k, s, d in zip(sizes, kernel, strides, dilation):
        out = math.ceil(size / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def onnx_pads(pads: tuple[tuple[int, int], ...]) -> list[int]:
    """ONNX's ``pads`` attribute: every axis's start, then every axis's end."""
    return [before for before, _ in pads] + [after for _, after in pads]


def fpad_arg(pads: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """``F.pad`` wants the last axis first: (left, right, top, bottom)."""
    flat: list[int] = []
    for before, after in reversed(pads):
        flat += [before, after]
    return tuple(flat)


def activation_steps(name: str | None, rank: int, layout: str) -> tuple[Expr, ...]:
    """Forward steps of a Keras activation string (Keras 3 semantics, verified against torch)."""
    if name in (None, "linear"):
        return ()
    if name == "softmax":
        return (call("F.softmax", X, dim=torch_dim(rank - 1, rank, layout)),)
    if name == "leaky_relu":  # keras.activations.leaky_relu: negative_slope=0.2
        return (call("F.leaky_relu", X, negative_slope=0.2),)
    if name == "elu":
        return (call("F.elu", X, alpha=1.0),)
    if name == "gelu":  # keras.activations.gelu: approximate=False (the erf form)
        return (call("F.gelu", X, approximate="none"),)
    if name in ("swish", "silu"):
        return (call("F.silu", X),)
    if name == "softplus":  # torch's linear regime above 20 differs by < 3e-9
        return (call("F.softplus", X, beta=1.0, threshold=20.0),)
    simple = {"relu": "F.relu", "sigmoid": "torch.sigmoid", "tanh": "torch.tanh", "selu": "F.selu"}
    return (call(simple[name], X),)


@dataclass(frozen=True)
class InitCall:
    """How torch initializes one weight exactly as the Keras initializer does."""

    func: str
    kwargs: tuple[tuple[str, float], ...] = field(default=())
    comment: str = ""


def torch_init(initializer: str, keras_shape: tuple[int, ...]) -> InitCall:
    """Keras VarianceScaling with Keras's fans (torch's fans differ for depthwise kernels)."""
    if initializer == "zeros":
        return InitCall("nn.init.zeros_")
    if initializer == "ones":
        return InitCall("nn.init.ones_")
    if initializer == "uniform":
        return InitCall("nn.init.uniform_", (("a", -0.05), ("b", 0.05)), "uniform, as Keras")
    if initializer == "orthogonal":
        return InitCall("nn.init.orthogonal_", (("gain", 1.0),), "orthogonal, as Keras")
    if initializer == "unit_forget_bias":
        return InitCall("KerasLSTM.unit_forget_bias_", (), "LSTM unit_forget_bias, as Keras")
    fan_in, fan_out = keras_fans(keras_shape)
    scale, distribution = variance_scale(initializer, keras_shape)
    comment = f"{initializer}, Keras fans: in {fan_in}, out {fan_out}"
    if distribution == "uniform":
        limit = math.sqrt(3.0 * scale)
        return InitCall("nn.init.uniform_", (("a", -limit), ("b", limit)), comment)
    # Keras draws from a normal truncated at two standard deviations
    std = math.sqrt(scale) / TRUNCATED_STD
    return InitCall(
        "nn.init.trunc_normal_",
        (("mean", 0.0), ("std", std), ("a", -2 * std), ("b", 2 * std)),
        comment,
    )
