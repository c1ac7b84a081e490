"""Import a Keras model: its config (read as JSON, never executed) becomes a spec; its
weights (loaded by Keras in safe mode, after the config was accepted) the canonical ones."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from . import ImportRefused, ImportResult

MAX_CONFIG_BYTES = 64 * 1024 * 1024

#: Keras initializer classes -> specc's initializer names
INITIALIZERS = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
    "Zeros": "zeros",
    "Ones": "ones",
}
#: Keras config keys specc has no field for, and the value(s) that mean "nothing to say"
NEUTRAL = {
    "trainable": (True,),
    "data_format": ("channels_last",),
    "noise_shape": (None,),
    "seed": (None,),
    "output_padding": (None,),
    "synchronized": (False,),
    "renorm": (False,),
    "renorm_clipping": (None,),
    "renorm_momentum": (0.99,),
    "fused": (None,),
    "virtual_batch_size": (None,),
    "adjustment": (None,),
    "lora_rank": (None,),
    "lora_alpha": (None,),
    "rms_scaling": (False,),
    "sparse": (False,),
    "ragged": (False,),
    "optional": (False,),
    "batch_size": (None,),
    "input_dim": (None,),
    "input_shape": (None,),
    "batch_input_shape": (),  # read as the model's input (Keras 2 Sequential)
    "batch_shape": (),
    "quantization_config": (None,),
    # recurrent layers: what a plain call returns; masked steps repeat the last output
    "return_state": (False,),
    "stateful": (False,),
    "unroll": (False,),
    "zero_output_for_mask": (False,),
    # Conv1D (Conv2D has a groups field): one group
    "groups": (1,),
    # MultiHeadAttention (specc's reads (steps, features): attention over axis 1, Keras's
    # default, saved resolved once built), no sliding window, no gate (Keras 3.13+)
    "attention_axes": (None, [1]),
    "sliding_window": (None,),
    "use_gate": (False,),
}
#: wrapper layers whose ``layer`` option is a Keras layer config of its own
WRAPPERS = ("Bidirectional", "TimeDistributed")
#: keys whose default initializer Keras writes out (gamma ones, beta zeros, ...)
DEFAULT_INITIALIZERS = {
    "beta_initializer": "zeros",
    "gamma_initializer": "ones",
    "moving_mean_initializer": "zeros",
    "moving_variance_initializer": "ones",
}
#: Keras 2 spellings of Keras 3 fields
ALIASES = {("LeakyReLU", "alpha"): "negative_slope"}
TRAINING_ONLY = ("_regularizer", "_constraint")
#: fields where one integer stands for every axis (written so when all axes agree)
WINDOW_FIELDS = ("kernel_size", "strides", "dilation_rate", "pool_size", "size")


# --------------------------------------------------------------------------- reading


def read_config(path: Path) -> dict:
    """The model config (``{"class_name": ..., "config": ...}``) without loading the model."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                info = archive.getinfo("config.json")
                if info.file_size > MAX_CONFIG_BYTES:
                    raise ImportRefused([f"{path}: config.json is {info.file_size:,} bytes"], 2)
                text = archive.read("config.json").decode("utf-8")
        elif suffix in (".h5", ".hdf5"):
            try:
                import h5py
            except ImportError:
                from ..extras import message

                raise ImportRefused(
                    [f"{path}: {message('h5py', 'reading .h5 files')}"], 3
                ) from None
            with h5py.File(path, "r") as handle:
                raw = handle.attrs.get("model_config")
                if raw is None:
                    raise ImportRefused(
                        [f"{path}: no model_config in this HDF5 file (a weights-only file?)"], 2
                    )
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        else:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ImportRefused([f"{path}: {path.stat().st_size:,} bytes is too big"], 2)
            text = path.read_text(encoding="utf-8")
        config = json.loads(text)
    except ImportRefused:
        raise
    except KeyError:
        raise ImportRefused([f"{path}: not a Keras model archive (no config.json)"], 2) from None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError) as exc:
        raise ImportRefused([f"{path}: cannot read the model: {exc}"], 2) from None
    except RecursionError:
        raise ImportRefused([f"{path}: cannot read the model: JSON nested too deeply"], 2) from None
    if not isinstance(config, dict) or "config" not in config or "class_name" not in config:
        raise ImportRefused([f"{path}: not a Keras model config"], 2)
    return config


# --------------------------------------------------------------------------- the graph


def _tensor_sources(value, out: list) -> None:
    """The (layer, node, tensor) of every Keras 3 tensor reference inside ``value``."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history", [])
            out.append(tuple(history))
            return
        for item in value.values():
            _tensor_sources(item, out)
    elif isinstance(value, list):
        for item in value:
            _tensor_sources(item, out)


def _inbound(layer: dict, masks: list | None = None) -> list[list[tuple]]:
    """One list of (layer, node, tensor) per call of the layer (Keras 3 and Keras 2); the
    tensors passed as ``mask=`` (Keras's functional API passes an Embedding's mask so) go
    to ``masks`` instead."""
    calls = []
    for node in layer.get("inbound_nodes") or []:
        sources: list = []
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            _tensor_sources(node.get("args", []), sources)
            kwargs = dict(node.get("kwargs", {}))
            if masks is not None and "mask" in kwargs:
                _tensor_sources(kwargs.pop("mask"), masks)
            _tensor_sources(kwargs, sources)
        else:  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
            sources = [tuple(entry[:3]) for entry in node]
        calls.append(sources)
    return calls


def _refs(value) -> list[tuple]:
    """input_layers / output_layers: [name, node, tensor] or a list of them."""
    if not value:
        return []
    if isinstance(value[0], str):
        return [tuple(value)]
    return [tuple(v) for v in value]


# --------------------------------------------------------------------------- options


def _initializer(value):
    """specc's name for a Keras initializer config, or None when specc cannot say it."""
    if isinstance(value, str):
        return value if value in INITIALIZERS.values() else None
    if isinstance(value, dict):
        name = INITIALIZERS.get(value.get("class_name"))
        config = value.get("config") or {}
        if name and not any(v is not None for k, v in config.items() if k == "seed"):
            return name
        return _initializer_config(value.get("class_name"), config)
    return None


def _regularizer(value):
    """specc's mapping for a Keras regularizer config (L1, L2, L1L2), or None."""
    if isinstance(value, str):
        return value if value in ("l1", "l2") else None
    if not isinstance(value, dict):
        return None
    kind = value.get("class_name")
    config = value.get("config") or {}
    keys = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}.get(kind)
    if keys is None or set(config) - set(keys):
        return None
    return {"type": kind, **{k: float(config[k]) for k in keys if k in config}}


def _initializer_config(class_name, config: dict):
    """A parameterized initializer (VarianceScaling, TruncatedNormal, ...) as specc's
    mapping, with the options that differ from the defaults; None when specc has none."""
    from pydantic import TypeAdapter, ValidationError

    from ..layers.base import InitializerConfig

    config = {k: v for k, v in config.items() if v is not None}  # None: Keras's default
    try:
        parsed = TypeAdapter(InitializerConfig).validate_python({"type": class_name, **config})
    except ValidationError:
        return None
    defaults = type(parsed).model_fields
    return {"type": class_name} | {
        k: v for k, v in parsed.model_dump().items() if k != "type" and v != defaults[k].default
    }


def _accepts(field, value) -> bool:
    """Whether a layer's field takes ``value`` (some take initializer names only)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(field.annotation).validate_python(value)
    except ValidationError:
        return False
    return True


def _describe(value) -> str:
    if isinstance(value, dict) and "class_name" in value:
        config = {k: v for k, v in (value.get("config") or {}).items() if v is not None}
        return f"{value['class_name']}({', '.join(f'{k}={v!r}' for k, v in config.items())})"
    return json.dumps(value)


def _float32_policy(value) -> bool:
    if value is None or value == "float32":
        return True
    if isinstance(value, dict):
        return (value.get("config") or {}).get("name") == "float32"
    return False


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _compact(value):
    """(3, 3) -> 3 where specc accepts one integer for every axis (as Keras does)."""
    if isinstance(value, (list, tuple)) and value and all(v == value[0] for v in value):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value[0]
    if isinstance(value, (list, tuple)):
        return [_compact_inner(v) for v in value]
    return value


def _compact_inner(value):
    return [_compact_inner(v) for v in value] if isinstance(value, (list, tuple)) else value


def convert_layer(class_name: str, config: dict, problems: list, notes: list) -> dict:
    """The spec entry for one Keras layer (options that differ from specc's defaults)."""
    from ..layers import LAYER_TYPES

    cls = LAYER_TYPES[class_name]
    name = config.get("name")
    where = f"layer '{name}' ({class_name})"
    entry: dict = {"type": class_name, "name": name}
    # fields under their spec names: an alias (MultiHeadAttention's output_shape) included
    fields = {
        (field.alias or key): field for key, field in cls.model_fields.items() if key != "type"
    }
    for key, value in config.items():
        key = ALIASES.get((class_name, key), key)
        if key in ("name", "type", "inputs"):
            continue
        if class_name == "Bidirectional" and key == "backward_layer":
            scratch: list[str] = []  # the forward layer's problems and notes are said once
            if value is not None and _wrapped(value, scratch, scratch) != _wrapped(
                config.get("layer"), scratch, scratch
            ):
                problems.append(
                    f"{where}: its backward layer differs from the forward one; specc runs "
                    "the same layer both ways"
                )
            continue
        if class_name in WRAPPERS and key == "layer":
            inner = _wrapped(value, problems, notes)
            if inner is not None:
                entry[key] = inner
            continue
        if key == "dtype":
            if not _float32_policy(value):
                notes.append(f"{where}: dtype policy {_describe(value)} not kept (specc: float32)")
            continue
        if key in fields:
            if key == "axis" and isinstance(value, list) and len(value) == 1:
                if not _accepts(fields[key], value) and _accepts(fields[key], value[0]):
                    value = value[0]  # Keras 3 saves LayerNormalization's axis as [-1]
            if key.endswith("_initializer") or key == "initializer":
                converted = _initializer(value)
                if converted == {"type": "RandomUniform"} and fields[key].default == "uniform":
                    converted = "uniform"  # Keras's RandomUniform(-0.05, 0.05)
                if converted == {"type": "Orthogonal"} and not _accepts(fields[key], converted):
                    converted = "orthogonal"  # recurrent kernels take it by name
                if converted is None or not _accepts(fields[key], converted):
                    notes.append(f"{where}: {key} {_describe(value)} not expressible, default used")
                    continue
                value = converted
            if key.endswith("_regularizer"):
                if value is None:
                    continue
                converted = _regularizer(value)
                if converted is None:
                    notes.append(f"{where}: {key} {_describe(value)} not kept (not expressible)")
                    continue
                value = converted
            default = fields[key].default
            if key == "activation" and value == "linear" and default is None:
                continue
            pooling = class_name.endswith(("Pooling1D", "Pooling2D"))
            if key == "strides" and pooling and _same(value, config.get("pool_size")):
                continue  # Keras writes the resolved default: strides = pool_size
            if not fields[key].is_required() and _same(value, default):
                continue
            entry[key] = _compact(value) if key in WINDOW_FIELDS else _compact_inner(value)
            continue
        if key in DEFAULT_INITIALIZERS:
            if _initializer(value) != DEFAULT_INITIALIZERS[key]:
                notes.append(f"{where}: {key} {_describe(value)} not expressible, default used")
            continue
        if key.endswith(TRAINING_ONLY) or key == "activity_regularizer":
            if value is not None:
                notes.append(f"{where}: {key} {_describe(value)} not kept (training only)")
            continue
        if key in ("batch_input_shape", "batch_shape"):
            continue  # the first layer of a Keras 2 Sequential: the model's input
        if key in NEUTRAL and any(_same(value, v) for v in NEUTRAL[key]):
            continue
        if key == "trainable" and value is False:
            notes.append(
                f"{where}: trainable=false not kept (training only: specc trains every layer)"
            )
            continue
        problems.append(f"{where}: option {key}={json.dumps(value)} cannot be expressed")
    return entry


# --------------------------------------------------------------------------- the spec


MODELS = ("Sequential", "Functional", "Model")


class _Context:
    """What the walk over a model (and the models nested in it) collects."""

    def __init__(self, names: dict[str, int]):
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.unsupported: dict[str, list[str]] = {}
        self.inputs: list[dict] = []
        self.entries: list[dict] = []
        self.sources: dict[str, list[str]] = {}
        self.counts = names  # how often each layer name occurs in the whole tree
        self.taken: set[str] = set()
        #: spec layer name -> the Keras layer names leading to it (outer model first)
        self.paths: dict[str, list[str]] = {}
        #: Keras's records of an Embedding's mask (`ids != 0`), and the spec layers given one
        self.mask_nodes: set[str] = set()
        self.masked: set[str] = set()
        #: spec layers of a Sequential model: Keras hands masks on there without a record
        #: in the config (no mask= argument), as specc's mask flow does
        self.implicit: set[str] = set()


def _layer_names(body: dict, counts: dict[str, int]) -> dict[str, int]:
    for item in body.get("layers") or []:
        name = (item.get("config") or {}).get("name")
        if name:
            counts[name] = counts.get(name, 0) + 1
        if item.get("class_name") in MODELS:
            _layer_names(item.get("config") or {}, counts)
    return counts


def _spec_name(ctx: _Context, name: str, path: list[str]) -> str:
    """A nested layer keeps its name where it is unique in the whole model, else gets its
    model's name in front (``mobilenetv2_conv1``)."""
    import re

    base = name
    if path and (ctx.counts.get(name, 0) > 1 or name in ctx.taken):
        base = re.sub(r"[^A-Za-z0-9_]", "_", "_".join([*path, name]))
    candidate, k = base, 1
    while candidate in ctx.taken:
        k += 1
        candidate = f"{base}_{k}"
    ctx.taken.add(candidate)
    return candidate


def _walk(kind: str, body: dict, ctx: _Context, path: list[str], feeds=None) -> list[str]:
    """Convert one model's layers into ``ctx``; nested models are inlined (their inputs read
    ``feeds``, the spec tensors the outer model called them on). Returns the spec names of
    the model's outputs."""
    from ..layers import LAYER_TYPES

    alias: dict[str, str] = {}  # Keras layer name in this model -> spec tensor
    declared_inputs = [r[0] for r in _refs(body.get("input_layers"))]
    frozen = body.get("trainable") is False and bool(path)
    if frozen:
        ctx.notes.append(
            f"nested model '{path[-1]}': trainable=false not kept (training only: specc trains "
            "every layer)"
        )
    previous = None
    for index, item in enumerate(body.get("layers") or []):
        class_name = item.get("class_name")
        lconf = item.get("config") or {}
        name = lconf.get("name") or f"layer_{index}"
        if class_name == "InputLayer":
            if feeds is None:
                shape = lconf.get("batch_shape") or lconf.get("batch_input_shape")
                ctx.inputs.append(_input(name, shape, lconf.get("dtype"), ctx.problems))
                ctx.taken.add(name)
                alias[name] = name
            else:  # a nested model's input: the tensor the outer model passed
                k = declared_inputs.index(name) if name in declared_inputs else 0
                if k >= len(feeds):
                    ctx.problems.append(f"nested model '{path[-1]}': input '{name}' is not fed")
                    continue
                alias[name] = feeds[k]
            previous = alias[name]
            continue
        if class_name == "Lambda":
            ctx.unsupported.setdefault("Lambda (runs Python code from the file)", []).append(name)
            continue
        operation = str(item.get("module", "")).startswith("keras.src.ops")
        if operation and (
            _is_mask_of(class_name, item) or _combines_masks(class_name, item, ctx.mask_nodes)
        ):
            # Keras's record of an Embedding's mask_zero mask (ids != 0), or of merges of it
            # (a merge layer's compute_mask), passed on as `mask=`: specc carries the mask
            # itself (checked after the import)
            ctx.mask_nodes.add(name)
            continue
        if operation:  # `x + 3.0` in a functional model's code: an operation, not a layer
            converted = _operation(class_name, item, name)
            if converted is None:
                ctx.unsupported.setdefault(f"operation {class_name}", []).append(name)
                continue
            class_name, lconf = converted
        if class_name not in MODELS and (class_name not in LAYER_TYPES or class_name == "Input"):
            ctx.unsupported.setdefault(str(class_name), []).append(name)
            continue
        if kind == "Sequential" and previous is None:
            if feeds is not None:
                previous = feeds[0] if feeds else None
            else:
                shape = lconf.get("batch_shape") or lconf.get("batch_input_shape")
                if shape is None and class_name in MODELS:  # its own input layer says
                    inner = (lconf.get("layers") or [{}])[0]
                    shape = (inner.get("config") or {}).get("batch_shape")
                if shape is None:
                    ctx.problems.append(f"layer '{name}': the Sequential model has no input shape")
                else:
                    ctx.inputs.append(_input("input", shape, lconf.get("dtype"), ctx.problems))
                    ctx.taken.add("input")
                    previous = "input"
        masked = False
        if kind == "Sequential":
            refs = [previous] if previous else []
        else:
            masks: list = []
            calls = _inbound(item, masks)
            for ref in masks:
                if ref[0] not in ctx.mask_nodes:
                    ctx.problems.append(
                        f"layer '{name}' ({class_name}) is given a mask computed in model code "
                        f"('{ref[0]}'); specc carries only an Embedding's mask_zero mask"
                    )
            masked = bool(masks)
            if len(calls) > 1:
                ctx.problems.append(
                    f"layer '{name}' ({class_name}) is called {len(calls)} times; a specc "
                    "layer is applied once (write one layer per call)"
                )
            found = calls[0] if calls else []
            if any(len(r) > 2 and r[2] != 0 and r[0] not in alias for r in found):
                ctx.problems.append(f"layer '{name}' reads a second output of a layer")
            refs = [_output_of(alias, r) for r in found]
        if class_name in MODELS:
            outs = _walk(class_name, lconf, ctx, [*path, name], refs)
            alias[name] = outs  # type: ignore[assignment]  # a nested model: its outputs
            previous = outs[0] if len(outs) == 1 else None
            continue
        if frozen:  # said once for the whole nested model
            lconf = {k: v for k, v in lconf.items() if k != "trainable"}
        if operation and kind == "Sequential":
            ctx.problems.append(f"operation '{name}' ({class_name}) in a Sequential model")
        entry = convert_layer(class_name, lconf, ctx.problems, ctx.notes)
        spec_name = _spec_name(ctx, name, path)
        entry["name"] = spec_name
        if masked:
            ctx.masked.add(spec_name)
        if kind == "Sequential" or getattr(
            LAYER_TYPES.get(class_name), "keras_runtime_masks", False
        ):
            ctx.implicit.add(spec_name)
        ctx.paths[spec_name] = [*path, name]
        ctx.sources[spec_name] = refs
        ctx.entries.append(entry)
        alias[name] = spec_name
        previous = spec_name
    if kind == "Sequential":
        return [previous] if previous else []
    return [_output_of(alias, r) for r in _refs(body.get("output_layers"))]


#: Keras operations (keras.ops, written as ``x + y`` in model code) -> the merge layer
OPERATION_MERGES = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply",
                    "Maximum": "Maximum", "Minimum": "Minimum"}  # fmt: skip


def _wrapped(value, problems: list, notes: list) -> dict | None:
    """The spec mapping of a wrapper's layer (a Keras layer config): no name (the wrapper
    has it), and what the wrapper sets itself (the direction, masked outputs) left out."""
    from ..layers import LAYER_TYPES

    if not isinstance(value, dict) or value.get("class_name") not in LAYER_TYPES:
        kind = value.get("class_name") if isinstance(value, dict) else value
        problems.append(f"a wrapped layer {kind!r} specc cannot say")
        return None
    config = {
        k: v
        for k, v in (value.get("config") or {}).items()
        if k not in ("go_backwards", "zero_output_for_mask")
    }
    entry = convert_layer(value["class_name"], config, problems, notes)
    entry.pop("name", None)
    return entry


#: Keras operations a merge layer's compute_mask records on masks (Add: logical_or of its
#: inputs' masks; Attention: convert_to_tensor of the query's)
MASK_OPERATIONS = {"LogicalOr", "LogicalAnd", "ConvertToTensor"}


def _combines_masks(class_name: str, item: dict, mask_nodes: set[str]) -> bool:
    """Whether a Keras operation only combines masks already known (an Embedding's)."""
    nodes = item.get("inbound_nodes") or []
    if class_name not in MASK_OPERATIONS or len(nodes) != 1 or not isinstance(nodes[0], dict):
        return False
    args = nodes[0].get("args") or []
    return bool(args) and all(
        isinstance(a, dict)
        and a.get("class_name") == "__keras_tensor__"
        and ((a.get("config") or {}).get("keras_history") or [None])[0] in mask_nodes
        for a in args
    )


def _is_mask_of(class_name: str, item: dict) -> bool:
    """Whether a Keras operation is ``tensor != 0``: how Keras's functional API records an
    Embedding's mask_zero mask."""
    nodes = item.get("inbound_nodes") or []
    if class_name != "NotEqual" or len(nodes) != 1 or not isinstance(nodes[0], dict):
        return False
    args = nodes[0].get("args") or []
    return (
        len(args) == 2
        and isinstance(args[0], dict)
        and args[0].get("class_name") == "__keras_tensor__"
        and args[1] == 0
        and not nodes[0].get("kwargs")
    )


def _operation(class_name: str, item: dict, name: str):
    """(layer class, config) for a Keras operation between tensors (a merge) or of a tensor
    and a number (``x + 3.0``, ``x * 0.5``, ``3.0 - x``: Rescaling), or None."""
    if class_name not in OPERATION_MERGES:
        return None
    nodes = item.get("inbound_nodes") or []
    if len(nodes) != 1 or not isinstance(nodes[0], dict) or nodes[0].get("kwargs"):
        return None
    args = nodes[0].get("args") or []
    tensors = [a for a in args if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__"]
    numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if len(tensors) + len(numbers) != len(args) or not tensors:
        return None
    if not numbers:
        return OPERATION_MERGES[class_name], {"name": name}
    if len(args) != 2 or class_name not in ("Add", "Subtract", "Multiply"):
        return None
    c = float(numbers[0])
    tensor_first = args[0] is tensors[0]
    scale, offset = {
        "Add": (1.0, c),
        "Multiply": (c, 0.0),
        "Subtract": (1.0, -c) if tensor_first else (-1.0, c),
    }[class_name]
    return "Rescaling", {"name": name, "scale": scale, "offset": offset}


def _output_of(alias: dict, ref: tuple) -> str:
    """The spec tensor a (layer, node, tensor) reference means (a nested model's outputs
    are a list)."""
    target = alias.get(ref[0], ref[0])
    if isinstance(target, list):
        k = ref[2] if len(ref) > 2 else 0
        return target[k] if k < len(target) else ref[0]
    return target


def config_to_spec(
    config: dict,
    paths: dict | None = None,
    masked: set | None = None,
    implicit: set | None = None,
) -> tuple[dict, list[str]]:
    """(spec, notes) from a Keras model config; ImportRefused lists everything refused.
    Nested models are inlined: their layers keep their names where unique in the whole
    model (else the nested model's name goes in front); ``paths`` (when given) receives the
    Keras layer names leading to each spec layer, for the weights; ``masked`` the layers
    the config passes a mask to, ``implicit`` those of Sequential models (masks passed on
    without a record)."""
    kind = config.get("class_name")
    body = config.get("config") or {}
    if kind not in MODELS:
        raise ImportRefused([f"the file holds a {kind}, not a Sequential or Functional model"])
    ctx = _Context(_layer_names(body, {}))
    outputs = _walk(kind, body, ctx, [])
    problems = ctx.problems
    for class_name, names in sorted(ctx.unsupported.items(), reverse=True):
        listed = ", ".join(f"'{n}'" for n in names[:5]) + (" ..." if len(names) > 5 else "")
        problems.insert(
            0,
            f"Keras layer {class_name} is not supported by specc: {len(names)} "
            f"layer{'s' if len(names) > 1 else ''} ({listed})",
        )
    if problems:
        raise ImportRefused(problems)
    inputs = ctx.inputs
    if kind != "Sequential":
        declared = [r[0] for r in _refs(body.get("input_layers"))]
        order = {name: i for i, name in enumerate(declared)}
        inputs.sort(key=lambda t: order.get(t["name"], len(order)))
    spec = {"version": 1, "name": _model_name(body.get("name") or "imported")}
    spec["inputs"] = inputs
    last = inputs[-1]["name"] if len(inputs) == 1 else None
    for entry in ctx.entries:
        refs = ctx.sources.get(entry["name"], [])
        if refs != ([last] if last else []):
            entry["inputs"] = refs
        last = entry["name"]
    spec["layers"] = ctx.entries
    if outputs != [last]:
        spec["outputs"] = outputs
    if paths is not None:
        paths.update(ctx.paths)
    if masked is not None:
        masked.update(ctx.masked)
    if implicit is not None:
        implicit.update(ctx.implicit)
    return spec, ctx.notes


def _model_name(name: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned[:1].isalpha() else f"model_{cleaned}"


def _input(name: str, shape, dtype, problems: list) -> dict:
    if not shape or any(d is None for d in shape[1:]):
        problems.append(
            f"input '{name}': shape {shape} has an unknown dimension; specc needs every "
            "dimension but the batch"
        )
        return {"name": name, "shape": []}
    entry = {"name": name, "shape": list(shape[1:])}
    policy = dtype if isinstance(dtype, str) else (dtype or {}).get("config", {}).get("name")
    if policy and policy != "float32":
        entry["dtype"] = policy
    return entry


# --------------------------------------------------------------------------- entry point


def import_keras(path: Path, with_weights: bool = True) -> ImportResult:
    config = read_config(path)
    paths: dict[str, list[str]] = {}
    masked: set[str] = set()
    implicit: set[str] = set()
    try:
        spec, notes = config_to_spec(config, paths, masked, implicit)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, RecursionError) as exc:
        # a config Keras never writes (a number where a list of layers belongs, ...): the
        # walk assumes Keras's structure, so one line instead of its traceback
        raise ImportRefused(
            [
                f"{path}: not a Keras model config: unexpected structure ({type(exc).__name__}: {exc})"
            ],
            2,
        ) from None
    from ..infer import incoming_masks
    from ..pipeline import check_data

    checked = check_data(spec, file=str(path))
    if not checked.ok:
        raise ImportRefused([f"the imported spec is invalid: {d.format()}" for d in checked.errors])
    # the layers Keras gave an Embedding's mask to are those specc carries it to
    # (Keras passes it as mask= to every layer whose call takes one; specc's "use" layers
    # are such layers)
    reached = incoming_masks(checked.model)
    uses = {n for n in reached if checked.model.layer(n).spec.keras_masking == "use"}
    # (a Sequential model hands its masks on as specc does: nothing recorded to compare)
    differ = sorted((masked - set(reached)) | (uses - masked - implicit))
    if differ:
        raise ImportRefused(
            [f"layer '{n}': Keras's mask reaches it differently than specc's" for n in differ]
        )
    weights = None
    if with_weights and path.suffix.lower() != ".json":
        weights = load_weights(path, checked.model, paths)
    return ImportResult(spec, weights, notes, "keras")


def load_keras_model(path: Path):
    """The Keras model itself, loaded in safe mode (no code from the file runs)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError:
        from ..extras import message

        raise ImportRefused([message("keras", "reading Keras weights")], 3) from None
    try:
        if path.suffix.lower() == ".json":
            return keras.models.model_from_json(path.read_text(encoding="utf-8"))
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line, no traceback
        raise ImportRefused([f"{path}: Keras cannot load the model: {exc}"], 2) from None


class _Nested:
    """A Keras model whose ``get_layer`` also finds the layers of the models nested in it,
    by the spec names the import gave them."""

    def __init__(self, model, paths: dict[str, list[str]]):
        self.model, self.paths = model, paths

    def get_layer(self, name: str):
        layer = self.model
        for part in self.paths.get(name, [name]):
            layer = layer.get_layer(part)
        return layer


def load_weights(path: Path, model, paths: dict | None = None) -> dict:
    from .. import weights as W

    return W.from_keras(_Nested(load_keras_model(path), paths or {}), model)
