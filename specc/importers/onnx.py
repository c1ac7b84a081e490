"""Import an ONNX graph: the patterns exporters write (Conv/Gemm/MatMul+Add, BatchNormalization,
pooling, activations, Flatten/Reshape, merges, Transpose pairs) become specc layers, and the
channels-first graph becomes a channels-last spec with its weights converted.

Layouts. Every value is tracked as channels-first (``cf``: N, C, ...) or channels-last
(``cl``); a rank-3/4 graph input read by a convolution or pooling is channels-first (what
PyTorch exports), one that goes through a Transpose to channels-first first is channels-last
(what ``specc compile --target onnx`` writes). Transposes that only change the layout vanish.
A Flatten of a channels-first feature map flattens in (C, H, W) order where the spec flattens
in (H, W, C) order: the rows of the Dense reading it are permuted to match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ImportRefused, ImportResult

CF, CL = "cf", "cl"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: ONNX element-wise activations -> (specc layer type, fields)
ACTIVATIONS = {
    "Relu": ("ReLU", {}),
    "Sigmoid": ("Activation", {"activation": "sigmoid"}),
    "Tanh": ("Activation", {"activation": "tanh"}),
    "Softplus": ("Activation", {"activation": "softplus"}),
    "Selu": ("Activation", {"activation": "selu"}),
}


def _table_activations() -> dict:
    """The single-operator activations of specc's one activation table (Softsign, Exp, ...)
    that have no layer of their own here."""
    from ..layers.lowering import ACTIVATIONS as TABLE

    out = {}
    for name, act in TABLE.items():
        op = act.onnx_doc.strip("`")
        if op.isalpha() and op not in out and name != "linear":
            out[op] = ("Activation", {"activation": name})
    return out


ACTIVATIONS = {**_table_activations(), **ACTIVATIONS}
MERGES = {"Add": "Add", "Sub": "Subtract", "Mul": "Multiply", "Max": "Maximum", "Min": "Minimum",
          "Mean": "Average", "Sum": "Add"}  # fmt: skip
SILENT = ("Identity", "Dropout")
#: every operator some pattern here reads (others are unsupported wherever they appear)
KNOWN_OPS = {
    *ACTIVATIONS, *MERGES, *SILENT, "Transpose", "Conv", "ConvTranspose", "MaxPool",
    "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "LeakyRelu",
    "Elu", "Clip", "Softmax", "Flatten", "Reshape", "Gemm", "MatMul", "Concat", "Pad",
    "LayerNormalization", "Expand", "Div", "Erf",
    # read by the multi-node patterns (onnx_patterns)
    "Gather", "Cast", "Squeeze", "Slice", "Einsum", "IsNaN", "Where", "RNN", "LSTM", "GRU",
    "Unsqueeze", "ReduceSum", "LogSoftmax", "HardSigmoid", "HardSwish",
}  # fmt: skip
#: layers with an ``activation`` field, into which a following activation layer folds
FUSABLE = ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense")
WINDOW_FIELDS = ("kernel_size", "strides", "dilation_rate", "pool_size", "size")


@dataclass
class Value:
    """A graph value as the spec sees it: the spec tensor holding it, layout and shape
    (the spec's channels-last shape without the batch), and a pending Flatten permutation."""

    tensor: str
    layout: str
    shape: tuple[int, ...]
    flatten_from: tuple[int, ...] | None = None  # (C, H, W...) a CF Flatten came from


@dataclass
class _State:
    graph: object
    inits: dict[str, np.ndarray]
    values: dict[str, Value] = field(default_factory=dict)
    layers: list[dict] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    consumers: dict[str, int] = field(default_factory=dict)
    producers: dict[str, object] = field(default_factory=dict)
    input_layouts: dict[str, str] = field(default_factory=dict)
    output_layouts: dict[str, str] = field(default_factory=dict)
    skip: set = field(default_factory=set)
    shape_only: set = field(default_factory=set)  # values computed from input shapes only
    kept: set = field(default_factory=set)  # names taken over from the graph as they were
    reserved: set = field(default_factory=set)  # valid names the graph's values will claim
    folded: dict = field(default_factory=dict)  # constant value -> the node computing it
    opsets: list = field(default_factory=list)  # the model's opset imports (for folding)
    notes: list = field(default_factory=list)


def nid(node) -> tuple:
    """A node's identity (its outputs and name): protobuf hands out a new Python object for
    the same node on each access, so ``id()`` is not one."""
    return (*node.output, node.name)


def _load(path: Path):
    try:
        import onnx
    except ImportError:
        from ..extras import message

        raise ImportRefused([message("onnx", "importing ONNX")], 3) from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line
        raise ImportRefused([f"{path}: not a readable ONNX model: {exc}"], 2) from None
    return proto


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _dims(value_info) -> tuple:
    return tuple(
        d.dim_value if d.HasField("dim_value") else None
        for d in value_info.type.tensor_type.shape.dim
    )


def _cl_shape(shape: tuple, layout: str) -> tuple:
    """(N, C, H, W) -> (H, W, C) for cf; drop the batch for cl."""
    body = tuple(shape[1:])
    if layout == CF and len(body) >= 2:
        return (*body[1:], body[0])
    return body


def _name(state: _State, *candidates: str) -> str:
    """The value's own name when it is a valid layer name (specc's graphs round-trip), else
    one made from the node name: ``/layer1/conv1/Conv`` -> ``layer1_conv1`` (the module
    path PyTorch's exporter writes), ``/Relu_1`` -> ``relu_1``."""
    for raw in candidates:
        if raw and _NAME.match(raw) and raw not in state.names:
            state.reserved.discard(raw)
            state.names.add(raw)
            state.kept.add(raw)
            return raw
    first = candidates[0] or ""
    if first.endswith("/cf"):  # specc's '<layer>/cf' transposed to the output '<layer>'
        layer = first[: -len("/cf")]
        back = state.producers.get(layer)
        if back is not None and back.op_type == "Transpose" and list(back.input) == [first]:
            if _NAME.match(layer) and layer not in state.names:
                state.reserved.discard(layer)
                state.names.add(layer)
                state.kept.add(layer)
                return layer
    raw = next((c for c in candidates[1:] if c), "") or next((c for c in candidates if c), "")
    if "/" in candidates[0] and not candidates[0].startswith("/"):
        raw = candidates[0]  # specc's own '<layer>/<what>' values
    parts = [p for p in raw.split("/") if p]
    if len(parts) > 1:
        parts = parts[:-1]  # the module path, without the operator
    base = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts)).strip("_")
    base = re.sub(r"_output_\d+$", "", base)
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower() if len(parts) == 1 else base
    base = base if base[:1].isalpha() else f"l_{base}"
    base = base[:56] or "layer"
    name, k = base, 1
    while name in state.names or name in state.reserved:
        k += 1
        name = f"{base}_{k}"
    state.names.add(name)
    return name


def _add(
    state: _State, node, entry: dict, inputs: list[Value], out_layout: str, shape, weights=(),
    named_by=None,
):  # fmt: skip
    """Append a layer; its output value is the node's first output (its name, else the name
    of ``named_by`` or of the node)."""
    name = _name(state, node.output[0], (named_by or node).name)
    entry = {"type": entry.pop("type"), "name": name, **entry}
    entry["inputs"] = [v.tensor for v in inputs]
    state.layers.append(entry)
    for param, array in weights:
        # np.array keeps a 0-d weight (a count) 0-d; np.ascontiguousarray makes it 1-d
        state.weights[f"{name}/{param}"] = np.array(array, np.float32, order="C")
    state.values[node.output[0]] = Value(name, out_layout, tuple(shape))
    return name


def _window_padding(pads, sizes, kernel, strides, dilations) -> str | None:
    """'valid', 'same' (TF's, odd pixel at the end), or None when neither."""
    rank = len(sizes)
    pads = list(pads or [0] * (2 * rank))
    if not any(pads):
        return "valid"
    from ..layers.lowering import onnx_pads, same_pads

    return "same" if pads == onnx_pads(same_pads(sizes, kernel, strides, dilations)) else None


def _conv(state: _State, node, x: Value):
    a = _attrs(node)
    w = state.inits.get(node.input[1])
    if w is None:
        state.problems.append(f"node '{node.name}' (Conv): the kernel is not an initializer")
        return
    bias = state.inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    rank = w.ndim - 2
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    strides = tuple(a.get("strides", [1] * rank))
    dilations = tuple(a.get("dilations", [1] * rank))
    group = a.get("group", 1)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        state.problems.append(f"node '{node.name}' (Conv): auto_pad is not supported")
        return
    sizes = x.shape[:-1]
    cin = x.shape[-1]
    padding = _window_padding(a.get("pads"), sizes, kernel, strides, dilations)
    if padding is None and rank == 1 and list(a["pads"]) == [(kernel[0] - 1) * dilations[0], 0]:
        padding = "causal"  # every pad before the sequence: Conv1D's causal padding
    if padding is None:
        pads = list(a["pads"])
        if rank != 2:
            state.problems.append(f"node '{node.name}' (Conv): explicit 1-D pads {pads}")
            return
        x = _zero_pad(state, node, x, pads)
        padding = "valid"
        sizes = x.shape[:-1]
    out_channels = w.shape[0]
    entry: dict = {"padding": padding} if padding != "valid" else {}
    if strides != (1,) * rank:
        entry["strides"] = list(strides)
    if dilations != (1,) * rank:
        entry["dilation_rate"] = list(dilations)
    if bias is None:
        entry["use_bias"] = False
    if group > 1 and group == cin and rank == 2:
        entry = {"type": "DepthwiseConv2D", "kernel_size": list(kernel), **entry}
        if out_channels // cin != 1:
            entry["depth_multiplier"] = out_channels // cin
        declared_name = "kernel"
    else:
        entry = {
            "type": "Conv2D" if rank == 2 else "Conv1D",
            "filters": int(out_channels),
            "kernel_size": list(kernel),
            **entry,
        }
        if group > 1:
            entry["groups"] = group
        declared_name = "kernel"
    out_sizes = _conv_sizes(
        sizes, kernel, strides, dilations, "same" if padding == "causal" else padding
    )
    spec_layer = _declared(entry, [x.shape])
    kernel_w = _from_onnx(spec_layer, declared_name, w)
    weights = [(declared_name, kernel_w)] + ([("bias", bias)] if bias is not None else [])
    _add(state, node, entry, [x], CF, (*out_sizes, int(out_channels)), weights)


def _window_entry(kind: str, head: dict, kernel, strides, dilations, padding: str) -> dict:
    """A windowed layer's entry: only what differs from Keras's defaults."""
    rank = len(kernel)
    entry: dict = {"type": kind, **head, "kernel_size": list(kernel)}
    if padding == "same":
        entry["padding"] = "same"
    if tuple(strides) != (1,) * rank:
        entry["strides"] = list(strides)
    if tuple(dilations) != (1,) * rank:
        entry["dilation_rate"] = list(dilations)
    return entry


def _separable(state: _State, node, x: Value) -> bool:
    """A depthwise Conv without bias whose only reader is a 1x1 Conv: SeparableConv2D."""
    a = _attrs(node)
    w = _const(state, node, 1)
    cin = x.shape[-1]
    if (
        w is None
        or w.ndim != 4
        or a.get("group", 1) != cin
        or cin == 1
        or _const(state, node, 2) is not None
    ):
        return False
    follow = _chain(state, node, ["Conv"])
    if follow is None:
        return False
    b = _attrs(follow[0])
    pw = _const(state, follow[0], 1)
    ones = [1, 1]
    if pw is None or list(pw.shape[2:]) != ones or b.get("group", 1) != 1:
        return False
    if list(b.get("strides", ones)) != ones or any(b.get("pads", [0] * 4)):
        return False
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    strides = tuple(a.get("strides", ones))
    dilations = tuple(a.get("dilations", ones))
    padding = _window_padding(a.get("pads"), x.shape[:-1], kernel, strides, dilations)
    if padding is None:
        return False
    head = {"filters": int(pw.shape[0])}
    entry = _window_entry("SeparableConv2D", head, kernel, strides, dilations, padding)
    if w.shape[0] // cin != 1:
        entry["depth_multiplier"] = w.shape[0] // cin
    bias = _const(state, follow[0], 2)
    if bias is None:
        entry["use_bias"] = False
    declared = _declared(entry, [x.shape])
    weights = [
        ("depthwise_kernel", _from_onnx(declared, "depthwise_kernel", w)),
        ("pointwise_kernel", _from_onnx(declared, "pointwise_kernel", pw)),
    ] + ([("bias", bias)] if bias is not None else [])
    out = declared[0].output_shape([x.shape])
    _add(state, follow[0], entry, [x], CF, out, weights)
    state.skip.add(nid(follow[0]))
    return True


def _conv_sizes(sizes, kernel, strides, dilations, padding):
    from ..layers.base import conv_out

    return tuple(
        conv_out(s, k, st, d, padding) for s, k, st, d in zip(sizes, kernel, strides, dilations)
    )


def _declared(entry: dict, shapes):
    """The specc layer for ``entry`` (to convert weights through its declaration)."""
    from ..layers import LAYER_TYPES

    fields = {k: v for k, v in entry.items() if k not in ("name", "inputs")}
    layer = LAYER_TYPES[entry["type"]].model_validate(fields)
    return layer, {w.name: w for w in layer.weights(list(shapes))}


def _from_onnx(declared, name: str, array: np.ndarray) -> np.ndarray:
    from ..weights import from_target

    _, weights = declared
    return from_target(np.asarray(array, np.float32), weights[name], "onnx")


def _zero_pad(state: _State, node, x: Value, pads: list[int], own: bool = False) -> Value:
    """A ZeroPadding2D layer: the node's own output (a Pad node) or before it (a Conv)."""
    top, left, bottom, right = pads[0], pads[1], pads[2], pads[3]
    if own:
        name = _name(state, node.output[0], node.name)
    else:
        name = _name(state, f"{node.output[0]}_pad", f"{node.name}_pad")
    state.layers.append(
        {"type": "ZeroPadding2D", "name": name, "padding": [[top, bottom], [left, right]],
         "inputs": [x.tensor]}
    )  # fmt: skip
    h, w, c = x.shape
    return Value(name, CF, (h + top + bottom, w + left + right, c))


def _pool(state: _State, node, x: Value):
    a = _attrs(node)
    kernel = tuple(a["kernel_shape"])
    rank = len(kernel)
    strides = tuple(a.get("strides", [1] * rank))
    if a.get("ceil_mode", 0):
        state.problems.append(f"node '{node.name}' ({node.op_type}): ceil_mode=1")
        return
    padding = _window_padding(a.get("pads"), x.shape[:-1], kernel, strides, (1,) * rank)
    if (
        node.op_type == "AveragePool"
        and padding == "same"
        and not a.get("count_include_pad", 0) == 0
    ):
        padding = None  # padding counted in the average: TF never does
    if padding is None:
        state.problems.append(
            f"node '{node.name}' ({node.op_type}): pads {list(a.get('pads', []))} are neither "
            "'valid' nor TF's 'same'"
        )
        return
    kind = ("MaxPooling" if node.op_type == "MaxPool" else "AveragePooling") + f"{rank}D"
    entry: dict = {"type": kind, "pool_size": list(kernel)}
    if strides != kernel:
        entry["strides"] = list(strides)
    if padding == "same":
        entry["padding"] = "same"
    out = _conv_sizes(x.shape[:-1], kernel, strides, (1,) * rank, padding)
    _add(state, node, entry, [x], CF, (*out, x.shape[-1]))


def _dense(state: _State, node, x: Value, w: np.ndarray, bias, trans_b: bool):
    kernel = w.T if trans_b else w  # Keras's (in, out)
    if x.flatten_from is not None:  # rows in (C, H, W...) order -> the spec's (H, W..., C)
        c, *spatial = x.flatten_from
        order = np.arange(kernel.shape[0]).reshape(c, *spatial)
        order = np.moveaxis(order, 0, -1).reshape(-1)
        kernel = kernel[order]
    entry: dict = {"type": "Dense", "units": int(kernel.shape[1])}
    if bias is None:
        entry["use_bias"] = False
    weights = [("kernel", kernel)] + ([("bias", bias)] if bias is not None else [])
    _add(state, node, entry, [x], CL, (*x.shape[:-1], int(kernel.shape[1])), weights)


def _convert(state: _State, node) -> None:
    op = node.op_type
    ins = [state.values.get(i) for i in node.input if i and i not in state.inits]
    if any(v is None for v in ins):
        shaped = [i for i in node.input if i in state.shape_only]
        if shaped:
            state.problems.append(
                f"node '{node.name}' ({op}): reads '{shaped[0]}', computed from a tensor's "
                "shape and different for each batch size"
            )
            return
        state.problems.append(f"node '{node.name}' ({op}): reads a value specc lost track of")
        return
    a = _attrs(node)
    x = ins[0] if ins else None
    from . import onnx_patterns

    if onnx_patterns.convert(state, node, ins, a):
        return
    if x is None:  # every input is a constant: nothing a layer reads
        if op in KNOWN_OPS:
            state.problems.append(f"node '{node.name}' ({op}): computes from constants only")
        else:
            state.problems.append(
                f"ONNX operator {op} (node '{node.name}') is not supported by specc"
            )
        return
    if op in SILENT:
        state.values[node.output[0]] = x
        return
    if op == "Transpose":
        perm = list(a.get("perm", []))
        rank = len(x.shape) + 1
        to_cf = [0, rank - 1, *range(1, rank - 1)]
        to_cl = [0, *range(2, rank), 1]
        if x.layout == CL and perm == to_cf:
            state.values[node.output[0]] = Value(x.tensor, CF, x.shape)
        elif x.layout == CF and perm == to_cl:
            state.values[node.output[0]] = Value(x.tensor, CL, x.shape)
        else:
            state.problems.append(f"node '{node.name}' (Transpose {perm}): not a layout change")
        return
    channels_first = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
                      "GlobalMaxPool", "BatchNormalization")  # fmt: skip
    if op in channels_first and len(x.shape) >= 2 and x.layout != CF:
        state.problems.append(
            f"node '{node.name}' ({op}): reads a channels-last tensor as channels-first (a "
            "transposition of its axes, which specc does not import)"
        )
        return
    if op in ("MatMul", "Gemm") and len(x.shape) >= 2 and x.layout != CL:
        state.problems.append(
            f"node '{node.name}' ({op}): multiplies a channels-first tensor along its last "
            "axis (a transposition of its axes, which specc does not import)"
        )
        return
    if op == "Conv" and _separable(state, node, x):
        return
    if op == "Conv":
        _conv(state, node, x)
        return
    if op == "ConvTranspose":
        _conv_transpose(state, node, x)
        return
    if op in ("MaxPool", "AveragePool"):
        _pool(state, node, x)
        return
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        kind = "GlobalAveragePooling" if op == "GlobalAveragePool" else "GlobalMaxPooling"
        kind += f"{len(x.shape) - 1}D"
        flatten = _chain(state, node, ["Flatten"])
        if flatten is not None and _attrs(flatten[0]).get("axis", 1) == 1:
            state.skip.add(nid(flatten[0]))  # pooled then flattened: keepdims false
            _add(state, flatten[0], {"type": kind}, [x], CL, (x.shape[-1],))
            return
        _add(state, node, {"type": kind, "keepdims": True}, [x], x.layout,
             (*[1] * (len(x.shape) - 1), x.shape[-1]))  # fmt: skip
        return
    if op == "BatchNormalization":
        scale, bias, mean, var = (state.inits.get(i) for i in node.input[1:5])
        if any(v is None for v in (scale, bias, mean, var)):
            state.problems.append(f"node '{node.name}' (BatchNormalization): non-constant inputs")
            return
        entry = {"type": "BatchNormalization", "epsilon": _f32(a.get("epsilon", 1e-5)),
                 "momentum": _f32(a.get("momentum", 0.9))}  # fmt: skip
        weights = [("moving_mean", mean), ("moving_variance", var)]
        fixed = _fixed_affine(state, node, scale, bias)
        entry.update(fixed)
        if "scale" not in fixed:
            weights.insert(0, ("gamma", scale))
        if "center" not in fixed:
            weights.insert(1 if "scale" not in fixed else 0, ("beta", bias))
        _add(state, node, entry, [x], x.layout, x.shape, weights)
        return
    if op in ACTIVATIONS:
        kind, fields = ACTIVATIONS[op]
        _add(state, node, {"type": kind, **fields}, [x], x.layout, x.shape)
        return
    if op == "LeakyRelu":
        slope = round(float(a.get("alpha", 0.01)), 7)
        _add(state, node, {"type": "LeakyReLU", "negative_slope": slope}, [x], x.layout, x.shape)
        return
    if op == "Elu" and float(a.get("alpha", 1.0)) == 1.0:
        _add(state, node, {"type": "Activation", "activation": "elu"}, [x], x.layout, x.shape)
        return
    if op == "Clip":
        bounds = [a.get("min"), a.get("max")]  # opset < 11: attributes; then inputs
        for k, ref in enumerate(node.input[1:3]):
            if ref:
                bounds[k] = float(state.inits[ref]) if ref in state.inits else "?"
        low, high = bounds
        if low == 0.0 and isinstance(high, float):
            _add(state, node, {"type": "ReLU", "max_value": high}, [x], x.layout, x.shape)
            return
        state.problems.append(f"node '{node.name}' (Clip {low}, {high}): only Clip(0, max) (ReLU)")
        return
    if op in ("Softmax", "LogSoftmax"):
        rank = len(x.shape)
        axis = a.get("axis", -1)
        axis = axis + rank + 1 if axis < 0 else axis  # ONNX's, batch 0
        if x.layout == CF and rank >= 2:  # the spec's axis (Keras's, batch 0)
            axis = rank if axis == 1 else axis - 1
        if op == "Softmax":
            entry = {"type": "Softmax"} | ({} if axis == rank else {"axis": axis})
            _add(state, node, entry, [x], x.layout, x.shape)
        elif axis == rank:
            entry = {"type": "Activation", "activation": "log_softmax"}
            _add(state, node, entry, [x], x.layout, x.shape)
        else:
            state.problems.append(f"node '{node.name}' (LogSoftmax): not on the channels")
        return
    if op == "Flatten" or (op == "Reshape" and _is_flatten(state, node)):
        if op == "Flatten" and a.get("axis", 1) != 1:
            state.problems.append(f"node '{node.name}' (Flatten axis {a.get('axis')})")
            return
        size = int(np.prod(x.shape))
        name = _add(state, node, {"type": "Flatten"}, [x], CL, (size,))
        spatial = x.shape[:-1]
        if x.layout == CF and len(x.shape) >= 2 and int(np.prod(spatial)) > 1:
            state.values[node.output[0]] = Value(name, CL, (size,), (x.shape[-1], *spatial))
        return
    if op == "Reshape" and _upsampling(state, node, x):
        return
    if op == "Div" and _gelu(state, node, x):
        return
    if op == "Reshape":
        target = state.inits.get(node.input[1])
        if target is None or x.layout == CF and len(x.shape) >= 2:
            state.problems.append(
                f"node '{node.name}' (Reshape): not a constant channels-last reshape"
            )
            return
        body = [int(d) for d in target[1:]]
        _add(state, node, {"type": "Reshape", "target_shape": body}, [x], CL,
             tuple(d if d != -1 else int(np.prod(x.shape)) // max(1, -int(np.prod(body))) for d in body))  # fmt: skip
        return
    if op == "Gemm":
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            state.problems.append(f"node '{node.name}' (Gemm): transA/alpha/beta not 1")
            return
        w = state.inits.get(node.input[1])
        bias = state.inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if w is None:
            state.problems.append(f"node '{node.name}' (Gemm): the weight is not an initializer")
            return
        _dense(state, node, x, w, bias, bool(a.get("transB", 0)))
        return
    if op == "MatMul":
        w = state.inits.get(node.input[1])
        if w is None:
            state.problems.append(f"node '{node.name}' (MatMul): the weight is not an initializer")
            return
        bias = None
        follower = _single_consumer(state, node.output[0])
        if follower is not None and follower.op_type == "Add":
            other = [i for i in follower.input if i != node.output[0]]
            if other and other[0] in state.inits and state.inits[other[0]].ndim == 1:
                bias = state.inits[other[0]]
                node = follower  # the layer ends at the Add
                state.skip.add(nid(follower))
        _dense(state, node, x, w, bias, False)
        return
    if op in MERGES and len(ins) >= 2 and len(ins) == len([i for i in node.input if i]):
        if op == "Mul" and _is_swish(state, node):
            return
        layouts = {v.layout for v in ins if len(v.shape) >= 2}
        shape = _broadcast(ins)
        if len(layouts) > 1 or shape is None:
            state.problems.append(
                f"node '{node.name}' ({op}): inputs of shapes/layouts "
                f"{', '.join(f'{v.shape} {v.layout}' for v in ins)} do not broadcast as Keras's"
            )
            return
        _add(state, node, {"type": MERGES[op]}, ins, x.layout, shape)
        return
    if op == "Concat":
        rank = len(x.shape)  # sample rank
        axis = a.get("axis", 1)
        axis = axis + rank + 1 if axis < 0 else axis  # ONNX axis, batch = 0
        if x.layout == CF and rank >= 2:
            spec_axis = -1 if axis == 1 else axis - 1
        else:
            spec_axis = -1 if axis == rank else axis
        index = rank - 1 if spec_axis == -1 else spec_axis - 1  # into the sample shape
        shape = list(x.shape)
        shape[index] = sum(v.shape[index] for v in ins)
        entry = {"type": "Concatenate"} | ({} if spec_axis == -1 else {"axis": spec_axis})
        _add(state, node, entry, ins, x.layout, tuple(shape))
        return
    if op == "Slice" and _cropping(state, node, x):
        return
    if op == "Pad" and len(x.shape) == 2 and x.layout == CL:
        pads, value = _const(state, node, 1), _const(state, node, 2)
        mode = a.get("mode", b"constant")
        p = [int(v) for v in pads] if pads is not None else None
        if (p is not None and len(p) == 6 and p[0] == p[2] == p[3] == p[5] == 0
                and mode in (b"constant", "constant") and (value is None or float(value) == 0)):  # fmt: skip
            h, c = x.shape
            _add(state, node, {"type": "ZeroPadding1D", "padding": [p[1], p[4]]}, [x], CL,
                 (h + p[1] + p[4], c))  # fmt: skip
            return
        state.problems.append(f"node '{node.name}' (Pad): only zero padding of the steps")
        return
    if op == "Pad" and len(x.shape) == 3:
        pads = _const(state, node, 1)
        mode = a.get("mode", b"constant")
        value = _const(state, node, 2)
        zero = value is None or float(value) == 0
        if pads is not None and mode in (b"constant", "constant") and zero:
            p = [int(v) for v in pads]
            # (N, C, H, W) or (N, H, W, C): the non-spatial axes stay unpadded
            axes = (2, 3) if x.layout == CF else (1, 2)
            others = [k for k in range(4) if k not in axes]
            if all(p[k] == 0 and p[k + 4] == 0 for k in others):
                hw = [p[axes[0]], p[axes[1]], p[axes[0] + 4], p[axes[1] + 4]]
                out = _zero_pad(state, node, x, hw, own=True)
                state.values[node.output[0]] = Value(out.tensor, x.layout, out.shape)
                return
        state.problems.append(f"node '{node.name}' (Pad): only zero padding of height and width")
        return
    if op == "LayerNormalization" and x.layout == CL:
        axis = a.get("axis", -1)
        scale, bias = _const(state, node, 1), _const(state, node, 2)
        if axis in (-1, len(x.shape)) and scale is not None:
            entry = {
                "type": "LayerNormalization",
                "epsilon": float(np.float32(a.get("epsilon", 1e-5))),
            }
            entry.update(_fixed_affine(state, node, scale, bias))
            weights = [] if "scale" in entry else [("gamma", scale)]
            if bias is None:
                entry["center"] = False
            elif "center" not in entry:
                weights.append(("beta", bias))
            _add(state, node, entry, [x], CL, x.shape, weights)
            return
        state.problems.append(f"node '{node.name}' (LayerNormalization): only the last axis")
        return
    state.problems.append(f"ONNX operator {op} (node '{node.name}') is not supported by specc")


def _fixed_affine(state: _State, node, scale, bias) -> dict:
    """``scale: false`` / ``center: false`` for a scale of exactly 1 / offset of exactly 0
    (what specc writes for them, and Keras's InceptionV3 has): the same outputs, the
    parameter counts of the layer that has none (noted, as a fresh layer looks the same)."""
    fixed = {}
    if np.all(scale == 1.0):
        fixed["scale"] = False
    if bias is not None and np.all(bias == 0.0):
        fixed["center"] = False
    if fixed:
        state.notes.append(
            f"node '{node.name}' ({node.op_type}): {' and '.join(f'{k}: false' for k in fixed)} "
            "(its constants are exactly " + " and ".join(
                {"scale": "1", "center": "0"}[k] for k in fixed) + ")"
        )  # fmt: skip
    return fixed


def _broadcast(ins: list[Value]):
    """The merged sample shape when the inputs broadcast as Keras's merges do over values of
    one rank (ONNX aligns the batch axis too: different ranks would not mean the same)."""
    from ..layers.base import ShapeError
    from ..layers.merge import broadcast

    if len({len(v.shape) for v in ins}) > 1:
        return None
    try:
        return tuple(broadcast([v.shape for v in ins]))
    except ShapeError:
        return None


def _cropping(state: _State, node, x: Value) -> bool:
    """Slice of the steps (Cropping1D) or of the height and width (Cropping2D), constant
    starts and ends, step 1."""
    starts, ends = _const(state, node, 1), _const(state, node, 2)
    axes, steps = _const(state, node, 3), _const(state, node, 4)
    if starts is None or ends is None or (len(node.input) > 3 and node.input[3] and axes is None):
        return False
    if steps is not None and any(int(v) != 1 for v in steps):
        return False
    rank = len(x.shape) + 1
    axes = [int(v) % rank for v in (axes if axes is not None else range(len(starts)))]
    spatial = list(range(1, rank - 1)) if x.layout == CL else list(range(2, rank))
    if x.layout == CF and len(x.shape) < 2 or not set(axes) <= set(spatial):
        return False
    sizes = x.shape[:-1]  # the spec's spatial sizes, in order
    crop = [[0, 0] for _ in sizes]
    for axis, start, end in zip(axes, starts, ends):
        k = spatial.index(axis)
        n = sizes[k]
        begin = min(max(int(start) + n if int(start) < 0 else int(start), 0), n)
        stop = min(max(int(end) + n if int(end) < 0 else int(end), 0), n)
        if stop <= begin:
            return False
        crop[k] = [begin, n - stop]
    if len(sizes) == 1:
        entry = {"type": "Cropping1D", "cropping": crop[0]}
    elif len(sizes) == 2:
        entry = {"type": "Cropping2D", "cropping": crop}
    else:
        return False
    shape = (*[n - b - e for n, (b, e) in zip(sizes, crop)], x.shape[-1])
    _add(state, node, entry, [x], x.layout, shape)
    return True


def _f32(value) -> float:
    """A float32 attribute as the short decimal it was written from (0.001, not 0.0010000000474)."""
    return float(f"{float(value):.7g}")


def _conv_transpose(state: _State, node, x: Value):
    """ConvTranspose with the pads and output_padding Keras's 'valid' or 'same' give."""
    a = _attrs(node)
    w = _const(state, node, 1)
    bias = _const(state, node, 2)
    if w is None or w.ndim != 4 or a.get("group", 1) != 1:
        state.problems.append(f"node '{node.name}' (ConvTranspose): only 2-D, group 1, constant")
        return
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    strides = tuple(a.get("strides", [1, 1]))
    dilations = tuple(a.get("dilations", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    extra = list(a.get("output_padding", [0, 0]))
    for padding in ("valid", "same"):
        begin, end, want_extra = [], [], []
        for k, st, d in zip(kernel, strides, dilations):
            effective = (k - 1) * d + 1
            total = max(effective - st, 0) if padding == "same" else 0
            begin.append(total // 2)
            end.append(total - total // 2)
            want_extra.append(max(st - effective, 0))
        if pads == begin + end and extra == want_extra:
            break
    else:
        state.problems.append(
            f"node '{node.name}' (ConvTranspose): pads {pads} / output_padding {extra} are "
            "neither Keras's 'valid' nor 'same'"
        )
        return
    head = {"filters": int(w.shape[1])}
    entry = _window_entry("Conv2DTranspose", head, kernel, strides, dilations, padding)
    if bias is None:
        entry["use_bias"] = False
    declared = _declared(entry, [x.shape])
    out_shape = declared[0].output_shape([x.shape])
    weights = [("kernel", _from_onnx(declared, "kernel", w))]
    if bias is not None:
        weights.append(("bias", bias))
    _add(state, node, entry, [x], CF, out_shape, weights)


def _chain(state: _State, node, ops: list[str]):
    """The nodes following ``node`` one by one (each the only reader of the previous one's
    output) with these operator types, or None."""
    chain, current = [], node
    for op in ops:
        nxt = _single_consumer(state, current.output[0])
        if nxt is None or nxt.op_type != op:
            return None
        chain.append(nxt)
        current = nxt
    return chain


def _const(state: _State, node, index: int):
    ref = node.input[index] if len(node.input) > index else ""
    return state.inits.get(ref)


def _upsampling(state: _State, node, x: Value) -> bool:
    """Reshape (split) -> Expand (repeat) -> Reshape: UpSampling2D 'nearest', as specc and
    Keras's ops.repeat write it."""
    split = state.inits.get(node.input[1])
    chain = _chain(state, node, ["Expand", "Reshape"])
    if split is None or len(split) != 6 or chain is None or len(x.shape) != 3:
        return False
    grow = _const(state, chain[0], 1)
    if grow is None or len(grow) != 6:
        return False
    sh, sw = (int(grow[3]), int(grow[5])) if x.layout == CF else (int(grow[2]), int(grow[4]))
    entry = {"type": "UpSampling2D", "size": [sh, sw] if sh != sw else sh}
    if sh == sw == 2:
        entry.pop("size")
    h, w, c = x.shape
    _add(state, chain[1], entry, [x], x.layout, (h * sh, w * sw, c))
    state.skip.update(nid(n) for n in chain)
    return True


def _gelu(state: _State, node, x: Value) -> bool:
    """x * (1 + erf(x / sqrt(2))) * 0.5 (the exact gelu, as written below opset 20)."""
    divisor = _const(state, node, 1)
    chain = _chain(state, node, ["Erf", "Add", "Mul", "Mul"])
    if divisor is None or chain is None or abs(float(divisor) - 2**0.5) > 1e-6:
        return False
    if node.input[0] not in chain[2].input:
        return False
    _add(state, chain[3], {"type": "Activation", "activation": "gelu"}, [x], x.layout, x.shape)
    state.skip.update(nid(n) for n in chain)
    return True


def _is_flatten(state: _State, node) -> bool:
    target = state.inits.get(node.input[1])
    return target is not None and target.ndim == 1 and len(target) == 2 and int(target[1]) == -1


def _single_consumer(state: _State, value: str):
    users = [n for n in state.graph.node if value in n.input]
    return users[0] if len(users) == 1 else None


def _is_swish(state: _State, node) -> bool:
    """Mul(x, Sigmoid(x)) (how swish/silu is exported) -> one Activation layer."""
    for a, b in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
        producer = state.producers.get(b)
        if producer is not None and producer.op_type == "Sigmoid" and producer.input[0] == a:
            x = state.values[a]
            sig = state.values.get(b)
            if sig is not None:  # the Sigmoid was already converted: drop that layer
                state.layers = [entry for entry in state.layers if entry["name"] != sig.tensor]
                state.names.discard(sig.tensor)
            _add(state, node, {"type": "Activation", "activation": "swish"}, [x], x.layout, x.shape)
            return True
    return False


def _input_layout(state: _State, name: str, rank: int) -> str:
    """cl when the input's readers first transpose it to channels-first, else cf (rank>2)."""
    if rank <= 2:
        return CL
    readers = [n for n in state.graph.node if name in n.input]
    if readers and all(n.op_type == "Transpose" for n in readers):
        return CL
    if any(n.op_type in ("Conv", "MaxPool", "AveragePool", "BatchNormalization",
                         "GlobalAveragePool", "GlobalMaxPool") for n in readers):  # fmt: skip
        return CF
    return CL


def _fuse_activations(
    layers: list[dict], outputs: set[str], kept: set[str]
) -> tuple[list[dict], dict]:
    """Conv/Dense followed by its only reader ReLU/Activation -> one layer with activation."""
    readers: dict[str, list[dict]] = {}
    for entry in layers:
        for ref in entry.get("inputs", []):
            readers.setdefault(ref, []).append(entry)
    out, dropped = [], set()
    by_name = {entry["name"]: entry for entry in layers}
    for entry in layers:
        if entry["name"] in dropped:
            continue
        follow = readers.get(entry["name"], [])
        fusable = entry["type"] in FUSABLE
        if fusable and len(follow) == 1 and entry["name"] not in outputs:
            nxt = follow[0]
            act = None
            if nxt["type"] == "ReLU" and set(nxt) <= {"type", "name", "inputs"}:
                act = "relu"
            elif nxt["type"] == "Activation":
                act = nxt["activation"]
            elif nxt["type"] == "Softmax" and set(nxt) <= {"type", "name", "inputs"}:
                act = "softmax"
            elif nxt["type"] == "LeakyReLU" and nxt.get("negative_slope") == 0.2:
                act = "leaky_relu"  # keras.activations.leaky_relu's slope
            if act is not None and "activation" not in entry:
                # the activation's name when the graph named it (specc's own graphs), else
                # the layer's (PyTorch's module names)
                name = nxt["name"] if nxt["name"] in kept else entry["name"]
                merged = {**entry, "name": name, "activation": act}
                by_name[nxt["name"]] = merged
                dropped.add(nxt["name"])
                out.append(("rename", (entry["name"], nxt["name"]), merged))
                continue
        out.append(("keep", (entry["name"],), entry))
    renamed = {
        old: new["name"]
        for kind, olds, new in out
        if kind == "rename"
        for old in olds
        if old != new["name"]
    }
    result = []
    for _, _, entry in out:
        entry = dict(entry)
        entry["inputs"] = [renamed.get(r, r) for r in entry.get("inputs", [])]
        result.append(entry)
    return result, renamed


def import_onnx(path: Path, with_weights: bool = True) -> ImportResult:
    from onnx import numpy_helper

    proto = _load(path)
    graph = proto.graph
    inits = {}
    for tensor in graph.initializer:
        try:  # external data beside the model (onnx refuses paths leading out of its folder)
            inits[tensor.name] = numpy_helper.to_array(tensor, base_dir=str(path.parent))
        except Exception as exc:  # noqa: BLE001 - a damaged or hostile file: one line
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ImportRefused(
                [f"{path}: initializer '{tensor.name}': cannot read its data ({reason})"], 2
            ) from None
    state = _State(graph, inits)
    for node in graph.node:
        for out in node.output:
            state.producers[out] = node
            if _NAME.match(out):
                state.reserved.add(out)
    inputs = []
    for value in graph.input:
        if value.name in inits:
            continue
        shape = _dims(value)
        if any(d is None or d <= 0 for d in shape[1:]):
            state.problems.append(f"input '{value.name}': shape {shape} has unknown dimensions")
            continue
        layout = _input_layout(state, value.name, len(shape))
        name = _name(state, value.name, "input")
        state.input_layouts[value.name] = layout
        spec_shape = _cl_shape(shape, layout)
        elem = value.type.tensor_type.elem_type
        entry = {"name": name, "shape": list(spec_shape)}
        if elem != 1:
            dtype = {2: "uint8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}
            entry["dtype"] = dtype.get(elem, "float32")
        inputs.append(entry)
        state.values[value.name] = Value(name, layout, spec_shape)
    from .onnx_patterns import fold_constant, fold_shapes, live_nodes

    state.opsets = list(proto.opset_import)
    live = live_nodes(graph)
    for node in graph.node:  # values computed from constants only become constants
        if nid(node) in live and fold_constant(state, node):
            state.skip.add(nid(node))
    fold_shapes(state, live)  # and from tensor shapes (x.view(x.size(0), -1), zero states)
    for node in graph.node:
        if nid(node) in state.skip or nid(node) not in live:
            continue  # consumed by a pattern, or computes nothing the outputs read
        known = [i for i in node.input if i and i not in inits]
        if any(i not in state.values for i in known) and state.problems:
            # downstream of a refusal: still list operators specc does not know at all
            if node.op_type not in KNOWN_OPS:
                state.problems.append(
                    f"ONNX operator {node.op_type} (node '{node.name}') is not supported by specc"
                )
            continue
        try:
            _convert(state, node)
        except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:
            # a node no exporter writes so (a 1-d Conv weight, ...): listed with the others
            # instead of the converter's traceback (pydantic's ValidationError is a ValueError)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if type(exc).__name__ == "ValidationError":
                errors = exc.errors()  # type: ignore[attr-defined]
                reason = f"{'.'.join(map(str, errors[0]['loc']))}: {errors[0]['msg']}"
            state.problems.append(
                f"node '{node.name}' ({node.op_type}): cannot be converted ({reason})"
            )
    outputs = []
    for value in graph.output:
        v = state.values.get(value.name)
        if v is None:
            continue
        outputs.append(v.tensor)
        state.output_layouts[value.name] = v.layout if len(v.shape) >= 2 else CL
    if state.problems:
        raise ImportRefused(_summarize(state.problems))
    layers, renamed = _fuse_activations(state.layers, set(outputs), state.kept)
    outputs = [renamed.get(o, o) for o in outputs]
    weights = {}
    for key, array in state.weights.items():
        layer, param = key.split("/")
        weights[f"{renamed.get(layer, layer)}/{param}"] = array
    spec = {"version": 1, "name": _model_name(graph.name or path.stem)}
    if proto.doc_string or graph.doc_string:
        spec["description"] = proto.doc_string or graph.doc_string
    spec["inputs"] = inputs
    last = inputs[0]["name"] if len(inputs) == 1 else None
    for entry in layers:
        if entry["inputs"] == ([last] if last else []):
            del entry["inputs"]
        last = entry["name"]
    for entry in layers:
        for key in WINDOW_FIELDS:
            value = entry.get(key)
            if isinstance(value, list) and value and all(v == value[0] for v in value):
                entry[key] = value[0]
    spec["layers"] = layers
    if outputs != [last]:
        spec["outputs"] = outputs
    notes = list(state.notes)
    for name, layout in state.input_layouts.items():
        if layout == CF:
            notes.append(
                f"input '{name}' is channels-first in the graph; the spec reads it channels-last"
            )
    for name, layout in state.output_layouts.items():
        if layout == CF:
            notes.append(
                f"output '{name}' is channels-first in the graph; the spec's is channels-last"
            )
    from ..pipeline import check_data

    checked = check_data(spec, file=str(path))
    if not checked.ok:
        raise ImportRefused([f"the imported spec is invalid: {d.format()}" for d in checked.errors])
    result = ImportResult(spec, weights if with_weights else None, notes, "onnx")
    result.io_layouts = (state.input_layouts, state.output_layouts)
    return result


def _model_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned[:1].isalpha() else f"model_{cleaned}"


def _summarize(problems: list[str]) -> list[str]:
    """Unsupported operators counted once each, then the other problems."""
    counts: dict[str, list[str]] = {}
    rest = []
    for p in problems:
        m = re.match(r"ONNX operator (\S+) \(node '(.*)'\) is not supported by specc", p)
        if m:
            counts.setdefault(m.group(1), []).append(m.group(2))
        elif "after a refused node" not in p:
            rest.append(p)
    lines = [
        f"ONNX operator {op} is not supported by specc: {len(nodes)} node"
        f"{'s' if len(nodes) > 1 else ''} ({', '.join(repr(n) for n in nodes[:5])}"
        f"{' ...' if len(nodes) > 5 else ''})"
        for op, nodes in sorted(counts.items())
    ]
    return lines + rest or problems


def original_inputs(source: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The spec's channels-last inputs in the layouts the original graph reads."""
    result = import_onnx(source, with_weights=False)
    layouts = list(result.io_layouts[0].values())
    return [
        np.ascontiguousarray(np.moveaxis(x, -1, 1)) if layout == CF else x
        for x, layout in zip(inputs, layouts)
    ]


def original_output_layouts(source: Path) -> list[str]:
    return list(import_onnx(source, with_weights=False).io_layouts[1].values())
