"""The ONNX target: builds a checked ``onnx.ModelProto`` directly from specc's IR.

No framework is involved: the graph is written node by node with ``onnx.helper``. onnx is
imported lazily inside the functions, so ``import specc`` and validation never import it.

Layout. The model's inputs and outputs are channels-last, exactly as in the spec (and in
Keras), with a symbolic batch dimension ``batch`` in front. Inside the graph every tensor has
one of two layouts: channels-last (``cl``: N, ..., C) or channels-first (``cf``: N, C, ...,
what ONNX's Conv, pooling, Resize and BatchNormalization want). Convolutions, pooling,
UpSampling2D and channel BatchNormalization produce ``cf`` tensors; Dense, Flatten, Reshape
and LayerNormalization read ``cl`` tensors; element-wise layers, ZeroPadding2D and merges keep
the layout they are given. A Transpose is inserted only where a layer needs the other layout
(and reused by every reader). Tensors of rank <= 2 (batch included) have one layout.

Names. Each layer's output value is named after the layer, in the layout it was produced in
(see ``layer_layouts``); a model output produced channels-first is named ``<layer>/cf`` and
transposed to the channels-last graph output ``<layer>``. Every other value a lowering
creates is named ``<layer>/<what>`` (``Builder.tmp``), and initializers ``<layer>.<param>``:
spec names cannot contain ``/`` or ``.``, so no internal name can collide with a layer's.
Weights carry the Keras parameter name, rearranged into ONNX's layout as each layer's weight
declaration says (specc.weights.TRANSFORMS): Conv kernels OIHW / OIL, depthwise kernels
(cin*dm, 1, kh, kw), ConvTranspose kernels (cin, filters, kh, kw); Dense kernels stay
(in, out); BN and LN vectors are unchanged.

Per-layer lowerings live beside each layer (``Layer.onnx_lowering``), written against the
small :class:`Builder` API below.
"""

from __future__ import annotations

import math

import numpy as np

from ... import diagcodes as codes
from ...diagnostics import Diagnostic, SpecError
from ...ir import LayerIR, ModelIR
from ...layers import lowering as lw
from ...layers.base import Layer
from ...weights import declared, initial_weights, to_target

MIN_OPSET = 13
DEFAULT_OPSET = 17
CL, CF = "cl", "cf"


_ONNX_DTYPES = {
    "float32": 1,
    "uint8": 2,
    "int32": 6,
    "int64": 7,
    "bool": 9,
    "float16": 10,
    "float64": 11,
}


def _max_opset() -> int:
    import onnx

    return onnx.defs.onnx_opset_version()


# --------------------------------------------------------------------------- public API


def build_onnx(
    model: ModelIR,
    weights: dict[str, np.ndarray] | None = None,
    opset: int = DEFAULT_OPSET,
    seed: int = 0,
    *,
    source=None,
    check: bool = True,
):
    """Build an ``onnx.ModelProto`` for ``model``.

    ``weights`` is a canonical weights dict (``"<layer>/<param>"`` -> array in Keras layout);
    without it the weights are initialized from ``seed`` with each layer's initializers.
    Raises SpecError (nothing built) for an unsupported opset or layer, or weights that do
    not match the spec; with ``source`` (the parsed spec, ``Result.source``) the errors are
    located at the layer's line and column. With ``check`` the result is verified with the ONNX checker and strict
    shape inference against specc's shapes (a failure there is a bug in specc).
    """
    proto, payload = _build(model, weights, opset, seed, source, check)
    _attach(proto, payload)
    return proto


def _build(model, weights, opset, seed, source, check):
    """(model proto whose large initializers have no data yet, their arrays by name): built
    and checked without copying the weights around (the checker and shape inference
    serialize what they get; a >2 GB model could not be checked at all)."""
    from onnx import helper

    from ... import __version__

    at = _Locator(model, source)
    _refuse(model, opset, at)
    arrays = _weights_for(model, weights, seed, at)
    builder = Builder(model, opset, arrays)
    refused = builder.build()
    if refused:
        raise SpecError(
            [
                Diagnostic(
                    f"onnx target: {exc.message}",
                    **at(layer, exc.field),
                    hint=exc.hint,
                    code=codes.UNSUPPORTED,
                )
                for layer, exc in refused
            ]
        )

    inputs = [
        helper.make_tensor_value_info(t.name, _ONNX_DTYPES[t.dtype], ["batch", *t.shape])
        for t in model.inputs
    ]
    outputs = [
        helper.make_tensor_value_info(name, 1, ["batch", *model.shape_of(name)])
        for name in model.outputs
    ]
    graph = helper.make_graph(
        builder.nodes,
        model.name,
        inputs,
        outputs,
        initializer=builder.initializers,
        doc_string=model.description or "",
    )
    opset_ids = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opset_ids,
        producer_name="specc",
        producer_version=__version__,
        doc_string=model.description or "",
        ir_version=helper.find_min_ir_version_for(opset_ids),
    )
    helper.set_model_props(
        proto,
        {
            "specc.spec_name": model.name,
            "specc.version": __version__,
            "specc.spec_sha256": spec_sha256(model),
        },
    )
    if check:
        problems = verify_onnx(_without_payload(proto, builder.payload), model)
        if problems:
            raise RuntimeError(
                "specc built an ONNX graph that fails its own checks (a bug in specc):\n  "
                + "\n  ".join(problems)
            )
    return proto, builder.payload


def write_onnx(
    model: ModelIR,
    path,
    weights: dict[str, np.ndarray] | None = None,
    opset: int = DEFAULT_OPSET,
    seed: int = 0,
    *,
    text: bool = False,
    source=None,
) -> None:
    """Build and write ``model.onnx`` (or its text view with ``text``). Everything is built
    and checked before the file is opened, and the write is atomic: a refused request
    (SpecError) writes nothing."""
    from ...fsutil import atomic_write_text

    proto, payload = _build(model, weights, opset, seed, source, True)
    if text:
        atomic_write_text(path, onnx_text(proto))
    elif sum(a.nbytes for a in payload.values()) > EXTERNAL_DATA_THRESHOLD:
        _write_external(path, proto, payload)
    else:
        _write_streamed(path, proto, payload)


#: float initializers of at least this many elements are built without data and get their
#: bytes (raw_data) attached once, after the checks
_PAYLOAD_MIN_ELEMENTS = 1024
#: above this many bytes of weights the model is written in ONNX's external-data format (a
#: protobuf message cannot exceed 2 GiB): ``<file>.data`` beside the model holds them
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**26
_PENDING = "specc:data-not-attached"


def _placeholder(name: str, shape) -> object:
    """An initializer with name, type and shape whose data is marked external (the checker
    and shape inference need no more) until :func:`_attach` or :func:`_write_external`."""
    import onnx

    tensor = onnx.TensorProto()
    tensor.name = name
    tensor.data_type = onnx.TensorProto.FLOAT
    tensor.dims.extend(int(d) for d in shape)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", _PENDING
    return tensor


def _without_payload(proto, payload: dict[str, np.ndarray]):
    """A copy of ``proto`` for the checks: the initializers still without data become graph
    inputs of the same type and shape (what the checker and shape inference look at)."""
    import onnx
    from onnx import helper

    light = onnx.ModelProto()
    light.CopyFrom(proto)  # cheap: the large initializers hold no data yet
    keep = [t for t in light.graph.initializer if t.name not in payload]
    del light.graph.initializer[:]
    light.graph.initializer.extend(keep)
    light.graph.input.extend(
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(array.shape))
        for name, array in payload.items()
    )
    return light


def _raw(array: np.ndarray) -> bytes:
    """Little-endian bytes, as ONNX's raw_data stores them (numpy_helper.from_array)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _attach(proto, payload: dict[str, np.ndarray]) -> None:
    """Give every placeholder its data as raw_data: the same bytes as numpy_helper.from_array."""
    for tensor in proto.graph.initializer:
        array = payload.get(tensor.name)
        if array is not None:
            tensor.ClearField("external_data")
            tensor.ClearField("data_location")
            tensor.raw_data = _raw(array)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _split_fields(data: bytes, number: int) -> tuple[bytes, bytes]:
    """A serialized message cut where its fields numbered >= ``number`` begin (deterministic
    serialization writes fields in number order)."""
    pos = 0
    while pos < len(data):
        start = pos
        tag = 0
        shift = 0
        while True:
            byte = data[pos]
            pos += 1
            tag |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if tag >> 3 >= number:
            return data[:start], data[start:]
        wire = tag & 7
        if wire == 0:
            while data[pos] & 0x80:
                pos += 1
            pos += 1
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length = 0
            shift = 0
            while True:
                byte = data[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            pos += length
        else:  # groups: never in ONNX
            raise ValueError(f"unexpected wire type {wire}")
    return data, b""


def _streamed_pieces(proto, payload: dict[str, np.ndarray]) -> list:
    """The serialized model as a list of byte pieces, weights as views of the arrays: the
    same bytes as ``onnx_bytes`` of the attached model, without building them in memory.
    ModelProto.graph is field 7, GraphProto.initializer field 5, TensorProto.raw_data field 9
    (placeholders hold only fields 1, 2 and 8 besides their external marker)."""
    import onnx

    initializers: list[list] = []
    for tensor in proto.graph.initializer:
        array = payload.get(tensor.name)
        if array is None:
            body = [tensor.SerializeToString(deterministic=True)]
        else:
            head = onnx.TensorProto()
            head.CopyFrom(tensor)
            head.ClearField("external_data")
            head.ClearField("data_location")
            head_bytes = head.SerializeToString(deterministic=True)
            assert _split_fields(head_bytes, 9)[1] == b"", tensor.name
            data = memoryview(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")))
            data = data.cast("B")
            body = [head_bytes, b"\x4a" + _varint(len(data)), data]
        size = sum(len(piece) for piece in body)
        initializers.append([b"\x2a" + _varint(size), *body])
    graph = onnx.GraphProto()
    graph.CopyFrom(proto.graph)  # cheap: the large initializers hold no data
    graph.ClearField("initializer")
    before, after = _split_fields(graph.SerializeToString(deterministic=True), 6)
    graph_pieces = [before, *(p for pieces in initializers for p in pieces), after]
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    model.ClearField("graph")
    head, tail = _split_fields(model.SerializeToString(deterministic=True), 8)
    size = sum(len(piece) for piece in graph_pieces)
    return [head, b"\x3a" + _varint(size), *graph_pieces, tail]


def _write_streamed(path, proto, payload: dict[str, np.ndarray]) -> None:
    """The single-file model written piece by piece from the arrays (fsutil's safe write:
    atomic, devices written through); raises fsutil.WriteError."""
    from ...fsutil import atomic_write_bytes

    atomic_write_bytes(path, _streamed_pieces(proto, payload))


def _write_external(path, proto, payload: dict[str, np.ndarray]) -> None:
    """The model with its large initializers in ``<name>.data`` (ONNX external data: location
    relative to the model, offsets aligned to 4 KiB), each file written atomically; the
    data file first, so the model never names data that is not there."""
    import os
    import tempfile
    from pathlib import Path

    from ...fsutil import atomic_write_bytes

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    data_name = f"{path.name}.data"
    from ...fsutil import temp_prefix

    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(data_name), suffix=".tmp", dir=folder)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as handle:
            offset = 0
            for tensor in proto.graph.initializer:
                array = payload.get(tensor.name)
                if array is None:
                    continue
                pad = -offset % 4096
                handle.write(b"\0" * pad)
                offset += pad
                data = _raw(array)
                handle.write(data)
                del tensor.external_data[:]
                for key, value in (
                    ("location", data_name),
                    ("offset", str(offset)),
                    ("length", str(len(data))),
                ):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
                offset += len(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / data_name)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    atomic_write_bytes(path, onnx_bytes(proto))


def onnx_bytes(proto) -> bytes:
    """The serialized model; the same input gives the same bytes."""
    return proto.SerializeToString(deterministic=True)


def onnx_text(proto, max_values: int = 16) -> str:
    """The model in ONNX's text syntax (``onnx.printer``), for reviews and diffs.

    Initializers with more than ``max_values`` elements are shown by type and shape only.
    """
    import onnx

    view = onnx.ModelProto()
    view.CopyFrom(proto)
    for tensor in view.graph.initializer:
        if math.prod(tensor.dims) > max_values:
            for name in (
                "raw_data",
                "float_data",
                "int64_data",
                "int32_data",
                "double_data",
                "external_data",
            ):
                tensor.ClearField(name)
            tensor.data_location = onnx.TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key = "location"
            entry.value = f"{math.prod(tensor.dims)} values not shown"
    return onnx.printer.to_text(view).rstrip() + "\n"


def spec_sha256(model: ModelIR) -> str:
    """sha256 of the canonical spec JSON (``model.to_dict()``, sorted keys)."""
    return model.sha256()


def layer_layouts(model: ModelIR) -> dict[str, str]:
    """The layout ('cl' or 'cf') of each layer's output value in the built graph."""
    layouts = {t.name: CL for t in model.inputs}
    for layer in model.layers:
        layouts[layer.name] = _out_layout(layer, [layouts[i] for i in layer.inputs])
    return {layer.name: layouts[layer.name] for layer in model.layers}


def output_value(layer_name: str, layout: str, is_output: bool) -> str:
    """The graph value holding a layer's output in the layout it was produced in."""
    return f"{layer_name}/cf" if is_output and layout == CF else layer_name


def verify_onnx(proto, model: ModelIR) -> list[str]:
    """Run ``onnx.checker`` (full check) and strict shape inference; compare every layer's
    output value with specc's shape (in the layout the graph stores it). Returns problems."""
    import onnx

    problems: list[str] = []
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return [f"onnx.checker: {exc}"]
    # infer from the inputs alone: forget the declared output shapes
    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    for value in bare.graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(bare, strict_mode=True)
    except Exception as exc:  # noqa: BLE001
        return [f"onnx.shape_inference (strict): {exc}"]
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        if value.type.tensor_type.HasField("shape"):
            shapes[value.name] = tuple(
                d.dim_param
                if d.HasField("dim_param")
                else d.dim_value
                if d.HasField("dim_value")
                else None
                for d in value.type.tensor_type.shape.dim
            )
    layouts = layer_layouts(model)
    outputs = set(model.outputs)
    for layer in model.layers:
        want_cl = ("batch", *layer.output_shape)
        checks = []
        if layouts[layer.name] == CF:
            value = output_value(layer.name, CF, layer.name in outputs)
            checks.append((value, _to_cf(want_cl)))
            if layer.name in outputs:
                checks.append((layer.name, want_cl))
        else:
            checks.append((layer.name, want_cl))
        for value, want in checks:
            got = shapes.get(value)
            if got != want:
                problems.append(f"{value}: shape inference gives {got}, specc says {want}")
    return problems


# --------------------------------------------------------------------------- refusals


def _where(layer: LayerIR) -> str:
    return f"layers[{layer.index}] {layer.type} '{layer.name}'"


class _Locator:
    """Diagnostic fields for a layer (or the spec): the file, and with the parsed source
    the line and column of the layer in it."""

    def __init__(self, model: ModelIR, source):
        self.model = model
        self.source = source if source is not None else model.source

    def __call__(self, layer: LayerIR | None, field: str | None = None) -> dict:
        where = _where(layer) if layer is not None else None
        if self.source is None or layer is None:
            file = self.source.file if self.source is not None else self.model.file
            return {"file": file, "layer": where}
        path = ("layers", layer.index) + ((field,) if field else ())
        located = Diagnostic.at(self.source, path, codes.ONNX_UNSUPPORTED, "")
        fields = ("file", "line", "column", "path", "excerpt", "span")
        return {name: getattr(located, name) for name in fields} | {"layer": where}


def _refuse(model: ModelIR, opset: int, at: _Locator) -> None:
    """Raise SpecError for an opset or layer the target cannot express, before building."""
    top = _max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise SpecError(
            [
                Diagnostic(
                    f"opset {opset!r} is not supported: the ONNX target builds opsets "
                    f"{MIN_OPSET} to {top} (default {DEFAULT_OPSET})",
                    **at(None),
                    code=codes.ONNX_OPSET,
                    hint=f"use --opset {DEFAULT_OPSET}",
                )
            ]
        )
    problems = []
    for layer in model.layers:
        if not lowers(layer.spec):
            problems.append(
                Diagnostic(
                    f"{layer.type} has no ONNX lowering (opset {opset})",
                    **at(layer),
                    code=codes.ONNX_UNSUPPORTED,
                )
            )
            continue
        need = layer.spec.onnx_min_opset
        if need and opset < need[0]:
            problems.append(
                Diagnostic(
                    f"{need[1]} needs opset >= {need[0]}, the model is built for opset {opset}",
                    **at(layer),
                    code=codes.ONNX_OPSET,
                    hint=f"use --opset {max(need[0], DEFAULT_OPSET)}",
                )
            )
    for tensor in model.inputs:
        if tensor.dtype not in _ONNX_DTYPES:
            problems.append(
                Diagnostic(
                    f"input '{tensor.name}' has dtype {tensor.dtype}, which the ONNX target "
                    "does not support",
                    **at(None),
                    code=codes.ONNX_UNSUPPORTED,
                )
            )
    if problems:
        raise SpecError(problems)


def lowers(spec: Layer) -> bool:
    """Whether the layer type has an ONNX lowering (it may still refuse some options)."""
    return type(spec).onnx_lowering is not Layer.onnx_lowering


# --------------------------------------------------------------------------- weights


def _weights_for(
    model: ModelIR, weights: dict | None, seed: int, at: _Locator | None = None
) -> dict[str, np.ndarray]:
    """The canonical weights the graph uses: validated ``weights`` or a seeded init."""
    at = at or _Locator(model, None)
    expected = {f"{layer.name}/{w.name}": (layer, w) for layer, w in declared(model)}
    if weights is None:
        return initial_weights(model, seed)
    problems = []
    arrays = {}
    for key, (layer, param) in expected.items():
        want = param.shape
        if key not in weights:
            problems.append(
                Diagnostic(
                    f"the weights have no '{key}' (expected shape {_fmt(want)}, Keras layout "
                    f"{param.layout})",
                    **at(layer),
                    code=codes.ONNX_WEIGHTS,
                )
            )
            continue
        value = np.asarray(weights[key])
        if value.dtype.kind != "f":
            problems.append(
                Diagnostic(
                    f"weight '{key}' has dtype {value.dtype}, expected a floating-point array",
                    **at(layer),
                    code=codes.ONNX_WEIGHTS,
                )
            )
        elif tuple(value.shape) != want:
            problems.append(
                Diagnostic(
                    f"weight '{key}' has shape {_fmt(value.shape)}, expected {_fmt(want)} "
                    f"(Keras layout {param.layout})",
                    **at(layer),
                    code=codes.ONNX_WEIGHTS,
                )
            )
        else:
            arrays[key] = value.astype(np.float32)
    for key in sorted(set(weights) - set(expected)):
        problems.append(
            Diagnostic(
                f"the weights have '{key}', which is not a weight of this spec",
                **at(None),
                code=codes.ONNX_WEIGHTS,
                hint="is the weights file for another spec?",
            )
        )
    if problems:
        raise SpecError(problems)
    return arrays


def _fmt(shape) -> str:
    dims = [str(int(d)) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


# --------------------------------------------------------------------------- layouts


def _to_cf(shape: tuple) -> tuple:
    """A channels-last shape (batch first) in channels-first order."""
    if len(shape) <= 2:
        return tuple(shape)
    return (shape[0], shape[-1], *shape[1:-1])


def _perm(rank: int, layout: str) -> list[int]:
    """Transpose permutation from the other layout into ``layout`` (full rank)."""
    if layout == CF:  # cl -> cf
        return [0, rank - 1, *range(1, rank - 1)]
    return [0, *range(2, rank), 1]  # cf -> cl


def _out_layout(layer: LayerIR, in_layouts: list[str]) -> str:
    rank = len(layer.output_shape)
    if rank <= 1:
        return CL
    return layer.spec.onnx_out_layout(rank, in_layouts)


# --------------------------------------------------------------------------- the builder


class Builder:
    """What a layer's ``onnx_lowering(b, layer, out, layout)`` writes the graph with."""

    def __init__(self, model: ModelIR, opset: int, weights: dict[str, np.ndarray]):
        self.model = model
        self.opset = opset
        self.weights = weights
        self.nodes: list = []
        self.initializers: list = []
        self.payload: dict[str, np.ndarray] = {}  # initializer name -> data not yet attached
        self._const_names: set[str] = set()
        self.values: dict[str, tuple[str, str, int]] = {}  # tensor -> (value, layout, rank)
        self.converted: dict[tuple[str, str], str] = {}
        #: Embedding (mask_zero) -> its Keras mask, a bool (batch, steps) value
        self.masks: dict[str, str] = {}

    # -- emitting ----------------------------------------------------------------------
    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def const(self, name: str, value, dtype: str = "float32") -> str:
        """An initializer (created once per name); ``dtype`` is a numpy dtype name."""
        from onnx import numpy_helper

        if name not in self._const_names:
            self._const_names.add(name)
            array = np.asarray(value, dtype)
            if array.dtype == np.float32 and array.size >= _PAYLOAD_MIN_ELEMENTS:
                self.initializers.append(_placeholder(name, array.shape))
                self.payload[name] = array
            else:
                self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, layer: LayerIR, param: str) -> str:
        """The initializer of a declared weight, in the layout its declaration gives ONNX."""
        declaration = next(w for w in layer.weights if w.name == param)
        array = to_target(self.weights[f"{layer.name}/{param}"], declaration, "onnx")
        return self.const(f"{layer.name}.{param}", array)

    @staticmethod
    def tmp(layer: LayerIR, what: str) -> str:
        """The name of an intermediate value of ``layer`` (a namespace spec names can't reach)."""
        return f"{layer.name}/{what}"

    def shape_of(self, name: str) -> tuple[int, ...]:
        return self.model.shape_of(name)

    def get(self, tensor: str, layout: str) -> str:
        """The value of a spec tensor (input or layer) in ``layout``."""
        value, have, rank = self.values[tensor]
        if rank <= 2 or have == layout:
            return value
        key = (tensor, layout)
        if key not in self.converted:
            self.converted[key] = self.node(
                "Transpose", [value], f"{tensor}/{layout}", perm=_perm(rank, layout)
            )
        return self.converted[key]

    # -- the graph ---------------------------------------------------------------------
    def build(self) -> list[tuple[LayerIR, lw.Unsupported]]:
        """Lower every layer; returns the refusals (layer, reason), having lowered the rest."""
        refused = []
        for tensor in self.model.inputs:
            rank = len(tensor.shape) + 1
            value = tensor.name
            if tensor.dtype != "float32":
                value = self.node("Cast", [tensor.name], f"{tensor.name}/float", to=1)
            self.values[tensor.name] = (value, CL, rank)
        outputs = set(self.model.outputs)
        from ...infer import input_masks, keras_runtime_mask_problems

        masks = input_masks(self.model)
        runtime = keras_runtime_mask_problems(self.model) if masks else {}
        for layer in self.model.layers:
            rank = len(layer.output_shape) + 1
            layout = _out_layout(layer, [self.values[i][1] for i in layer.inputs])
            if rank <= 2:
                layout = CL
            final = output_value(layer.name, layout, layer.name in outputs and rank > 2)
            try:
                in_masks = masks.get(layer.name, ())
                if in_masks:
                    lw.check_masks(layer, in_masks, runtime.get(layer.name), "ONNX")
                if in_masks and layer.spec.keras_masking == "use":
                    values = tuple(None if m is None else self.masks.get(m) for m in in_masks)
                    if any(v is None for v, m in zip(values, in_masks) if m is not None):
                        raise lw.Unsupported("its input's mask was not built (see above)")
                    layer.spec.onnx_mask_lowering(self, layer, final, layout, values)
                else:
                    layer.spec.onnx_lowering(self, layer, final, layout)
            except lw.Unsupported as exc:
                refused.append((layer, exc))
            self.values[layer.name] = (final, layout, rank)
            if final != layer.name:
                self.converted[(layer.name, CL)] = self.node(
                    "Transpose", [final], layer.name, perm=_perm(rank, CL)
                )
        return refused

    def in_rank(self, layer: LayerIR, i: int = 0) -> int:
        return self.values[layer.inputs[i]][2]

    # -- activations -------------------------------------------------------------------
    def activation(self, name: str | None, x: str, out: str, layout: str, rank: int) -> str:
        """A Keras activation string's nodes (the one table: layers.lowering.ACTIVATIONS)."""
        return lw.onnx_activation(self, name, x, out, layout, rank)

    def then_activation(self, act: str | None, pre_out: str, out: str, emit, layout, rank):
        """Emit the main op (``emit(name)``) then the activation, ending in ``out``."""
        if act in (None, "linear"):
            return emit(out)
        y = emit(pre_out)
        return self.activation(act, y, out, layout, rank)


# --------------------------------------------------------------------------- lowerings
# Each layer's ONNX lowering is its ``onnx_lowering`` method (specc/layers/).
