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

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import math
from dataclasses import dataclass, field

from .initializers import distribution, keras_fans

CF, CL, ANY = "cf", "cl", "any"

#: a module class the generated file defines itself (templates/pytorch/keras_batch_norm.py.j2):
#: BatchNormalization with Keras's momentum and moving-variance update
KERAS_BATCH_NORM = "KerasBatchNorm"
#: keras.layers.Normalization: mean and variance buffers (templates/pytorch/keras_normalization.py.j2)
KERAS_NORMALIZATION = "KerasNormalization"
HELPER_TEMPLATES = {
    KERAS_BATCH_NORM: "pytorch/keras_batch_norm.py.j2",
    KERAS_NORMALIZATION: "pytorch/keras_normalization.py.j2",
}


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


@dataclass(frozen=True)
class IfTraining(Expr):
    """``<then> if self.training else <otherwise>`` (a whole forward step only)."""

    then: Expr
    otherwise: Expr


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


def check_masks(layer, masks: tuple, runtime_problem: str | None, target: str) -> None:
    """Raise Unsupported where the Keras masks reaching ``layer`` (a LayerIR; ``masks[i]``
    the Embedding whose mask input i carries, or None) are used in a way ``target`` does
    not reproduce; ``runtime_problem`` is infer.keras_runtime_mask_problems' word on it.
    Layers that compute as without the mask ("pass", "drop") need no check."""
    if layer.spec.keras_masking in ("pass", "drop"):
        return
    mask = next(m for m in masks if m is not None)
    if runtime_problem is not None:
        raise Unsupported(
            f"{layer.type} receives the mask of Embedding '{mask}' (mask_zero: true), but in "
            f"Keras {runtime_problem}, so what this layer gets at run time is not that mask",
            hint="set mask_zero: false on the Embedding, or use the Keras target",
        )
    if layer.spec.keras_masking == "refuse":
        raise Unsupported(
            f"{layer.type} receives the mask of Embedding '{mask}' (mask_zero: true), which "
            f"Keras applies here in a way the {target} target does not reproduce",
            hint="set mask_zero: false on the Embedding, or use the Keras target",
        )
    layer.spec.check_masks(masks, layer.output_shape, target)


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


@dataclass(frozen=True)
class Activation:
    """One Keras activation string, lowered once for every target.

    ``formula`` is Keras 3's definition (the docs' activation table); ``torch(rank, layout)``
    gives the forward steps; ``onnx(b, x, out, layout, rank)`` emits the ONNX nodes through
    the graph builder and returns the output value; ``onnx_opset`` is the opset its ONNX
    lowering needs (None: the target's minimum).
    """

    formula: str
    torch: object
    onnx: object
    torch_doc: str
    onnx_doc: str


def _softmax_dim(rank: int, layout: str) -> int:
    return torch_dim(rank - 1, rank, layout)


def _onnx_axis(layout: str, rank: int) -> int:
    """The channel (last Keras) axis of a full-rank ONNX value in ``layout``."""
    return 1 if layout == CF and rank > 2 else -1


def _fn(name: str, **kwargs):
    return lambda rank, layout: (call(name, X, **kwargs),)


def _op(op: str, **attrs):
    return lambda b, x, out, layout, rank: b.node(op, [x], out, **attrs)


def _onnx_swish(b, x, out, layout, rank):
    s = b.node("Sigmoid", [x], f"{out}/sigmoid")
    return b.node("Mul", [x, s], out)


def _onnx_gelu(b, x, out, layout, rank):
    if b.opset >= 20:
        return b.node("Gelu", [x], out, approximate="none")
    t = b.node("Div", [x, b.const("const.sqrt2", math.sqrt(2.0))], f"{out}/div")
    t = b.node("Erf", [t], f"{out}/erf")
    t = b.node("Add", [t, b.const("const.one", 1.0)], f"{out}/add")
    t = b.node("Mul", [x, t], f"{out}/mul")
    return b.node("Mul", [t, b.const("const.half", 0.5)], out)


def _onnx_relu6(b, x, out, layout, rank):
    return b.node("Clip", [x, b.const("const.zero", 0.0), b.const("const.six", 6.0)], out)


def _onnx_hard_sigmoid(b, x, out, layout, rank):
    """relu6(x + 3) / 6, as Keras's TensorFlow backend computes it."""
    t = b.node("Add", [x, b.const("const.three", 3.0)], f"{out}/add")
    t = _onnx_relu6(b, t, f"{out}/relu6", layout, rank)
    return b.node("Div", [t, b.const("const.six", 6.0)], out)


def _onnx_hard_silu(b, x, out, layout, rank):
    t = _onnx_hard_sigmoid(b, x, f"{out}/hard_sigmoid", layout, rank)
    return b.node("Mul", [x, t], out)


def _onnx_mish(b, x, out, layout, rank):
    t = b.node("Softplus", [x], f"{out}/softplus")
    t = b.node("Tanh", [t], f"{out}/tanh")
    return b.node("Mul", [x, t], out)


def _onnx_selu(b, x, out, layout, rank):
    return b.node("Selu", [x], out, alpha=SELU_ALPHA, gamma=SELU_SCALE)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_SWISH = Activation(
    "x · sigmoid(x)", _fn("F.silu"), _onnx_swish, "`F.silu`", "`Mul(x, Sigmoid(x))`"
)
_HARD_SILU = Activation(
    "x · relu6(x + 3) / 6",
    _fn("F.hardswish"),
    _onnx_hard_silu,
    "`F.hardswish`",
    "`Mul(x, Div(Clip(Add(x, 3), 0, 6), 6))`",
)

#: every activation string specc accepts (Keras 3 semantics, each verified against Keras)
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(
        "x",
        lambda rank, layout: (),
        lambda b, x, out, layout, rank: b.node("Identity", [x], out),
        "(nothing)",
        "`Identity`",
    ),
    "relu": Activation("max(x, 0)", _fn("F.relu"), _op("Relu"), "`F.relu`", "`Relu`"),
    "sigmoid": Activation(
        "1 / (1 + exp(-x))", _fn("torch.sigmoid"), _op("Sigmoid"), "`torch.sigmoid`", "`Sigmoid`"
    ),
    "tanh": Activation("tanh(x)", _fn("torch.tanh"), _op("Tanh"), "`torch.tanh`", "`Tanh`"),
    "softmax": Activation(
        "exp(x) / Σ exp(x) over the last axis",
        lambda rank, layout: (call("F.softmax", X, dim=_softmax_dim(rank, layout)),),
        lambda b, x, out, layout, rank: b.node("Softmax", [x], out, axis=_onnx_axis(layout, rank)),
        "`F.softmax` on the channel axis",
        "`Softmax` on the channel axis",
    ),
    "leaky_relu": Activation(  # keras.activations.leaky_relu: negative_slope=0.2
        "x if x > 0 else 0.2 · x",
        _fn("F.leaky_relu", negative_slope=0.2),
        _op("LeakyRelu", alpha=0.2),
        "`F.leaky_relu(negative_slope=0.2)`",
        "`LeakyRelu(alpha=0.2)`",
    ),
    "elu": Activation(
        "x if x > 0 else exp(x) - 1",
        _fn("F.elu", alpha=1.0),
        _op("Elu", alpha=1.0),
        "`F.elu(alpha=1.0)`",
        "`Elu(alpha=1.0)`",
    ),
    "selu": Activation(
        "1.0507 · (x if x > 0 else 1.6733 · (exp(x) - 1))",
        _fn("F.selu"),
        _onnx_selu,
        "`F.selu`",
        "`Selu` (Keras's alpha and scale)",
    ),
    "gelu": Activation(  # keras.activations.gelu: approximate=False (the erf form)
        "x · (1 + erf(x / √2)) / 2",
        _fn("F.gelu", approximate="none"),
        _onnx_gelu,
        "`F.gelu(approximate='none')`",
        "`Gelu` (opset >= 20), else `Erf` arithmetic",
    ),
    "swish": _SWISH,
    "silu": _SWISH,
    "softplus": Activation(  # torch's linear regime above 20 differs by < 3e-9
        "log(1 + exp(x))",
        _fn("F.softplus", beta=1.0, threshold=20.0),
        _op("Softplus"),
        "`F.softplus(beta=1.0, threshold=20.0)`",
        "`Softplus`",
    ),
    "relu6": Activation(
        "min(max(x, 0), 6)",
        _fn("F.relu6"),  # not torch.clamp: no gradient at 0 and 6, as TensorFlow's relu6
        _onnx_relu6,
        "`F.relu6`",
        "`Clip(x, 0, 6)`",
    ),
    "hard_sigmoid": Activation(
        "relu6(x + 3) / 6",
        _fn("F.hardsigmoid"),
        _onnx_hard_sigmoid,
        "`F.hardsigmoid`",
        "`Div(Clip(Add(x, 3), 0, 6), 6)`",
    ),
    "hard_silu": _HARD_SILU,
    "hard_swish": _HARD_SILU,
    "mish": Activation(
        "x · tanh(softplus(x))",
        _fn("F.mish"),
        _onnx_mish,
        "`F.mish`",
        "`Mul(x, Tanh(Softplus(x)))`",
    ),
    "log_softmax": Activation(
        "x - log Σ exp(x) over the last axis",
        lambda rank, layout: (call("F.log_softmax", X, dim=_softmax_dim(rank, layout)),),
        lambda b, x, out, layout, rank: b.node(
            "LogSoftmax", [x], out, axis=_onnx_axis(layout, rank)
        ),
        "`F.log_softmax` on the channel axis",
        "`LogSoftmax` on the channel axis",
    ),
    "softsign": Activation(
        "x / (1 + abs(x))", _fn("F.softsign"), _op("Softsign"), "`F.softsign`", "`Softsign`"
    ),
    "exponential": Activation("exp(x)", _fn("torch.exp"), _op("Exp"), "`torch.exp`", "`Exp`"),
}


def activation_steps(name: str | None, rank: int, layout: str) -> tuple[Expr, ...]:
    """Forward steps of a Keras activation string (Keras 3 semantics, verified against torch)."""
    return ACTIVATIONS[name or "linear"].torch(rank, layout)


def onnx_activation(b, name: str | None, x: str, out: str, layout: str, rank: int) -> str:
    """Emit the ONNX nodes of a Keras activation string; returns the output value."""
    return ACTIVATIONS[name or "linear"].onnx(b, x, out, layout, rank)


@dataclass(frozen=True)
class InitCall:
    """How torch initializes one weight exactly as the Keras initializer does."""

    func: str
    kwargs: tuple[tuple[str, float], ...] = field(default=())
    comment: str = ""


def torch_init(initializer, keras_shape: tuple[int, ...]) -> InitCall:
    """How torch draws a weight as the Keras initializer (a name or a mapping) does, with
    Keras's fans (torch's differ for depthwise kernels)."""
    if initializer in ("zeros", "ones"):
        return InitCall(f"nn.init.{initializer}_")
    if initializer == "uniform":
        return InitCall("nn.init.uniform_", (("a", -0.05), ("b", 0.05)), "uniform, as Keras")
    if initializer == "orthogonal":
        return InitCall("nn.init.orthogonal_", (("gain", 1.0),), "orthogonal, as Keras")
    if initializer == "unit_forget_bias":
        return InitCall("KerasLSTM.unit_forget_bias_", (), "LSTM unit_forget_bias, as Keras")
    if isinstance(initializer, str):
        fan_in, fan_out = keras_fans(keras_shape)
        comment = f"{initializer}, Keras fans: in {fan_in}, out {fan_out}"
    else:
        comment = str(initializer)
        if initializer.type == "VarianceScaling":
            fan_in, fan_out = keras_fans(keras_shape)
            comment += f", Keras fans: in {fan_in}, out {fan_out}"
    kind, *args = distribution(initializer, keras_shape)
    if kind == "constant":
        return InitCall("nn.init.constant_", (("val", args[0]),), comment)
    if kind == "uniform":
        return InitCall("nn.init.uniform_", (("a", args[0]), ("b", args[1])), comment)
    if kind == "normal":
        return InitCall("nn.init.normal_", (("mean", args[0]), ("std", args[1])), comment)
    if kind == "orthogonal":
        # torch flattens (out, in, ...) to (out, rest), the transpose of Keras's (rest, out)
        # up to a permutation of rows: the same (Haar) distribution of orthogonal matrices
        return InitCall("nn.init.orthogonal_", (("gain", args[0]),), comment)
    mean, std = args  # Keras draws from a normal truncated at two standard deviations
    return InitCall(
        "nn.init.trunc_normal_",
        (("mean", mean), ("std", std), ("a", mean - 2 * std), ("b", mean + 2 * std)),
        comment,
    )
