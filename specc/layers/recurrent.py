"""Recurrent layers: SimpleRNN, LSTM, GRU, and the Bidirectional wrapper.

Weights are Keras's (kernel (features, gates * units), recurrent_kernel (units, gates *
units), bias), gates in Keras's order: LSTM i, f, c, o; GRU z, r, h. The PyTorch target runs
them with modules the generated file defines (``KerasLSTM`` ...: Keras's layout and single
bias, so one training step equals Keras's; torch's nn.LSTM/nn.GRU carry two biases). ONNX's
``LSTM``/``GRU``/``RNN`` operators want (directions, gates * units, features) in the gate
order i, o, f, c (LSTM) and z, r, h (GRU): those conversions are the named transforms of
each weight declaration (specc.weights.TRANSFORMS). Every one needs only the target's
minimum opset (13).
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import Annotated, ClassVar, Literal, Union, get_args

from pydantic import Field, model_validator

from . import lowering as lw
from .base import Layer, PositiveInt, Regularizer, ShapeError, Weight, fmt_shape

#: the activations every target runs inside a recurrent cell: entries of the one activation
#: table (lowering.ACTIVATIONS) whose ONNX lowering is a single operator, which ONNX's
#: RNN/LSTM/GRU take by name (the PyTorch helper modules call torch.<name>)
RecurrentActivationName = Literal["tanh", "sigmoid", "relu"]
_ONNX_ACTIVATIONS = {
    name: lw.ACTIVATIONS[name].onnx_doc.strip("`") for name in get_args(RecurrentActivationName)
}
assert all(op.isalpha() for op in _ONNX_ACTIVATIONS.values()), _ONNX_ACTIVATIONS
RecurrentInitializer = Literal[
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "zeros",
    "ones",
]

KERAS_SIMPLE_RNN, KERAS_LSTM, KERAS_GRU = "KerasSimpleRNN", "KerasLSTM", "KerasGRU"
lw.HELPER_TEMPLATES.setdefault(KERAS_SIMPLE_RNN, "pytorch/keras_simple_rnn.py.j2")
lw.HELPER_TEMPLATES.setdefault(KERAS_LSTM, "pytorch/keras_lstm.py.j2")
lw.HELPER_TEMPLATES.setdefault(KERAS_GRU, "pytorch/keras_gru.py.j2")

Rate = Annotated[float, Field(ge=0.0, lt=1.0)]


class _Recurrent(Layer):
    """Fields and rules shared by SimpleRNN, LSTM and GRU (Keras's names and defaults)."""

    keras_masking: ClassVar[str] = "use"

    gates: ClassVar[int] = 1
    helper: ClassVar[str] = ""
    onnx_op: ClassVar[str] = ""
    units: PositiveInt
    activation: RecurrentActivationName = "tanh"
    use_bias: bool = True
    kernel_initializer: RecurrentInitializer = "glorot_uniform"
    recurrent_initializer: RecurrentInitializer = "orthogonal"
    bias_initializer: Literal["zeros", "ones"] = "zeros"
    kernel_regularizer: Regularizer = None
    recurrent_regularizer: Regularizer = None
    bias_regularizer: Regularizer = None
    regularized: ClassVar[dict[str, str]] = {
        "kernel": "kernel_regularizer",
        "recurrent_kernel": "recurrent_regularizer",
        "bias": "bias_regularizer",
    }
    dropout: Rate = 0.0
    recurrent_dropout: Rate = 0.0
    return_sequences: bool = False
    go_backwards: bool = False

    def output_shape(self, shapes):
        shape = shapes[0]
        if len(shape) != 2:
            raise ShapeError(
                f"expects a rank-2 input (steps, features), got {fmt_shape(shape)}",
                hint="add a Reshape layer before it",
            )
        return (shape[0], self.units) if self.return_sequences else (self.units,)

    # -- weights ------------------------------------------------------------------------
    kernel_transform: ClassVar[str] = "rnn_onnx"
    bias_transform: ClassVar[str] = "rnn_bias_onnx"

    def _bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def _bias_initializer(self) -> str:
        return self.bias_initializer

    def _bias_layout(self) -> str:
        if len(self._bias_shape()) == 2:
            return "(2, 3 * units): input and recurrent biases"
        return f"({self.gates} * units,)" if self.gates > 1 else "(units,)"

    def weights_for(self, features: int, prefix: str = "", module: str = ""):
        """The cell's weights; ``prefix`` / ``module`` for a Bidirectional direction."""
        n = self.gates * self.units
        kernel = (("onnx", self.kernel_transform),)
        out = [
            Weight(
                prefix + "kernel",
                (features, n),
                self.kernel_initializer,
                layout=f"(features, {self.gates} * units)"
                if self.gates > 1
                else "(features, units)",
                transforms=kernel,
                torch_attr="kernel",
                torch_module=module,
            ),
            Weight(
                prefix + "recurrent_kernel",
                (self.units, n),
                self.recurrent_initializer,
                layout=f"(units, {self.gates} * units)" if self.gates > 1 else "(units, units)",
                transforms=kernel,
                torch_attr="recurrent_kernel",
                torch_module=module,
            ),
        ]
        if self.use_bias:
            out.append(
                Weight(
                    prefix + "bias",
                    self._bias_shape(),
                    self._bias_initializer(),
                    layout=self._bias_layout(),
                    transforms=(("onnx", self.bias_transform),),
                    torch_attr="bias",
                    torch_module=module,
                )
            )
        if prefix:
            return tuple(_keras_named(w, prefix) for w in out)
        return tuple(out)

    def weights(self, shapes):
        return self.weights_for(shapes[0][-1])

    def count_macs(self, shapes, out):
        steps, features = shapes[0]
        return steps * (features + self.units) * self.gates * self.units

    def keras_args(self):
        return {
            "units": self.units,
            "activation": self.activation,
            **self._extra_activation(),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "recurrent_initializer": self.recurrent_initializer,
            "bias_initializer": self.bias_initializer,
            **self.keras_regularizer_args(),
            **self._extra_args(),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
        }

    def _extra_activation(self) -> dict:
        return {}

    def _extra_args(self) -> dict:
        return {}

    # -- PyTorch --------------------------------------------------------------------------
    torch_layout: ClassVar[str] = lw.CL

    def torch_module(self, features: int, go_backwards: bool, suffix: str = ""):
        args = (
            ("input_size", features),
            ("units", self.units),
            ("activation", self.activation),
            *self._extra_activation().items(),
            ("use_bias", self.use_bias),
            *self._extra_args_torch(),
            ("return_sequences", self.return_sequences),
            ("go_backwards", go_backwards),
            ("dropout", self.dropout),
            ("recurrent_dropout", self.recurrent_dropout),
        )
        return lw.TorchModule(self.helper, args, suffix)

    def _extra_args_torch(self) -> tuple:
        return ()

    def torch_lowering(self, shapes, out, layout):
        module = self.torch_module(shapes[0][-1], self.go_backwards)
        return lw.TorchLowering(modules=(module,), steps=(lw.call(lw.SELF, lw.X),))

    def passes_mask(self) -> bool:
        return self.return_sequences

    def torch_mask_steps(self, lowering, masks, out):
        # masked steps keep the state; their output repeats the last one, as Keras
        return (lw.call(lw.SELF, lw.X, masks[0]),)

    # -- ONNX -----------------------------------------------------------------------------
    onnx_layout: ClassVar[str] = lw.CL

    def onnx_attrs(self) -> dict:
        return {"activations": [_ONNX_ACTIVATIONS[self.activation]]}

    def onnx_lowering(self, b, layer, out, layout):
        x = b.get(layer.inputs[0], lw.CL)
        steps = b.shape_of(layer.inputs[0])[0]
        x = b.node("Transpose", [x], b.tmp(layer, "time_major"), perm=[1, 0, 2])
        if self.go_backwards:
            x = _reverse_time(b, layer, x)
        params = [b.weight(layer, "kernel"), b.weight(layer, "recurrent_kernel")]
        if self.use_bias:
            params.append(b.weight(layer, "bias"))
        y, y_h = _recurrent_node(b, layer, self, x, params, "forward", self.return_sequences)
        if self.return_sequences:
            y = b.node(
                "Squeeze", [y, b.const(f"{layer.name}.axis1", [1], "int64")], b.tmp(layer, "steps")
            )
            b.node("Transpose", [y], out, perm=[1, 0, 2])
        else:
            b.node("Squeeze", [y_h, b.const(f"{layer.name}.axis0", [0], "int64")], out)
        del steps


def _keras_named(weight: Weight, prefix: str) -> Weight:
    from dataclasses import replace

    return replace(weight, keras_name=weight.name[len(prefix) :])


def _reverse_time(b, layer, x: str) -> str:
    """x[::-1] along the time-major axis 0 (Slice with step -1)."""
    name = layer.name
    return b.node(
        "Slice",
        [
            x,
            b.const(f"{name}.rev_starts", [-1], "int64"),
            b.const(f"{name}.rev_ends", [-(2**63)], "int64"),
            b.const(f"{name}.rev_axes", [0], "int64"),
            b.const(f"{name}.rev_steps", [-1], "int64"),
        ],
        b.tmp(layer, "reversed"),
    )


def _recurrent_node(b, layer, cell, x, params, direction, sequences) -> tuple[str, str]:
    """One ONNX RNN/LSTM/GRU node; returns (Y, Y_h) value names ('' when unused)."""
    from onnx import helper

    y = b.tmp(layer, "y") if sequences else ""
    y_h = b.tmp(layer, "y_h")
    inputs = list(params)
    if not cell.use_bias:
        inputs.append("")
    name = b.tmp(layer, cell.onnx_op.lower())
    b.nodes.append(
        helper.make_node(
            cell.onnx_op,
            [x, *inputs],
            [y, y_h],
            name=name,
            hidden_size=cell.units,
            direction=direction,
            **_per_direction(cell.onnx_attrs(), direction),
        )
    )
    return y, y_h


def _per_direction(attrs: dict, direction: str) -> dict:
    """ONNX lists the activations of every direction."""
    if direction == "bidirectional":
        return {**attrs, "activations": attrs["activations"] * 2}
    return attrs


class SimpleRNN(_Recurrent):
    """Fully connected recurrence ``h = activation(x·W + h·U + b)`` (keras.layers.SimpleRNN)."""

    type: Literal["SimpleRNN"]
    keras_class: ClassVar[str] = "SimpleRNN"
    helper: ClassVar[str] = KERAS_SIMPLE_RNN
    onnx_op: ClassVar[str] = "RNN"
    torch_doc: ClassVar[str] = (
        "`KerasSimpleRNN` (emitted in the file): Keras's layout and single bias; dropout and "
        "recurrent_dropout masks drawn once per sequence, as Keras"
    )
    onnx_doc: ClassVar[str] = (
        "`RNN` (time-major, `Slice` step -1 for go_backwards); W/R transposed, B = [b, 0]"
    )
    doc_example: ClassVar[tuple] = ({"units": 8}, ((10, 4),))


class LSTM(_Recurrent):
    """Long short-term memory (keras.layers.LSTM); gates i, f, c, o."""

    type: Literal["LSTM"]
    keras_class: ClassVar[str] = "LSTM"
    gates: ClassVar[int] = 4
    helper: ClassVar[str] = KERAS_LSTM
    onnx_op: ClassVar[str] = "LSTM"
    kernel_transform: ClassVar[str] = "lstm_onnx"
    bias_transform: ClassVar[str] = "lstm_bias_onnx"
    torch_doc: ClassVar[str] = (
        "`KerasLSTM` (emitted in the file): Keras's layout, gate order and single bias; "
        "dropout as Keras; recurrent_dropout with per-gate masks (Keras's implementation 1)"
    )
    onnx_doc: ClassVar[str] = (
        "`LSTM` (time-major, `Slice` step -1 for go_backwards); gates reordered i, f, c, o → "
        "i, o, f, c, B = [b, 0]"
    )
    doc_example: ClassVar[tuple] = ({"units": 8}, ((10, 4),))
    recurrent_activation: RecurrentActivationName = "sigmoid"
    unit_forget_bias: bool = True

    def _bias_initializer(self) -> str:
        if self.unit_forget_bias and self.bias_initializer == "zeros":
            return "unit_forget_bias"
        return self.bias_initializer

    def _extra_activation(self) -> dict:
        return {"recurrent_activation": self.recurrent_activation}

    def _extra_args(self) -> dict:
        return {"unit_forget_bias": self.unit_forget_bias}

    def onnx_attrs(self) -> dict:
        g, h = _ONNX_ACTIVATIONS[self.recurrent_activation], _ONNX_ACTIVATIONS[self.activation]
        return {"activations": [g, h, h]}


class GRU(_Recurrent):
    """Gated recurrent unit (keras.layers.GRU); gates z, r, h; ``reset_after`` as Keras."""

    type: Literal["GRU"]
    keras_class: ClassVar[str] = "GRU"
    gates: ClassVar[int] = 3
    helper: ClassVar[str] = KERAS_GRU
    onnx_op: ClassVar[str] = "GRU"
    bias_transform: ClassVar[str] = "gru_bias_onnx"
    torch_doc: ClassVar[str] = (
        "`KerasGRU` (emitted in the file): Keras's layout, gate order and biases, either "
        "`reset_after`; dropout as Keras; recurrent_dropout with per-gate masks (Keras's "
        "implementation 1)"
    )
    onnx_doc: ClassVar[str] = (
        "`GRU` (time-major; `linear_before_reset` = reset_after; gates z, r, h as Keras); "
        "B = both biases (reset_after) or [b, 0]"
    )
    doc_example: ClassVar[tuple] = ({"units": 8}, ((10, 4),))
    recurrent_activation: RecurrentActivationName = "sigmoid"
    reset_after: bool = True

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _extra_activation(self) -> dict:
        return {"recurrent_activation": self.recurrent_activation}

    def _extra_args(self) -> dict:
        return {"reset_after": self.reset_after}

    def _extra_args_torch(self) -> tuple:
        return (("reset_after", self.reset_after),)

    def onnx_attrs(self) -> dict:
        g, h = _ONNX_ACTIVATIONS[self.recurrent_activation], _ONNX_ACTIVATIONS[self.activation]
        return {"activations": [g, h], "linear_before_reset": int(self.reset_after)}


RecurrentLayer = Annotated[Union[SimpleRNN, LSTM, GRU], Field(discriminator="type")]  # noqa: UP007


class Bidirectional(Layer):
    """Runs a recurrent layer both ways and merges the outputs (keras.layers.Bidirectional).

    ``layer`` is the wrapped layer as a mapping, e.g.
    ``{type: LSTM, units: 32}``. With return_sequences the backward outputs are put back in
    input order before merging, as Keras does."""

    keras_masking: ClassVar[str] = "use"

    type: Literal["Bidirectional"]
    keras_class: ClassVar[str] = "Bidirectional"
    torch_doc: ClassVar[str] = (
        "two `KerasLSTM`/`KerasGRU`/`KerasSimpleRNN` modules (the backward one with "
        "go_backwards), outputs merged as Keras"
    )
    onnx_doc: ClassVar[str] = (
        "one `LSTM`/`GRU`/`RNN` node with `direction: bidirectional` (W, R, B of both "
        "directions concatenated), the two directions merged"
    )
    doc_example: ClassVar[tuple] = ({"layer": {"type": "LSTM", "units": 8}}, ((10, 4),))
    layer: RecurrentLayer
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"

    @model_validator(mode="after")
    def _plain_inner(self):
        if self.layer.name is not None or self.layer.inputs is not None:
            raise ValueError("the wrapped layer takes no name or inputs (the wrapper has them)")
        if self.layer.go_backwards:
            raise ValueError("the wrapped layer must not set go_backwards (the wrapper runs both)")
        return self

    def output_shape(self, shapes):
        out = self.layer.output_shape(shapes)
        if self.merge_mode == "concat":
            return (*out[:-1], 2 * out[-1])
        return out

    def weights(self, shapes):
        features = shapes[0][-1]
        return (
            *self.layer.weights_for(features, "forward_", "forward"),
            *self.layer.weights_for(features, "backward_", "backward"),
        )

    def count_macs(self, shapes, out):
        return 2 * self.layer.count_macs(shapes, out)

    def regularizers(self):
        inner = self.layer.regularizers()
        return {f"{d}_{name}": f for d in ("forward", "backward") for name, f in inner.items()}

    def keras_args(self):
        inner = lw.call(f"keras.layers.{self.layer.keras_class}", **self.layer.keras_args())
        return {"layer": inner, "merge_mode": self.merge_mode}

    torch_layout: ClassVar[str] = lw.CL

    def torch_lowering(self, shapes, out, layout):
        features = shapes[0][-1]
        forward = self.layer.torch_module(features, False, "forward")
        backward = self.layer.torch_module(features, True, "backward")
        return lw.TorchLowering(modules=(forward, backward), steps=(self._merged(),))

    def _merged(self, *mask, **options):
        """Both directions (called with ``mask``/``options`` when given), merged as Keras."""
        y = lw.call(lw.Module("forward"), lw.X, *mask, **options)
        y_rev = lw.call(lw.Module("backward"), lw.X, *mask, **options)
        if self.layer.return_sequences:  # back in input order, as Keras
            y_rev = lw.call("torch.flip", y_rev, dims=[1])
        if self.merge_mode == "concat":
            return lw.call("torch.cat", lw.ListOf((y, y_rev)), dim=-1)
        if self.merge_mode == "sum":
            return lw.BinOp("+", (y, y_rev))
        if self.merge_mode == "mul":
            return lw.BinOp("*", (y, y_rev))
        return lw.BinOp("/", (lw.BinOp("+", (y, y_rev)), lw.Lit(2)))

    def passes_mask(self) -> bool:
        return self.layer.return_sequences

    def torch_mask_steps(self, lowering, masks, out):
        # Keras's Bidirectional gives both directions zero_output_for_mask =
        # return_sequences: masked steps output 0 rather than repeating the last output
        return (self._merged(masks[0], zero_output=self.layer.return_sequences),)

    onnx_layout: ClassVar[str] = lw.CL

    def onnx_lowering(self, b, layer, out, layout):
        cell = self.layer
        name = layer.name
        x = b.get(layer.inputs[0], lw.CL)
        x = b.node("Transpose", [x], b.tmp(layer, "time_major"), perm=[1, 0, 2])
        kinds = ["kernel", "recurrent_kernel"] + (["bias"] if cell.use_bias else [])
        params = []
        for kind in kinds:
            both = [b.weight(layer, f"forward_{kind}"), b.weight(layer, f"backward_{kind}")]
            params.append(b.node("Concat", both, b.tmp(layer, kind), axis=0))
        sequences = cell.return_sequences
        y, y_h = _recurrent_node(b, layer, cell, x, params, "bidirectional", sequences)
        # forward / backward: Y (steps, 2, batch, units) or Y_h (2, batch, units)
        source, axis = (y, 1) if sequences else (y_h, 0)
        halves = []
        for k, which in enumerate(("forward", "backward")):
            index = b.const(f"{name}.{which}_index", k, "int64")
            halves.append(b.node("Gather", [source, index], b.tmp(layer, which), axis=axis))
        merged = out if not sequences else b.tmp(layer, "merged")
        if self.merge_mode == "concat":
            b.node("Concat", halves, merged, axis=-1)
        elif self.merge_mode == "sum":
            b.node("Add", halves, merged)
        elif self.merge_mode == "mul":
            b.node("Mul", halves, merged)
        else:
            total = b.node("Add", halves, b.tmp(layer, "sum"))
            b.node("Div", [total, b.const(f"{name}.two", 2.0)], merged)
        if sequences:  # (steps, batch, features) -> (batch, steps, features)
            b.node("Transpose", [merged], out, perm=[1, 0, 2])


LAYERS = (SimpleRNN, LSTM, GRU, Bidirectional)
