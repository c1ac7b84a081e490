"""Multi-node ONNX patterns of the ONNX importer: the subgraphs that specc's own ONNX target
writes for layers that are not one operator (each layer's ``onnx_lowering``), recognized by
their structure (operators, equations, constants, who reads what), never by names alone:

- ``Mul`` by a scalar constant (+ ``Add`` of one): Rescaling
- ``Sub`` of a constant then ``Div`` by one (``Mul`` then ``Add`` when inverted): Normalization
- ``Gather`` of a constant matrix at integer ids: Embedding
- ``Transpose`` to time-major, (``Slice`` reversing time,) ``RNN``/``LSTM``/``GRU``, then
  ``Squeeze`` (one direction) or two ``Gather`` and a merge (both): SimpleRNN/LSTM/GRU or
  Bidirectional, weights converted back with the layer's own transforms (specc.weights)
- ``Einsum`` projections, scaled scores, (causal mask,) ``Softmax``, ``Einsum`` output:
  MultiHeadAttention
- ``Gather`` of the input's first feature, ``IsNaN``, ``Where`` of a table's rows:
  PositionEmbedding
- ``Transpose``, ``MatMul`` (scaled) or ``Unsqueeze``/``Add``/``Tanh``/``ReduceSum``, (mask,)
  ``Softmax``, ``MatMul``: Attention / AdditiveAttention

Values computed from constants only (a weight reshaped, two directions' weights
concatenated, a table sliced) are folded into constants first (onnx's reference evaluator);
``folded`` remembers the node, so a pattern can recover the weight it came from exactly.
A subgraph that does not match is left to the per-operator conversion, which refuses what it
does not know by operator and node name.
"""

from __future__ import annotations

import numpy as np

from .onnx import CF, CL, Value, _add, _attrs, _declared, _from_onnx, _State, nid

#: operators folded when every input is a constant
FOLDABLE = {
    "Reshape", "Concat", "Sqrt", "Max", "Min", "Slice", "Squeeze", "Unsqueeze", "Cast",
    "Transpose", "Mul", "Add", "Sub", "Div", "Gather", "Identity", "Neg", "Reciprocal",
    "Expand", "Shape", "ConstantOfShape", "Constant",
}  # fmt: skip
#: ONNX recurrent activations -> specc's names
RECURRENT_ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu"}
#: default activations of each ONNX recurrent operator (per direction)
RECURRENT_DEFAULTS = {
    "RNN": ["Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
}
RECURRENT_LAYERS = {"RNN": "SimpleRNN", "GRU": "GRU", "LSTM": "LSTM"}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


# --------------------------------------------------------------------------- graph helpers


def live_nodes(graph) -> set[tuple]:
    """The nodes (:func:`nid`) whose results reach a graph output (the others compute nothing the
    model returns: specc's float cast of integer ids another layer reads as they are)."""
    producer = {out: node for node in graph.node for out in node.output if out}
    live: set[tuple] = set()
    todo = [o.name for o in graph.output]
    seen: set[str] = set()
    while todo:
        value = todo.pop()
        if value in seen:
            continue
        seen.add(value)
        node = producer.get(value)
        if node is None or nid(node) in live:
            continue
        live.add(nid(node))
        todo.extend(i for i in node.input if i)
    return live


def _evaluate(state: _State, node, feeds: dict[str, np.ndarray]):
    """The node's outputs on these inputs (onnx's reference evaluator), or None."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    infos = [
        helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape
        )
        for name, array in feeds.items()
    ]
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], "fold", infos, outputs)
    try:
        model = helper.make_model(graph, opset_imports=state.opsets)
        return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feeds)]
    except Exception:  # noqa: BLE001 - not evaluable: the conversion reports the node
        return None


def fold_constant(state: _State, node) -> bool:
    """Evaluate a node whose inputs are all constants; its outputs become constants."""
    if node.op_type not in FOLDABLE or not all(i == "" or i in state.inits for i in node.input):
        return False
    results = _evaluate(state, node, {i: state.inits[i] for i in node.input if i})
    if results is None:
        return False
    for name, value in zip([o for o in node.output if o], results):
        state.inits[name] = value
        state.folded[name] = node
    return True


#: operators of the shape arithmetic exporters write (``x.view(x.size(0), -1)``, a
#: batch-sized zero state from ``Shape(x)``)
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Div", "Mul",
             "Add", "Sub", "Reshape", "ConstantOfShape", "Floor", "Ceil"}  # fmt: skip
#: the batch sizes shape arithmetic is evaluated at
BATCHES = (2, 3)


def fold_shapes(state: _State, live: set) -> None:
    """Shape arithmetic, evaluated at two batch sizes: a result that does not depend on the
    batch becomes a constant; a Reshape target that is the batch followed by constants
    becomes that target with 0 (ONNX: copy the batch) in front; what else depends on the
    batch is marked ``shape_only`` (a layer reading it is refused as such, unless a pattern
    takes it, as the recurrent one takes a zero initial state)."""
    from .onnx import _dims

    graph = state.graph
    dims = {vi.name: _dims(vi) for vi in [*graph.input, *graph.value_info, *graph.output]}
    at: dict[str, tuple] = {}  # value -> its values at BATCHES
    for node in graph.node:
        if nid(node) not in live or node.op_type not in SHAPE_OPS:
            continue
        if node.op_type == "Shape":
            d = dims.get(node.input[0])
            if not d or any(x is None for x in d[1:]):
                continue
            runs = [
                _evaluate(state, node, {node.input[0]: np.zeros((d[0] or b, *d[1:]), np.float32)})
                for b in BATCHES
            ]
        else:
            inputs = [i for i in node.input if i]
            known = all(i in at or i in state.inits for i in inputs)
            if not known or not any(i in at for i in inputs):
                continue
            runs = [
                _evaluate(state, node, {i: at[i][k] if i in at else state.inits[i] for i in inputs})
                for k in range(len(BATCHES))
            ]
        if any(r is None for r in runs):
            continue
        state.skip.add(nid(node))
        for k, out in enumerate(o for o in node.output if o):
            values = tuple(r[k] for r in runs)
            at[out] = values
            if all(np.array_equal(values[0], v) for v in values[1:]):
                state.inits[out] = values[0]
                state.folded[out] = node
            elif _batch_target(state, out, values):
                state.inits[out] = np.concatenate([[0], values[0][1:]]).astype(values[0].dtype)
                state.folded[out] = node
            else:
                state.shape_only.add(out)


def _batch_target(state: _State, value: str, values: tuple) -> bool:
    """A 1-D integer value that is (batch, constants...), read only as Reshape targets."""
    first = values[0]
    if first.ndim != 1 or first.dtype.kind not in "iu" or len(first) < 1:
        return False
    if [int(v[0]) for v in values] != list(BATCHES):
        return False
    if not all(np.array_equal(first[1:], v[1:]) for v in values[1:]):
        return False
    readers = consumers(state, value)
    return bool(readers) and all(
        r.op_type == "Reshape" and list(r.input[1:2]) == [value] for r in readers
    )


def _zero_state(state: _State, value: str) -> bool:
    """An initial state of zeros: ConstantOfShape (value 0) of a shape-only value, or a
    constant of zeros."""
    if value in state.inits:
        return not np.any(state.inits[value])
    node = state.producers.get(value)
    if node is None or node.op_type != "ConstantOfShape" or value not in state.shape_only:
        return False
    fill = _attrs(node).get("value")
    if fill is None:
        return True
    from onnx import numpy_helper

    return not np.any(numpy_helper.to_array(fill))


def consumers(state: _State, value: str) -> list:
    return [n for n in state.graph.node if value and value in n.input]


def only_reader(state: _State, value: str, op: str | tuple[str, ...] | None = None):
    users = consumers(state, value)
    if len(users) != 1 or any(value == o.name for o in state.graph.output):
        return None
    if op is not None and users[0].op_type not in ((op,) if isinstance(op, str) else op):
        return None
    return users[0]


def const(state: _State, node, index: int):
    ref = node.input[index] if len(node.input) > index else ""
    return state.inits.get(ref) if ref else None


def source(state: _State, value: str, ops: list[str]):
    """The constant a chain of folded nodes (``ops``, last first) computed ``value`` from,
    or None: ``source(s, v, ['Max', 'Sqrt', 'Reshape'])`` for Max(Sqrt(Reshape(w)), c)."""
    for op in ops:
        node = state.folded.get(value)
        if node is None or node.op_type != op:
            return None
        value = node.input[0]
    return value if value in state.inits and value not in state.folded else None


def _float(value) -> float:
    """A float32 constant as the shortest decimal that reads back as the same float32."""
    return float(str(np.float32(value)))


def _equation(node) -> str:
    eq = _attrs(node).get("equation", b"")
    return (eq.decode() if isinstance(eq, bytes) else eq).replace(" ", "")


def _ints(array) -> list[int] | None:
    return None if array is None else [int(v) for v in np.asarray(array).reshape(-1)]


def _refuse(state: _State, node, why: str) -> bool:
    state.problems.append(f"node '{node.name}' ({node.op_type}): {why}")
    return True


# --------------------------------------------------------------------------- entry point


def convert(state: _State, node, ins: list[Value], a: dict) -> bool:
    """Convert ``node`` (and the nodes of its pattern) when it starts a multi-node pattern."""
    op = node.op_type
    if op == "Transpose" and list(a.get("perm", [])) == [1, 0, 2] and ins:
        return _recurrent(state, node, ins[0])
    if op == "Einsum":
        return _multi_head_attention(state, node)
    if op == "Gather":
        return _gather(state, node, ins, a)
    if op == "Cast" and ins and a.get("to") in (6, 7):
        readers = consumers(state, node.output[0])
        if readers and all(_is_embedding(state, r) for r in readers):
            state.values[node.output[0]] = ins[0]  # Embedding truncates float ids as Cast
            return True
        return False
    if op == "Mul" and len(ins) == 1:
        return _normalization_inverted(state, node, ins[0]) or _rescaling(state, node, ins[0])
    if op == "Sub" and len(ins) == 1 and node.input[0] in state.values:
        return _normalization(state, node, ins[0])
    if op == "Add" and len(ins) == 1:
        return _hard_sigmoid(state, node, ins[0])
    if op == "Softplus" and ins:
        return _mish(state, node, ins[0])
    if op in ("HardSigmoid", "HardSwish") and ins:
        return _hard_ops(state, node, ins[0], a)
    if op == "MatMul" and len(ins) == 2:
        return _dot_attention(state, node, ins)
    if op == "Unsqueeze" and ins:
        return _additive_attention(state, node)
    return False


# --------------------------------------------------------------------------- activations


def _scalar(state: _State, node, value: float) -> bool:
    """Whether one input of ``node`` is a scalar constant equal to ``value``."""
    return any(
        i in state.inits
        and state.inits[i].size == 1
        and float(state.inits[i].reshape(-1)[0]) == value
        for i in node.input
    )


def _times(state: _State, node, x_ref: str, other: str):
    """A Mul(x, other) reading ``other`` (its only reader) and ``x_ref``, or None."""
    mul = only_reader(state, other, "Mul")
    if mul is None or sorted(mul.input) != sorted([x_ref, other]):
        return None
    return mul


def _activation(state: _State, last, x: Value, name: str, nodes: list) -> bool:
    state.skip.update(nid(n) for n in nodes)
    _add(state, last, {"type": "Activation", "activation": name}, [x], x.layout, x.shape)
    return True


def _hard_sigmoid(state: _State, node, x: Value) -> bool:
    """Add(x, 3) -> Clip(0, 6) -> Div(6): hard_sigmoid (as Keras's TensorFlow backend
    computes it, and specc writes it); Mul(x, that): hard_silu."""
    if not _scalar(state, node, 3.0):
        return False
    clip = only_reader(state, node.output[0], "Clip")
    bounds = [const(state, clip, k) for k in (1, 2)] if clip is not None else [None]
    if any(b is None or b.size != 1 for b in bounds) or [float(b) for b in bounds] != [0, 6]:
        return False
    div = only_reader(state, clip.output[0], "Div")
    if div is None or div.input[0] != clip.output[0] or not _scalar(state, div, 6.0):
        return False
    mul = _times(state, node, node.input[0] if node.input[0] in state.values else node.input[1],
                 div.output[0])  # fmt: skip
    if mul is not None:
        return _activation(state, mul, x, "hard_silu", [clip, div, mul])
    return _activation(state, div, x, "hard_sigmoid", [clip, div])


def _mish(state: _State, node, x: Value) -> bool:
    """Mul(x, Tanh(Softplus(x))): mish."""
    tanh = only_reader(state, node.output[0], "Tanh")
    mul = _times(state, node, node.input[0], tanh.output[0]) if tanh is not None else None
    if mul is None:
        return False
    return _activation(state, mul, x, "mish", [tanh, mul])


def _hard_ops(state: _State, node, x: Value, a: dict) -> bool:
    """ONNX's HardSigmoid (alpha 1/6, beta 0.5: Keras's hard_sigmoid) and HardSwish."""
    if node.op_type == "HardSwish":
        return _activation(state, node, x, "hard_silu", [])
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-7 or beta != 0.5:
        return _refuse(state, node, f"alpha {alpha}, beta {beta}: not Keras's hard_sigmoid")
    return _activation(state, node, x, "hard_sigmoid", [])


# --------------------------------------------------------------------------- preprocessing


def _rescaling(state: _State, node, x: Value) -> bool:
    """Mul(x, scalar) [-> Add(., scalar)]: Rescaling(scale, offset)."""
    index = 1 if node.input[0] in state.values else 0
    scale = const(state, node, index)
    if scale is None or scale.size != 1 or scale.ndim > len(x.shape) + 1:
        return False
    entry: dict = {"type": "Rescaling", "scale": _float(scale.reshape(-1)[0])}
    last = node
    follow = only_reader(state, node.output[0], "Add")
    if follow is not None:
        other = [i for i in follow.input if i != node.output[0]]
        offset = state.inits.get(other[0]) if len(other) == 1 else None
        if offset is not None and offset.size == 1 and offset.ndim <= len(x.shape) + 1:
            entry["offset"] = _float(offset.reshape(-1)[0])
            last = follow
            state.skip.add(nid(follow))
    _add(state, last, entry, [x], x.layout, x.shape)
    return True


def _stats(state: _State, x: Value, array: np.ndarray) -> np.ndarray | None:
    """A constant broadcast against ``x`` (batch first, in the graph's layout) as an array of
    the spec's rank + 1 in channels-last order, or None when it does not broadcast so."""
    rank = len(x.shape)
    array = np.asarray(array, np.float32)
    if array.ndim > rank + 1:
        return None
    array = array.reshape((1,) * (rank + 1 - array.ndim) + array.shape)
    if array.shape[0] != 1:
        return None
    if x.layout == CF and rank >= 2:
        array = np.moveaxis(array, 1, -1)
    if any(d not in (1, s) for d, s in zip(array.shape[1:], x.shape)):
        return None
    return array


def _normalization(state: _State, node, x: Value) -> bool:
    """Sub(x, mean) -> Div(., max(sqrt(variance), 1e-7)): Normalization."""
    if node.input[1] not in state.inits:
        return False
    div = only_reader(state, node.output[0], "Div")
    if div is None or div.input[0] != node.output[0] or div.input[1] not in state.inits:
        return False
    return _normalization_layer(state, node, div, x, node.input[1], div.input[1], False)


def _normalization_inverted(state: _State, node, x: Value) -> bool:
    """Mul(x, std) -> Add(mean, .) where std is max(sqrt(variance), 1e-7): Normalization with
    invert (a plain scalar Mul is Rescaling)."""
    index = 1 if node.input[0] in state.values else 0
    std = node.input[index]
    add = only_reader(state, node.output[0], "Add")
    if add is None or std not in state.inits:
        return False
    mean = [i for i in add.input if i != node.output[0]]
    if len(mean) != 1 or mean[0] not in state.inits:
        return False
    if source(state, std, ["Max", "Sqrt"]) is None:
        return False  # not a standard deviation specc wrote: Rescaling, or refused
    return _normalization_layer(state, node, add, x, mean[0], std, True)


def _normalization_layer(state, first, last, x: Value, mean_ref, std_ref, invert) -> bool:
    from ..layers.preprocessing import KERAS_EPSILON

    mean = _stats(state, x, state.inits[mean_ref])
    std = _stats(state, x, state.inits[std_ref])
    if mean is None or std is None:
        return False
    kept = [k for k in range(len(x.shape)) if mean.shape[k + 1] != 1 or std.shape[k + 1] != 1]
    stats_shape = tuple(x.shape[k] for k in kept)
    entry: dict = {"type": "Normalization"}
    axes = [k + 1 for k in kept]
    if axes != [len(x.shape)]:
        entry["axis"] = None if not axes else axes[0] if len(axes) == 1 else axes
    if invert:
        entry["invert"] = True
    # the variance the graph took the square root of (specc writes Max(Sqrt(v), 1e-7))
    var_ref = source(state, std_ref, ["Max", "Sqrt"])
    weights_mean = source(state, mean_ref, ["Reshape"])
    weights_var = source(state, std_ref, ["Max", "Sqrt", "Reshape"])
    mean_full = np.broadcast_to(
        mean, (1, *[x.shape[k] if k in kept else 1 for k in range(len(x.shape))])
    )
    if var_ref is not None:
        variance = _stats(state, x, state.inits[var_ref])
        if variance is None:
            return False
    elif float(std.min()) >= KERAS_EPSILON:
        variance = std.astype(np.float64) ** 2
    else:
        return _refuse(state, last, "a standard deviation below 1e-7 (Keras's floor)")
    var_full = np.broadcast_to(variance, mean_full.shape)
    stats_mean = mean_full.reshape(stats_shape)
    stats_var = var_full.reshape(stats_shape)
    weights = []
    if weights_mean is not None and weights_var is not None:
        # the mean and variance were weights (Keras's adapt): kept as weights, count 0
        a, v = state.inits[weights_mean], state.inits[weights_var]
        if a.shape != stats_shape or v.shape != stats_shape:
            return False
        weights = [("mean", a), ("variance", v), ("count", np.zeros((), np.float32))]
    else:
        fields = _normalization_fields(stats_mean, stats_var)
        if fields is None:  # varies along more than the last kept axis: as weights
            weights = [("mean", stats_mean), ("variance", stats_var),
                       ("count", np.zeros((), np.float32))]  # fmt: skip
        else:
            entry["mean"], entry["variance"] = fields
    for n in (first, last):
        state.skip.add(nid(n))
    _add(state, last, entry, [x], x.layout, x.shape, weights)
    return True


def _normalization_fields(mean: np.ndarray, var: np.ndarray):
    """(mean, variance) as the spec's fields: one number, or one per entry of the last kept
    axis; None when they vary along another axis."""
    if mean.ndim == 0 or (
        np.all(mean == mean.reshape(-1)[0]) and np.all(var == var.reshape(-1)[0])
    ):
        return _float(mean.reshape(-1)[0]), _float(var.reshape(-1)[0])
    last_m = mean.reshape(-1, mean.shape[-1])
    last_v = var.reshape(-1, var.shape[-1])
    if not (np.all(last_m == last_m[0]) and np.all(last_v == last_v[0])):
        return None
    return [_float(v) for v in last_m[0]], [_float(v) for v in last_v[0]]


# --------------------------------------------------------------------------- embeddings


def _is_embedding(state: _State, node) -> bool:
    table = const(state, node, 0)
    ids = state.values.get(node.input[1]) if len(node.input) > 1 else None
    if ids is not None and len(ids.shape) >= 2 and ids.layout != CL:
        return False  # ids transposed: the output's axes would be too
    return (
        node.op_type == "Gather"
        and table is not None
        and table.ndim == 2
        and _attrs(node).get("axis", 0) == 0
        and node.input[1] not in state.inits
    )


def _gather(state: _State, node, ins: list[Value], a: dict) -> bool:
    if _is_embedding(state, node) and ins:
        table = state.inits[node.input[0]]
        ids = ins[0]
        entry = {"type": "Embedding", "input_dim": int(table.shape[0]),
                 "output_dim": int(table.shape[1])}  # fmt: skip
        declared = _declared(entry, [ids.shape])
        weights = [("embeddings", _from_onnx(declared, "embeddings", table))]
        _add(state, node, entry, [ids], CL, (*ids.shape, int(table.shape[1])), weights)
        return True
    return _position_embedding(state, node, ins, a)


def _position_embedding(state: _State, node, ins: list[Value], a: dict) -> bool:
    """Gather(x, [0], axis 2) -> IsNaN -> Where(cond, rows, rows): PositionEmbedding."""
    if len(ins) != 1 or node.input[0] not in state.values or a.get("axis") != 2:
        return False
    x = ins[0]
    if _ints(const(state, node, 1)) != [0] or x.layout != CL or len(x.shape) != 2:
        return False
    isnan = only_reader(state, node.output[0], "IsNaN")
    where = only_reader(state, isnan.output[0], "Where") if isnan is not None else None
    if where is None or where.input[0] != isnan.output[0] or where.input[1] != where.input[2]:
        return False
    rows = state.inits.get(where.input[1])
    if rows is None or tuple(rows.shape) != x.shape:
        return False
    table = rows
    sliced = state.folded.get(where.input[1])
    if sliced is not None and sliced.op_type == "Slice" and sliced.input[0] in state.inits:
        starts, ends = _ints(const(state, sliced, 1)), _ints(const(state, sliced, 2))
        axes = _ints(const(state, sliced, 3)) or [0]
        full = state.inits[sliced.input[0]]
        if starts == [0] and ends == [x.shape[0]] and axes == [0] and full.ndim == 2:
            table = full  # the whole table (sequence_length rows), as the layer holds it
    entry = {"type": "PositionEmbedding", "sequence_length": int(table.shape[0])}
    state.skip.update({nid(isnan), nid(where)})
    _add(state, where, entry, [x], CL, x.shape, [("embeddings", table)])
    return True


# --------------------------------------------------------------------------- recurrent


def _recurrent(state: _State, node, x: Value) -> bool:
    """Transpose to time-major [-> Slice reversing time] -> RNN/LSTM/GRU -> outputs back."""
    if len(x.shape) != 2 or x.layout != CL:
        return False
    chain = [node]
    reader = only_reader(state, node.output[0])
    go_backwards = False
    if reader is not None and reader.op_type == "Slice":
        starts, ends = _ints(const(state, reader, 1)), _ints(const(state, reader, 2))
        axes, steps = _ints(const(state, reader, 3)), _ints(const(state, reader, 4))
        if (
            starts != [-1]
            or axes != [0]
            or steps != [-1]
            or ends is None
            or ends[0] > -x.shape[0] - 1
        ):
            return False
        go_backwards = True
        chain.append(reader)
        reader = only_reader(state, reader.output[0])
    if (
        reader is None
        or reader.op_type not in RECURRENT_LAYERS
        or reader.input[0] != chain[-1].output[0]
    ):
        return False
    rnn = reader
    op = rnn.op_type
    a = _attrs(rnn)
    where = f"node '{rnn.name}' ({op})"
    direction = a.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    problems = []
    for k, what in ((4, "sequence_lens"), (5, "initial_h"), (6, "initial_c"), (7, "peepholes P")):
        if len(rnn.input) > k and rnn.input[k]:
            if k in (5, 6) and _zero_state(state, rnn.input[k]):
                continue  # zeros: Keras's initial state
            problems.append(f"{where}: input {what} cannot be expressed")
    for attr in ("clip", "activation_alpha", "activation_beta"):
        if attr in a:
            problems.append(f"{where}: attribute {attr} cannot be expressed")
    if a.get("input_forget", 0) or a.get("layout", 0):
        problems.append(f"{where}: input_forget / layout 1 cannot be expressed")
    w, r = const(state, rnn, 1), const(state, rnn, 2)
    bias = const(state, rnn, 3)
    if w is None or r is None or (len(rnn.input) > 3 and rnn.input[3] and bias is None):
        problems.append(f"{where}: weights are not constants")
    dirs = 2 if direction == "bidirectional" else 1
    names = [n.decode() if isinstance(n, bytes) else n for n in a.get("activations", [])]
    names = names or RECURRENT_DEFAULTS[op] * dirs
    per = len(RECURRENT_DEFAULTS[op])
    if len(names) != per * dirs or names[:per] != names[per:] and dirs == 2:
        problems.append(f"{where}: activations {names} (both directions must be the same)")
    acts = [RECURRENT_ACTIVATIONS.get(n) for n in names[:per]]
    if None in acts or (op == "LSTM" and acts[1] != acts[2]):
        problems.append(f"{where}: activations {names[:per]} cannot be expressed")
    if problems:
        state.problems.extend(problems)
        state.skip.update(nid(n) for n in (*chain, rnn))
        return True
    units = int(a.get("hidden_size", r.shape[-1]))
    cell: dict = {"type": RECURRENT_LAYERS[op], "units": units}
    if acts[-1] != "tanh":
        cell["activation"] = acts[-1]
    if op != "RNN" and acts[0] != "sigmoid":
        cell["recurrent_activation"] = acts[0]
    if bias is None:
        cell["use_bias"] = False
    if op == "GRU" and not a.get("linear_before_reset", 0):
        cell["reset_after"] = False
    y = rnn.output[0] if rnn.output else ""
    y_h = rnn.output[1] if len(rnn.output) > 1 else ""
    used_y = bool(y) and bool(consumers(state, y))
    used_h = bool(y_h) and bool(consumers(state, y_h))
    if used_y == used_h:
        return _unread(state, chain, rnn)
    sequences = used_y
    outs = y if sequences else y_h
    if sequences:
        cell["return_sequences"] = True
    tail = []  # the nodes after the recurrent one, last one producing the layer's output
    if dirs == 1:
        if direction == "reverse":
            if sequences or go_backwards:  # outputs in input order: no Keras layer does that
                return _unread(state, chain, rnn)
            go_backwards = True
        squeeze = only_reader(state, outs, ("Squeeze", "Gather"))
        if squeeze is None:
            return _unread(state, chain, rnn)
        if squeeze.op_type == "Gather":  # Y_h[-1] / Y_h[0] (PyTorch's h[-1]): the one state
            index = _ints(const(state, squeeze, 1))
            if sequences or _attrs(squeeze).get("axis", 0) != 0 or index not in ([0], [-1]):
                return _unread(state, chain, rnn)
            if np.asarray(const(state, squeeze, 1)).ndim != 0:
                return _unread(state, chain, rnn)
        else:
            axes = (_ints(const(state, squeeze, 1)) if len(squeeze.input) > 1
                    else _attrs(squeeze).get("axes"))  # fmt: skip
            if axes != [1 if sequences else 0]:
                return _unread(state, chain, rnn)
        tail.append(squeeze)
        if sequences:
            back = only_reader(state, squeeze.output[0], "Transpose")
            if back is None or list(_attrs(back).get("perm", [])) != [1, 0, 2]:
                return _unread(state, chain, rnn)
            tail.append(back)
            last = _last_step(state, back, x.shape[0])
            if last is not None and not go_backwards and direction == "forward":
                tail.append(last)  # y[:, -1] of the sequence: the final output
                sequences = False
                del cell["return_sequences"]
        if go_backwards:
            cell["go_backwards"] = True
        entry = cell
    else:
        if go_backwards:
            return _unread(state, chain, rnn)
        merged = _bidirectional_merge(state, outs, 1 if sequences else 0)
        if merged is None:
            return _unread(state, chain, rnn)
        mode, merge_nodes = merged
        tail.extend(merge_nodes)
        if sequences:
            back = only_reader(state, tail[-1].output[0], "Transpose")
            if back is None or list(_attrs(back).get("perm", [])) != [1, 0, 2]:
                return _unread(state, chain, rnn)
            tail.append(back)
        entry = {"type": "Bidirectional", "layer": cell}
        if mode != "concat":
            entry["merge_mode"] = mode
    declared = _declared(entry, [x.shape])
    weights = []
    for d in range(dirs):
        prefix = "" if dirs == 1 else ("forward_", "backward_")[d]
        weights.append((prefix + "kernel", _from_onnx(declared, prefix + "kernel", w[d : d + 1])))
        weights.append(
            (
                prefix + "recurrent_kernel",
                _from_onnx(declared, prefix + "recurrent_kernel", r[d : d + 1]),
            )
        )
        if bias is not None:
            b = _single_bias(op, cell, bias[d : d + 1], units)
            if b is None:
                return _refuse(state, rnn, "a recurrent bias of the GRU's candidate gate that "
                               "Keras's GRU with reset_after false has no place for")  # fmt: skip
            weights.append((prefix + "bias", _from_onnx(declared, prefix + "bias", b)))
    state.skip.update(nid(n) for n in (*chain[1:], rnn, *tail))
    declared = _declared(entry, [x.shape])  # return_sequences may have changed
    out_shape = declared[0].output_shape([x.shape])
    _add(state, tail[-1], entry, [x], CL, out_shape, weights, named_by=rnn)
    return True


def _unread(state: _State, chain: list, rnn) -> bool:
    """A recurrent node whose outputs are not read as one of Keras's layers returns them."""
    state.skip.update(nid(n) for n in (*chain, rnn))
    return _refuse(
        state, rnn, "its outputs are not read as a Keras layer returns them (the last state, "
        "or the sequence back in batch-major order; both directions merged)"
    )  # fmt: skip


def _last_step(state: _State, node, steps: int):
    """The Gather of the last step (axis 1, index -1 or steps - 1) reading ``node``, if that
    is its only reader."""
    gather = only_reader(state, node.output[0], "Gather")
    if gather is None or _attrs(gather).get("axis", 0) != 1:
        return None
    index = const(state, gather, 1)
    if index is None or np.asarray(index).ndim != 0 or int(index) not in (-1, steps - 1):
        return None
    return gather


def _single_bias(op: str, cell: dict, bias: np.ndarray, units: int):
    """ONNX's B = [input biases, recurrent biases] with the recurrent half folded into the
    input half where the cell adds them anyway (Keras's LSTM and SimpleRNN hold one bias;
    GRU reset_after holds both)."""
    gates = GATES[op] * units
    if op == "GRU" and cell.get("reset_after", True):
        return bias
    wb, rb = bias[:, :gates], bias[:, gates:]
    if not np.any(rb):
        return bias
    if op == "GRU" and np.any(rb[:, 2 * units :]):
        return None  # the candidate's recurrent bias sits inside r * (...) there
    return np.concatenate([wb + rb, np.zeros_like(rb)], axis=1)


def _bidirectional_merge(state: _State, outs: str, axis: int):
    """Gather(outs, 0/1, axis) -> Concat(-1) / Add / Mul / Add then Div 2: (mode, nodes)."""
    gathers = consumers(state, outs)
    if len(gathers) != 2 or any(g.op_type != "Gather" for g in gathers):
        return None
    index = {}
    for g in gathers:
        k = _ints(const(state, g, 1))
        if k is None or len(k) != 1 or _attrs(g).get("axis", 0) != axis:
            return None
        if np.asarray(const(state, g, 1)).ndim != 0:
            return None  # a kept axis of 1: not the halves specc takes
        if not -2 <= k[0] < 2:
            return None
        index[k[0] % 2] = g  # PyTorch's h[-2], h[-1]: forward, backward
    if set(index) != {0, 1}:
        return None
    fwd, bwd = index[0], index[1]
    merge = only_reader(state, fwd.output[0])
    if merge is None or only_reader(state, bwd.output[0]) is not merge:
        return None
    if list(merge.input) != [fwd.output[0], bwd.output[0]]:
        return None
    if merge.op_type == "Concat" and _attrs(merge).get("axis") in (-1, 2 if axis == 1 else 1):
        return "concat", [fwd, bwd, merge]
    if merge.op_type == "Mul":
        return "mul", [fwd, bwd, merge]
    if merge.op_type == "Add":
        div = only_reader(state, merge.output[0], "Div")
        two = const(state, div, 1) if div is not None else None
        if (
            div is not None
            and two is not None
            and two.size == 1
            and float(two.reshape(-1)[0]) == 2.0
        ):
            return "ave", [fwd, bwd, merge, div]
        return "sum", [fwd, bwd, merge]
    return None


# --------------------------------------------------------------------------- attention

PROJECT, SCORES, ATTEND, OUTPUT = (
    "abc,cde->abde",
    "aecd,abcd->acbe",
    "acbe,aecd->abcd",
    "abcd,cde->abe",
)


def _producer(state: _State, value: str):
    return state.producers.get(value)


def _projection(state: _State, value: str):
    """Walk back from a projected value: [Add bias <-] Einsum(x, kernel). Returns
    (einsum, bias node or None, kernel, bias) or None."""
    node = _producer(state, value)
    bias_node, bias = None, None
    if node is not None and node.op_type == "Add":
        consts = [i for i in node.input if i in state.inits]
        others = [i for i in node.input if i not in state.inits]
        if len(consts) != 1 or len(others) != 1:
            return None
        bias_node, bias = node, state.inits[consts[0]]
        node = _producer(state, others[0])
    if node is None or node.op_type != "Einsum" or _equation(node) != PROJECT:
        return None
    kernel = const(state, node, 1)
    if kernel is None or kernel.ndim != 3 or node.input[0] not in state.values:
        return None
    if state.values[node.input[0]].layout != CL:
        return None  # the projection is over the last axis: the features
    if bias is not None and tuple(bias.shape) != tuple(kernel.shape[1:]):
        return None
    for n in (node, bias_node):
        if n is not None and only_reader(state, n.output[0]) is None:
            return None
    return node, bias_node, kernel, bias


def _multi_head_attention(state: _State, node) -> bool:
    """specc's MultiHeadAttention: Einsum projections (+ bias), the query scaled by
    1/sqrt(key_dim), Einsum scores [+ causal mask], Softmax, Einsum, Einsum output (+ bias)."""
    if _equation(node) != PROJECT:
        return False
    # from this projection (query, key or value) forward to the scores or the attention
    current, scores, attend = node, None, None
    for _ in range(4):
        nxt = only_reader(state, current.output[0])
        if nxt is None:
            return False
        if nxt.op_type == "Einsum" and _equation(nxt) == SCORES:
            scores = nxt
            break
        if nxt.op_type == "Einsum" and _equation(nxt) == ATTEND:
            attend = nxt
            break
        current = nxt
    if scores is None and attend is not None:
        softmax = _producer(state, attend.input[0])
        masked = _producer(state, softmax.input[0]) if softmax is not None else None
        scores = masked
        if masked is not None and masked.op_type == "Add":
            scores = _producer(state, next(i for i in masked.input if i not in state.inits))
    if scores is None or scores.op_type != "Einsum" or _equation(scores) != SCORES:
        return False
    mask_node = None
    after = only_reader(state, scores.output[0])
    if after is not None and after.op_type == "Add":
        mask_node, after = after, only_reader(state, after.output[0])
    if after is None or after.op_type != "Softmax" or _attrs(after).get("axis", -1) not in (-1, 3):
        return False
    softmax = after
    attend = only_reader(state, softmax.output[0])
    if attend is None or attend.op_type != "Einsum" or _equation(attend) != ATTEND:
        return False
    if attend.input[0] != softmax.output[0]:
        return False
    scale_node = _producer(state, scores.input[1])
    if scale_node is None or scale_node.op_type != "Mul":
        return False
    scale_refs = [i for i in scale_node.input if i in state.inits]
    query_refs = [i for i in scale_node.input if i not in state.inits]
    if len(scale_refs) != 1 or len(query_refs) != 1 or state.inits[scale_refs[0]].size != 1:
        return False
    query = _projection(state, query_refs[0])
    key = _projection(state, scores.input[0])
    value = _projection(state, attend.input[1])
    if query is None or key is None or value is None:
        return False
    out = only_reader(state, attend.output[0])
    if out is None or out.op_type != "Einsum" or _equation(out) != OUTPUT:
        return False
    out_kernel = const(state, out, 1)
    last, out_bias = out, None
    follow = only_reader(state, out.output[0])
    if follow is not None and follow.op_type == "Add":
        consts = [i for i in follow.input if i in state.inits]
        if len(consts) == 1 and state.inits[consts[0]].ndim == 1:
            last, out_bias = follow, state.inits[consts[0]]
    if out_kernel is None or out_kernel.ndim != 3:
        return False
    nodes = [scale_node, scores, softmax, attend, out, last, mask_node]
    for proj in (query, key, value):
        nodes += [proj[0], proj[1]]

    def refuse(node, why: str) -> bool:  # the whole pattern is accounted for: one reason
        state.skip.update(nid(n) for n in nodes if n is not None)
        return _refuse(state, node, why)

    biases = [query[3], key[3], value[3], out_bias]
    if any(b is None for b in biases) and not all(b is None for b in biases):
        return refuse(out, "attention with bias on some projections only")
    (xq, xk, xv) = (p[0].input[0] for p in (query, key, value))
    q_kernel, k_kernel, v_kernel = query[2], key[2], value[2]
    heads, key_dim = int(q_kernel.shape[1]), int(q_kernel.shape[2])
    value_dim = int(v_kernel.shape[2])
    scale = float(state.inits[scale_refs[0]].reshape(-1)[0])
    if abs(scale * key_dim**0.5 - 1) > 1e-6:
        return refuse(scale_node, f"scores scaled by {scale}, not 1/sqrt(key_dim {key_dim})")
    tq, tk = state.values[xq].shape[0], state.values[xk].shape[0]
    causal = False
    if mask_node is not None:
        mask = next((state.inits[i] for i in mask_node.input if i in state.inits), None)
        want = np.where(np.tril(np.ones((tq, tk), bool)), 0.0, -1e9).astype(np.float32)
        if (
            mask is None
            or mask.shape[-2:] != want.shape
            or not np.array_equal(mask.reshape(want.shape), want)
        ):
            return refuse(mask_node, "an attention mask that is not Keras's causal mask")
        causal = True
    entry: dict = {"type": "MultiHeadAttention", "num_heads": heads, "key_dim": key_dim}
    if value_dim != key_dim:
        entry["value_dim"] = value_dim
    features = state.values[xq].shape[-1]
    if out_kernel.shape[-1] != features:
        entry["output_shape"] = int(out_kernel.shape[-1])
    if out_bias is None:
        entry["use_bias"] = False
    if causal:
        entry["use_causal_mask"] = True
    inputs = [state.values[xq], state.values[xv]] + ([state.values[xk]] if xk != xv else [])
    declared = _declared(entry, [v.shape for v in inputs])
    params = [("query", q_kernel, query[3]), ("key", k_kernel, key[3]),
              ("value", v_kernel, value[3]), ("output", out_kernel, out_bias)]  # fmt: skip
    weights = []
    for part, kernel, bias in params:
        weights.append((f"{part}_kernel", _from_onnx(declared, f"{part}_kernel", kernel)))
        if bias is not None:
            weights.append((f"{part}_bias", _from_onnx(declared, f"{part}_bias", bias)))
    state.skip.update(nid(n) for n in nodes if n is not None)
    out_shape = declared[0].output_shape([v.shape for v in inputs])
    _add(state, last, entry, inputs, CL, out_shape, weights)
    return True


def _dot_attention(state: _State, node, ins: list[Value]) -> bool:
    """MatMul(query, Transpose(key)) [Mul scale] [Sub mask] Softmax MatMul(., value):
    Attention (dot scores)."""
    transpose = _producer(state, node.input[1])
    if transpose is None or transpose.op_type != "Transpose":
        return False
    if (
        list(_attrs(transpose).get("perm", [])) != [0, 2, 1]
        or transpose.input[0] not in state.values
    ):
        return False
    query, key = state.values[node.input[0]], state.values[transpose.input[0]]
    if query.layout != CL or key.layout != CL or len(query.shape) != 2 or len(key.shape) != 2:
        return False
    current, entry, weights, nodes = node, {"type": "Attention"}, [], [node]
    follow = only_reader(state, current.output[0])
    if follow is not None and follow.op_type == "Mul":
        scale = next((state.inits[i] for i in follow.input if i in state.inits), None)
        if scale is None or scale.size != 1:
            return False
        entry["use_scale"] = True
        weights.append(("scale", scale.reshape(())))
        current = follow
        nodes.append(follow)
    return _attention_end(state, current, entry, weights, nodes, query, key)


def _additive_attention(state: _State, node) -> bool:
    """Unsqueeze(q, 2) + Unsqueeze(k, 1) -> Tanh [-> Mul scale] -> ReduceSum(-1) [mask]
    Softmax MatMul(., value): AdditiveAttention; with Mul(scale) before Tanh and
    Mul(concat_score_weight) after ReduceSum: Attention with score_mode concat."""
    add = only_reader(state, node.output[0], "Add")
    if add is None or len(add.input) != 2:
        return False
    unsq = [_producer(state, i) for i in add.input]
    if any(u is None or u.op_type != "Unsqueeze" for u in unsq):
        return False
    axes = [_ints(const(state, u, 1)) for u in unsq]
    if axes != [[2], [1]] or any(u.input[0] not in state.values for u in unsq):
        return False
    if nid(unsq[1]) != nid(node) and nid(unsq[0]) != nid(node):
        return False
    query, key = state.values[unsq[0].input[0]], state.values[unsq[1].input[0]]
    if (
        only_reader(state, unsq[0].output[0]) is None
        or only_reader(state, unsq[1].output[0]) is None
    ):
        return False
    nodes = [*unsq, add]
    current = add
    nxt = only_reader(state, current.output[0])
    pre_scale = None
    if nxt is not None and nxt.op_type == "Mul":
        pre_scale = next((state.inits[i] for i in nxt.input if i in state.inits), None)
        nodes.append(nxt)
        current, nxt = nxt, only_reader(state, nxt.output[0])
    if nxt is None or nxt.op_type != "Tanh":
        return False
    nodes.append(nxt)
    current, nxt = nxt, only_reader(state, nxt.output[0])
    post_scale = None
    if nxt is not None and nxt.op_type == "Mul":
        post_scale = next((state.inits[i] for i in nxt.input if i in state.inits), None)
        nodes.append(nxt)
        current, nxt = nxt, only_reader(state, nxt.output[0])
    if nxt is None or nxt.op_type != "ReduceSum" or _ints(const(state, nxt, 1)) != [-1]:
        return False
    if _attrs(nxt).get("keepdims", 1) != 0:
        return False
    nodes.append(nxt)
    current, nxt = nxt, only_reader(state, nxt.output[0])
    weights = []
    if pre_scale is None and post_scale is None or post_scale is not None and pre_scale is None:
        entry: dict = {"type": "AdditiveAttention"}
        if post_scale is None:
            entry["use_scale"] = False
        else:
            if post_scale.ndim != 1:
                return False
            weights.append(("scale", post_scale))
    else:
        if post_scale is not None or nxt is None or nxt.op_type != "Mul":
            return False
        weight = next((state.inits[i] for i in nxt.input if i in state.inits), None)
        if weight is None or weight.size != 1 or pre_scale.size != 1:
            return False
        entry = {"type": "Attention", "score_mode": "concat", "use_scale": True}
        weights += [("scale", pre_scale.reshape(())), ("concat_score_weight", weight.reshape(()))]
        nodes.append(nxt)
        current = nxt
    return _attention_end(state, current, entry, weights, nodes, query, key)


def _attention_end(state, current, entry, weights, nodes, query: Value, key: Value) -> bool:
    nxt = only_reader(state, current.output[0])
    if nxt is not None and nxt.op_type == "Sub":
        mask = const(state, nxt, 1)
        want = np.where(np.tril(np.ones((query.shape[0], key.shape[0]), bool)), 0.0, 1e9)
        if (
            mask is None
            or mask.shape != want.shape
            or not np.array_equal(mask, want.astype(np.float32))
        ):
            return False
        entry["use_causal_mask"] = True
        nodes.append(nxt)
        nxt = only_reader(state, nxt.output[0])
    if nxt is None or nxt.op_type != "Softmax" or _attrs(nxt).get("axis", -1) not in (-1, 2):
        return False
    nodes.append(nxt)
    matmul = only_reader(state, nxt.output[0], "MatMul")
    if matmul is None or matmul.input[0] != nxt.output[0] or matmul.input[1] not in state.values:
        return False
    value = state.values[matmul.input[1]]
    if value.layout != CL or len(value.shape) != 2:
        return False
    inputs = [query, value] + ([key] if key.tensor != value.tensor else [])
    state.skip.update(nid(n) for n in (*nodes, matmul))
    declared = _declared(entry, [v.shape for v in inputs])
    out = declared[0].output_shape([v.shape for v in inputs])
    _add(state, matmul, entry, inputs, CL, out, weights)
    return True


__all__ = ["FOLDABLE", "consumers", "convert", "fold_constant", "fold_shapes", "live_nodes"]
