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
(see ``layer_layouts``); a model output produced channels-first is named ``<layer>__cf`` and
transposed to the channels-last graph output ``<layer>``. Weights are initializers named
``<layer>.<param>`` with the Keras parameter name, rearranged into ONNX's layout: Conv
kernels OIHW / OIL, depthwise kernels (cin*dm, 1, kh, kw), ConvTranspose kernels
(cin, filters, kh, kw); Dense kernels stay (in, out); BN and LN vectors are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .diagnostics import Diagnostic, SpecError
from .ir import LayerIR, ModelIR
from .layers.base import normalize_axis
from .layers.lowering import keras_fans

MIN_OPSET = 13
DEFAULT_OPSET = 17
CL, CF = "cl", "cf"

#: layers that need a newer opset than MIN_OPSET, and why
_OPSET_NEEDS = {"LayerNormalization": (17, "the LayerNormalization operator")}

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

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

    from . import __version__

    at = _Locator(model, source)
    _refuse(model, opset, at)
    arrays = _weights_for(model, weights, seed, at)
    builder = _Builder(model, opset, arrays)
    builder.build()

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
    from .fsutil import atomic_write_text

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
    """The single-file model written piece by piece from the arrays (atomically)."""
    _atomic_write_pieces(path, _streamed_pieces(proto, payload))


def _atomic_write_pieces(path, pieces) -> None:
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_external(path, proto, payload: dict[str, np.ndarray]) -> None:
    """The model with its large initializers in ``<name>.data`` (ONNX external data: location
    relative to the model, offsets aligned to 4 KiB), each file written atomically; the
    data file first, so the model never names data that is not there."""
    import os
    import tempfile
    from pathlib import Path

    from .fsutil import atomic_write_bytes

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    data_name = f"{path.name}.data"
    fd, tmp = tempfile.mkstemp(prefix=f".{data_name}.", suffix=".tmp", dir=folder)
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
    return hashlib.sha256(json.dumps(model.to_dict(), sort_keys=True).encode()).hexdigest()


def layer_layouts(model: ModelIR) -> dict[str, str]:
    """The layout ('cl' or 'cf') of each layer's output value in the built graph."""
    layouts = {t.name: CL for t in model.inputs}
    for layer in model.layers:
        layouts[layer.name] = _out_layout(layer, [layouts[i] for i in layer.inputs])
    return {layer.name: layouts[layer.name] for layer in model.layers}


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
            value = f"{layer.name}__cf" if layer.name in outputs else layer.name
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
        self.source = source

    def __call__(self, layer: LayerIR | None) -> dict:
        file = self.source.file if self.source is not None else self.model.file
        line, column = 1, 1
        if self.source is not None and layer is not None:
            line, column = self.source.locate(("layers", layer.index))
        return {
            "file": file,
            "line": line,
            "column": column,
            "layer": _where(layer) if layer is not None else None,
        }


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
                    code="onnx-opset",
                    hint=f"use --opset {DEFAULT_OPSET}",
                )
            ]
        )
    problems = []
    for layer in model.layers:
        if layer.type not in _LOWERINGS:
            problems.append(
                Diagnostic(
                    f"{layer.type} has no ONNX lowering (opset {opset})",
                    **at(layer),
                    code="onnx-unsupported",
                )
            )
            continue
        need = _OPSET_NEEDS.get(layer.type)
        if need and opset < need[0]:
            problems.append(
                Diagnostic(
                    f"{need[1]} needs opset >= {need[0]}, the model is built for opset {opset}",
                    **at(layer),
                    code="onnx-opset",
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
                    code="onnx-unsupported",
                )
            )
    if problems:
        raise SpecError(problems)


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class _Param:
    name: str  # Keras parameter name
    shape: tuple[int, ...]  # Keras layout
    init: str  # Keras initializer name
    layout: str  # how the Keras layout reads, for messages


def _params(layer: LayerIR, in_shape: tuple[int, ...]) -> list[_Param]:
    """The canonical weights of a layer, in Keras order and layout."""
    spec = layer.spec
    t = layer.type
    out: list[_Param] = []
    if t == "Dense":
        out.append(
            _Param("kernel", (in_shape[-1], spec.units), spec.kernel_initializer, "(in, units)")
        )
        bias = spec.units
    elif t in ("Conv1D", "Conv2D"):
        cin = in_shape[-1] // getattr(spec, "groups", 1)
        shape = (*spec.kernel_size, cin, spec.filters)
        what = (
            "(kernel, in_channels, filters)"
            if t == "Conv1D"
            else "(kh, kw, in_channels/groups, filters)"
        )
        out.append(_Param("kernel", shape, spec.kernel_initializer, what))
        bias = spec.filters
    elif t == "DepthwiseConv2D":
        shape = (*spec.kernel_size, in_shape[-1], spec.depth_multiplier)
        # Keras 3 names this variable 'kernel' (specc.weights follows it)
        out.append(
            _Param(
                "kernel",
                shape,
                spec.depthwise_initializer,
                "(kh, kw, in_channels, depth_multiplier)",
            )
        )
        bias = in_shape[-1] * spec.depth_multiplier
    elif t == "SeparableConv2D":
        mid = in_shape[-1] * spec.depth_multiplier
        dw = (*spec.kernel_size, in_shape[-1], spec.depth_multiplier)
        out.append(
            _Param(
                "depthwise_kernel",
                dw,
                spec.depthwise_initializer,
                "(kh, kw, in_channels, depth_multiplier)",
            )
        )
        out.append(
            _Param(
                "pointwise_kernel",
                (1, 1, mid, spec.filters),
                spec.pointwise_initializer,
                "(1, 1, in_channels*depth_multiplier, filters)",
            )
        )
        bias = spec.filters
    elif t == "Conv2DTranspose":
        shape = (*spec.kernel_size, spec.filters, in_shape[-1])
        out.append(
            _Param("kernel", shape, spec.kernel_initializer, "(kh, kw, filters, in_channels)")
        )
        bias = spec.filters
    elif t in ("BatchNormalization", "LayerNormalization"):
        n = (in_shape[normalize_axis(spec.axis, len(in_shape))],)
        if spec.scale:
            out.append(_Param("gamma", n, "ones", "(channels,)"))
        if spec.center:
            out.append(_Param("beta", n, "zeros", "(channels,)"))
        if t == "BatchNormalization":
            out.append(_Param("moving_mean", n, "zeros", "(channels,)"))
            out.append(_Param("moving_variance", n, "ones", "(channels,)"))
        return out
    else:
        return out
    if spec.use_bias:
        out.append(_Param("bias", (bias,), spec.bias_initializer, "(units,)"))
    return out


_INIT_CHUNK = 1 << 20


def _initialize(key: str, param: _Param, seed: int) -> np.ndarray:
    """A numpy-only seeded Keras-style initializer; each weight has its own stream."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    shape = param.shape
    if param.init == "zeros":
        return np.zeros(shape, np.float32)
    if param.init == "ones":
        return np.ones(shape, np.float32)
    fan_in, fan_out = keras_fans(shape)
    family, dist = param.init.split("_")
    scale = {"glorot": 2.0 / (fan_in + fan_out), "he": 2.0 / fan_in, "lecun": 1.0 / fan_in}[family]
    if dist == "uniform":
        limit = math.sqrt(3.0 * scale)
        # the same stream as rng.uniform(-limit, limit, shape) (one double per value), drawn
        # in chunks: no float64 copy of a large weight (VGG16's fc1 would take 822 MB)
        out = np.empty(math.prod(shape), np.float32)
        for start in range(0, out.size, _INIT_CHUNK):
            stop = min(start + _INIT_CHUNK, out.size)
            out[start:stop] = rng.uniform(-limit, limit, stop - start)
        return out.reshape(shape)
    std = math.sqrt(scale) / 0.87962566103423978  # truncated at 2 standard deviations
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2.0
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2.0
    return (values * std).astype(np.float32)


def _weights_for(
    model: ModelIR, weights: dict | None, seed: int, at: _Locator | None = None
) -> dict[str, np.ndarray]:
    at = at or _Locator(model, None)
    """The canonical weights the graph uses: validated ``weights`` or a seeded init."""
    expected: dict[str, tuple[LayerIR, _Param]] = {}
    for layer in model.layers:
        in_shape = model.shape_of(layer.inputs[0])
        for param in _params(layer, in_shape):
            expected[f"{layer.name}/{param.name}"] = (layer, param)
    if weights is None:
        return {key: _initialize(key, param, seed) for key, (_, param) in expected.items()}
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
                    code="onnx-weights",
                )
            )
            continue
        value = np.asarray(weights[key])
        if value.dtype.kind != "f":
            problems.append(
                Diagnostic(
                    f"weight '{key}' has dtype {value.dtype}, expected a floating-point array",
                    **at(layer),
                    code="onnx-weights",
                )
            )
        elif tuple(value.shape) != want:
            problems.append(
                Diagnostic(
                    f"weight '{key}' has shape {_fmt(value.shape)}, expected {_fmt(want)} "
                    f"(Keras layout {param.layout})",
                    **at(layer),
                    code="onnx-weights",
                )
            )
        else:
            arrays[key] = value.astype(np.float32)
    for key in sorted(set(weights) - set(expected)):
        problems.append(
            Diagnostic(
                f"the weights have '{key}', which is not a weight of this spec",
                **at(None),
                code="onnx-weights",
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


_CF_LAYERS = {
    "Conv1D",
    "Conv2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "Conv2DTranspose",
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
}
_CL_LAYERS = {"Dense", "Flatten", "Reshape", "LayerNormalization"}


def _bn_on_channels(layer: LayerIR, rank: int) -> bool:
    return normalize_axis(layer.spec.axis, rank) == rank - 1


def _out_layout(layer: LayerIR, in_layouts: list[str]) -> str:
    if len(layer.output_shape) <= 1:
        return CL
    if layer.type in _CF_LAYERS:
        return CF
    if layer.type in _CL_LAYERS:
        return CL
    if layer.type == "UpSampling2D" and layer.spec.interpolation == "bilinear":
        return CF
    if layer.type == "BatchNormalization":
        return CF if _bn_on_channels(layer, len(layer.output_shape)) else CL
    return CF if CF in in_layouts else CL


def _axis(axis: int, rank: int, layout: str) -> int:
    """A Keras axis (batch = 0) of a rank-``rank`` sample -> the ONNX axis in ``layout``."""
    k = normalize_axis(axis, rank)  # index into the sample shape
    if layout == CL or rank <= 1:
        return k + 1
    return 1 if k == rank - 1 else k + 2


def _same_pads(sizes, kernel, strides, dilation) -> tuple[list[int], list[int]]:
    """TF 'same' padding: the odd pixel goes at the end (bottom/right)."""
    begin, end = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilation):
        effective = (k - 1) * d + 1
        total = max((math.ceil(size / s) - 1) * s + effective - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin, end


# --------------------------------------------------------------------------- the builder


class _Builder:
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

    # -- emitting ----------------------------------------------------------------------
    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def const(self, name: str, value, dtype=np.float32) -> str:
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

    def weight(self, layer: LayerIR, param: str, transform: Callable | None = None) -> str:
        array = self.weights[f"{layer.name}/{param}"]
        if transform is not None:
            array = transform(array)
        return self.const(f"{layer.name}.{param}", np.ascontiguousarray(array))

    def get(self, tensor: str, layout: str) -> str:
        """The value of a spec tensor (input or layer) in ``layout``."""
        value, have, rank = self.values[tensor]
        if rank <= 2 or have == layout:
            return value
        key = (tensor, layout)
        if key not in self.converted:
            self.converted[key] = self.node(
                "Transpose", [value], f"{tensor}__{layout}", perm=_perm(rank, layout)
            )
        return self.converted[key]

    # -- the graph ---------------------------------------------------------------------
    def build(self) -> None:
        for tensor in self.model.inputs:
            rank = len(tensor.shape) + 1
            value = tensor.name
            if tensor.dtype != "float32":
                value = self.node("Cast", [tensor.name], f"{tensor.name}__float", to=1)
            self.values[tensor.name] = (value, CL, rank)
        outputs = set(self.model.outputs)
        for layer in self.model.layers:
            rank = len(layer.output_shape) + 1
            layout = _out_layout(layer, [self.values[i][1] for i in layer.inputs])
            if rank <= 2:
                layout = CL
            final = layer.name
            if layer.name in outputs and layout == CF and rank > 2:
                final = f"{layer.name}__cf"
            _LOWERINGS[layer.type](self, layer, final, layout)
            self.values[layer.name] = (final, layout, rank)
            if final != layer.name:
                self.converted[(layer.name, CL)] = self.node(
                    "Transpose", [final], layer.name, perm=_perm(rank, CL)
                )

    def in_rank(self, layer: LayerIR, i: int = 0) -> int:
        return self.values[layer.inputs[i]][2]

    # -- activations -------------------------------------------------------------------
    def activation(self, name: str | None, x: str, out: str, layout: str, rank: int) -> str:
        if name in (None, "linear"):
            return self.node("Identity", [x], out)
        simple = {
            "relu": "Relu",
            "sigmoid": "Sigmoid",
            "tanh": "Tanh",
            "softplus": "Softplus",
        }
        if name in simple:
            return self.node(simple[name], [x], out)
        if name == "softmax":  # keras.activations.softmax: the last (channel) axis
            return self.node("Softmax", [x], out, axis=1 if layout == CF and rank > 2 else -1)
        if name == "leaky_relu":  # keras.activations.leaky_relu: negative_slope=0.2
            return self.node("LeakyRelu", [x], out, alpha=0.2)
        if name == "elu":
            return self.node("Elu", [x], out, alpha=1.0)
        if name == "selu":
            return self.node("Selu", [x], out, alpha=_SELU_ALPHA, gamma=_SELU_SCALE)
        if name in ("swish", "silu"):
            s = self.node("Sigmoid", [x], f"{out}__sigmoid")
            return self.node("Mul", [x, s], out)
        if name == "gelu":  # keras.activations.gelu: approximate=False (erf)
            if self.opset >= 20:
                return self.node("Gelu", [x], out, approximate="none")
            t = self.node("Div", [x, self.const("const.sqrt2", math.sqrt(2.0))], f"{out}__div")
            t = self.node("Erf", [t], f"{out}__erf")
            t = self.node("Add", [t, self.const("const.one", 1.0)], f"{out}__add")
            t = self.node("Mul", [x, t], f"{out}__mul")
            return self.node("Mul", [t, self.const("const.half", 0.5)], out)
        raise AssertionError(f"activation {name!r} has no ONNX lowering")

    def then_activation(self, act: str | None, pre_out: str, out: str, emit, layout, rank):
        """Emit the main op (``emit(name)``) then the activation, ending in ``out``."""
        if act in (None, "linear"):
            return emit(out)
        y = emit(pre_out)
        return self.activation(act, y, out, layout, rank)


# --------------------------------------------------------------------------- lowerings


def _conv_pads(layer: LayerIR, sizes) -> list[int]:
    spec = layer.spec
    if spec.padding == "valid":
        return [0] * (2 * len(sizes))
    begin, end = _same_pads(sizes, spec.kernel_size, spec.strides, spec.dilation_rate)
    return begin + end


def _conv(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    spec = layer.spec
    in_shape = b.model.shape_of(layer.inputs[0])
    rank = len(in_shape) + 1
    x = b.get(layer.inputs[0], CF)
    sizes, cin = in_shape[:-1], in_shape[-1]
    pads = _conv_pads(layer, sizes)
    common = dict(
        kernel_shape=list(spec.kernel_size),
        strides=list(spec.strides),
        dilations=list(spec.dilation_rate),
        pads=pads,
    )
    bias = [b.weight(layer, "bias")] if spec.use_bias else []
    move = (2, 1, 0) if layer.type == "Conv1D" else (3, 2, 0, 1)

    if layer.type in ("Conv1D", "Conv2D"):
        w = b.weight(layer, "kernel", lambda k: k.transpose(move))
        group = getattr(spec, "groups", 1)

        def emit(name):
            return b.node("Conv", [x, w, *bias], name, group=group, **common)

    elif layer.type == "DepthwiseConv2D":
        dm = spec.depth_multiplier
        w = b.weight(
            layer,
            "kernel",
            lambda k: k.transpose(2, 3, 0, 1).reshape(cin * dm, 1, *spec.kernel_size),
        )

        def emit(name):
            return b.node("Conv", [x, w, *bias], name, group=cin, **common)

    elif layer.type == "SeparableConv2D":
        dm = spec.depth_multiplier
        dw = b.weight(
            layer,
            "depthwise_kernel",
            lambda k: k.transpose(2, 3, 0, 1).reshape(cin * dm, 1, *spec.kernel_size),
        )
        pw = b.weight(layer, "pointwise_kernel", lambda k: k.transpose(3, 2, 0, 1))

        def emit(name):
            mid = b.node("Conv", [x, dw], f"{layer.name}__depthwise", group=cin, **common)
            ones = [1] * len(sizes)
            return b.node(
                "Conv",
                [mid, pw, *bias],
                name,
                kernel_shape=ones,
                strides=ones,
                dilations=ones,
                pads=[0] * (2 * len(sizes)),
                group=1,
            )

    else:  # Conv2DTranspose: Keras's output size; TF crops the odd pixel at the end
        w = b.weight(layer, "kernel", lambda k: k.transpose(3, 2, 0, 1))
        begin, end, extra = [], [], []
        for k, s, d in zip(spec.kernel_size, spec.strides, spec.dilation_rate):
            effective = (k - 1) * d + 1
            total = max(effective - s, 0) if spec.padding == "same" else 0
            begin.append(total // 2)
            end.append(total - total // 2)
            extra.append(max(s - effective, 0))
        common["pads"] = begin + end

        def emit(name):
            return b.node("ConvTranspose", [x, w, *bias], name, output_padding=extra, **common)

    b.then_activation(spec.activation, f"{layer.name}__conv", out, emit, CF, rank)


def _pool(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    spec = layer.spec
    in_shape = b.model.shape_of(layer.inputs[0])
    x = b.get(layer.inputs[0], CF)
    strides = spec.effective_strides
    ones = (1,) * len(strides)
    if spec.padding == "same":
        begin, end = _same_pads(in_shape[:-1], spec.pool_size, strides, ones)
        pads = begin + end
    else:
        pads = [0] * (2 * len(strides))
    attrs = dict(kernel_shape=list(spec.pool_size), strides=list(strides), pads=pads)
    if layer.type.startswith("Max"):
        b.node("MaxPool", [x], out, **attrs)
    else:  # Keras/TF 'same' average pooling divides by the number of real pixels
        b.node("AveragePool", [x], out, count_include_pad=0, **attrs)


def _global_pool(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    x = b.get(layer.inputs[0], CF)
    op = "GlobalMaxPool" if "Max" in layer.type else "GlobalAveragePool"
    if layer.spec.keepdims:
        b.node(op, [x], out)
    else:
        y = b.node(op, [x], f"{layer.name}__pooled")
        b.node("Flatten", [y], out, axis=1)


def _dense(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    spec = layer.spec
    x = b.get(layer.inputs[0], CL)
    rank = b.in_rank(layer)
    w = b.weight(layer, "kernel")
    bias = [b.weight(layer, "bias")] if spec.use_bias else []

    def emit(name):
        if rank == 2:
            return b.node("Gemm", [x, w, *bias], name)
        if not bias:
            return b.node("MatMul", [x, w], name)
        y = b.node("MatMul", [x, w], f"{layer.name}__matmul")
        return b.node("Add", [y, bias[0]], name)

    b.then_activation(spec.activation, f"{layer.name}__dense", out, emit, CL, rank)


def _flatten(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    # channels-last order, as Keras: the Dense weights after it carry over unchanged
    b.node("Flatten", [b.get(layer.inputs[0], CL)], out, axis=1)


def _reshape(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    shape = b.const(f"{layer.name}.shape", [0, *layer.output_shape], np.int64)
    b.node("Reshape", [b.get(layer.inputs[0], CL), shape], out)


def _identity(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    # Dropout is the identity at inference
    b.node("Identity", [b.get(layer.inputs[0], layout)], out)


def _activation_layer(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    x = b.get(layer.inputs[0], layout)
    b.activation(layer.spec.activation, x, out, layout, b.in_rank(layer))


def _relu(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    """keras.layers.ReLU: x if x > threshold else 0, clipped to max_value, minus
    negative_slope * relu(threshold - x) (keras.activations.relu)."""
    spec = layer.spec
    x = b.get(layer.inputs[0], layout)
    slope, cap, threshold = spec.negative_slope, spec.max_value, spec.threshold
    name = layer.name
    if slope != 0 and cap is None and threshold == 0:
        b.node("LeakyRelu", [x], out, alpha=slope)
        return
    last = slope == 0 and cap is None
    if threshold != 0:
        t = b.const(f"{name}.threshold", threshold)
        mask = b.node("Greater", [x, t], f"{name}__above")
        mask = b.node("Cast", [mask], f"{name}__mask", to=1)
        pos = b.node("Mul", [x, mask], out if last else f"{name}__positive")
    elif cap is not None:
        pos = x
    else:
        pos = b.node("Relu", [x], out if last else f"{name}__positive")
    if cap is not None:
        lo, hi = b.const(f"{name}.min", 0.0), b.const(f"{name}.max", cap)
        pos = b.node("Clip", [pos, lo, hi], out if slope == 0 else f"{name}__clipped")
    if slope != 0:
        if threshold != 0:
            neg = b.node("Sub", [b.const(f"{name}.threshold", threshold), x], f"{name}__below")
        else:
            neg = b.node("Neg", [x], f"{name}__below")
        neg = b.node("Relu", [neg], f"{name}__negative")
        neg = b.node("Mul", [neg, b.const(f"{name}.negative_slope", slope)], f"{name}__scaled")
        b.node("Sub", [pos, neg], out)


def _leaky_relu(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    b.node("LeakyRelu", [b.get(layer.inputs[0], layout)], out, alpha=layer.spec.negative_slope)


def _softmax(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    rank = len(layer.output_shape)
    axis = _axis(layer.spec.axis, rank, layout)
    b.node("Softmax", [b.get(layer.inputs[0], layout)], out, axis=axis)


def _batch_norm(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    spec = layer.spec
    rank = len(layer.output_shape)  # sample rank
    k = normalize_axis(spec.axis, rank)
    n = layer.output_shape[k]
    name = layer.name
    gamma = b.weight(layer, "gamma") if spec.scale else b.const(f"{name}.gamma", np.ones(n))
    beta = b.weight(layer, "beta") if spec.center else b.const(f"{name}.beta", np.zeros(n))
    stats = [b.weight(layer, "moving_mean"), b.weight(layer, "moving_variance")]
    attrs = dict(epsilon=spec.epsilon, momentum=spec.momentum)
    if rank == 1 or k == rank - 1:
        x = b.get(layer.inputs[0], CF)
        b.node("BatchNormalization", [x, gamma, beta, *stats], out, **attrs)
        return
    # another axis: move it to position 1 of the channels-last tensor and back
    x = b.get(layer.inputs[0], CL)
    perm = [0, k + 1, *(i for i in range(1, rank + 1) if i != k + 1)]
    back = [perm.index(i) for i in range(rank + 1)]
    y = b.node("Transpose", [x], f"{name}__moved", perm=perm)
    y = b.node("BatchNormalization", [y, gamma, beta, *stats], f"{name}__normalized", **attrs)
    b.node("Transpose", [y], out, perm=back)


def _layer_norm(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    spec = layer.spec
    rank = len(layer.output_shape)
    k = normalize_axis(spec.axis, rank)
    n = layer.output_shape[k]
    name = layer.name
    gamma = b.weight(layer, "gamma") if spec.scale else b.const(f"{name}.gamma", np.ones(n))
    beta = [b.weight(layer, "beta")] if spec.center else []
    x = b.get(layer.inputs[0], CL)
    if k == rank - 1:
        b.node("LayerNormalization", [x, gamma, *beta], out, axis=-1, epsilon=spec.epsilon)
        return
    perm = [*(i for i in range(rank + 1) if i != k + 1), k + 1]
    back = [perm.index(i) for i in range(rank + 1)]
    y = b.node("Transpose", [x], f"{name}__moved", perm=perm)
    y = b.node(
        "LayerNormalization",
        [y, gamma, *beta],
        f"{name}__normalized",
        axis=-1,
        epsilon=spec.epsilon,
    )
    b.node("Transpose", [y], out, perm=back)


def _merge(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    xs = [b.get(name, layout) for name in layer.inputs]
    t = layer.type
    if t == "Concatenate":
        axis = _axis(layer.spec.axis, len(layer.output_shape), layout)
        b.node("Concat", xs, out, axis=axis)
    elif t == "Subtract":
        b.node("Sub", xs, out)
    elif t == "Multiply":
        y = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            y = b.node("Mul", [y, x], out if i == len(xs) - 1 else f"{layer.name}__mul{i}")
    elif t == "Add":
        b.node("Add" if len(xs) == 2 else "Sum", xs, out)
    else:  # Average = sum / n (ONNX Mean); Maximum; Minimum
        b.node({"Average": "Mean", "Maximum": "Max", "Minimum": "Min"}[t], xs, out)


def _zero_padding(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    (top, bottom), (left, right) = layer.spec.padding
    if layout == CF:
        pads = [0, 0, top, left, 0, 0, bottom, right]
    else:
        pads = [0, top, left, 0, 0, bottom, right, 0]
    p = b.const(f"{layer.name}.pads", pads, np.int64)
    b.node("Pad", [b.get(layer.inputs[0], layout), p], out, mode="constant")


def _upsampling(b: _Builder, layer: LayerIR, out: str, layout: str) -> None:
    """Integer-factor upsampling without Resize: ONNX shape inference loses the symbolic
    batch dimension of a Resize with scales, so 'nearest' repeats rows and columns with
    Reshape/Expand/Reshape (in either layout) and 'bilinear' multiplies by interpolation
    matrices (channels-first: A_h @ X @ A_w^T)."""
    spec = layer.spec
    name = layer.name
    h, w, c = b.model.shape_of(layer.inputs[0])
    sh, sw = spec.size
    if spec.interpolation == "nearest":  # keras: ops.repeat on both axes
        x = b.get(layer.inputs[0], layout)
        if layout == CF:
            split, grow, full = [0, 0, h, 1, w, 1], [1, 1, 1, sh, 1, sw], [0, 0, h * sh, w * sw]
        else:
            split, grow, full = [0, h, 1, w, 1, c], [1, 1, sh, 1, sw, 1], [0, h * sh, w * sw, c]
        y = b.node("Reshape", [x, b.const(f"{name}.split", split, np.int64)], f"{name}__split")
        y = b.node("Expand", [y, b.const(f"{name}.repeats", grow, np.int64)], f"{name}__repeated")
        b.node("Reshape", [y, b.const(f"{name}.shape", full, np.int64)], out)
        return
    # tf.image.resize bilinear, half-pixel centers, no antialiasing (keras.ops.image.resize)
    x = b.get(layer.inputs[0], CF)
    rows = b.const(f"{name}.rows", _bilinear_matrix(h, sh))  # (h*sh, h)
    cols = b.const(f"{name}.cols", _bilinear_matrix(w, sw).T)  # (w, w*sw)
    y = b.node("MatMul", [x, cols], f"{name}__cols")
    b.node("MatMul", [rows, y], out)


def _bilinear_matrix(size: int, scale: int) -> np.ndarray:
    """Rows of 1-D linear interpolation weights with half-pixel centers, clamped at the edges."""
    matrix = np.zeros((size * scale, size), np.float64)
    for o in range(size * scale):
        src = (o + 0.5) / scale - 0.5
        low = math.floor(src)
        frac = src - low
        matrix[o, min(max(low, 0), size - 1)] += 1.0 - frac
        matrix[o, min(max(low + 1, 0), size - 1)] += frac
    return matrix.astype(np.float32)


_LOWERINGS: dict[str, Callable] = {
    "Conv1D": _conv,
    "Conv2D": _conv,
    "DepthwiseConv2D": _conv,
    "SeparableConv2D": _conv,
    "Conv2DTranspose": _conv,
    "MaxPooling1D": _pool,
    "MaxPooling2D": _pool,
    "AveragePooling1D": _pool,
    "AveragePooling2D": _pool,
    "GlobalAveragePooling1D": _global_pool,
    "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling1D": _global_pool,
    "GlobalMaxPooling2D": _global_pool,
    "Dense": _dense,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Dropout": _identity,
    "Activation": _activation_layer,
    "ReLU": _relu,
    "LeakyReLU": _leaky_relu,
    "Softmax": _softmax,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Add": _merge,
    "Subtract": _merge,
    "Multiply": _merge,
    "Average": _merge,
    "Maximum": _merge,
    "Minimum": _merge,
    "Concatenate": _merge,
    "ZeroPadding2D": _zero_padding,
    "UpSampling2D": _upsampling,
}
