"""`specc import --blocks`: fold repeated structures of an imported spec into blocks.

An *instance* is a run of consecutive layers whose names share a prefix (``conv2_block1``
in ``conv2_block1_1_conv``, ``conv2_block1_1_bn``, ...), that reads one tensor from outside
and is read from outside only through its last layer. Runs with the same structure (the
same name suffixes, types, wiring and non-scalar options) become one block definition; the
scalar options that differ between them (filters, strides, ...) become its parameters, and
each run becomes one instance ``{type: <block>, name: <prefix>, <param>: <value>}``. The
prefix depth (``conv2`` / ``conv2_block1`` / ...) that folds the most layers wins.

The folded spec is kept only when it expands to exactly the flat one (the same layers in
the same order, with the same names, types, options and inputs); otherwise the flat spec is
returned with a note. Names expand to the same final names, so the weights do not change.
"""

from __future__ import annotations

import json
import re

_PARAM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_NOT_PARAMS = {"name", "i", "type", "inputs", "repeat", "first", "at", "if"}
MAX_DEPTH = 4


def fold_blocks(spec: dict) -> tuple[dict, list[str]]:
    """(spec with ``blocks:``, notes); the spec unchanged (and a note) when nothing folds."""
    layers = spec.get("layers") or []
    inputs = spec.get("inputs") or []
    resolved = _resolved_inputs(layers, inputs)
    readers = _readers(layers, resolved, spec.get("outputs") or [layers[-1]["name"]])
    best: tuple[int, list] = (0, [])
    for depth in range(1, MAX_DEPTH + 1):
        groups: dict[str, list[tuple[str, int, int]]] = {}
        for prefix, start, end in _runs(layers, depth):
            signature = _signature(layers, resolved, readers, prefix, start, end)
            if signature is not None:
                groups.setdefault(signature, []).append((prefix, start, end))
        folded = [runs for runs in groups.values() if len(runs) >= 2]
        gain = sum(end - start for runs in folded for _, start, end in runs)
        if gain > best[0]:
            best = (gain, folded)
    if not best[1]:
        return spec, ["--blocks: no repeated structure to fold"]
    folded_spec = _rewrite(spec, layers, resolved, best[1])
    problem = _same_expansion(spec, folded_spec)
    if problem:
        return spec, [f"--blocks: not folded ({problem}); the spec is written flat"]
    count = sum(len(runs) for runs in best[1])
    return folded_spec, [
        f"--blocks: {best[0]} of {len(layers)} layers folded into {len(best[1])} blocks "
        f"({count} instances)"
    ]


def _resolved_inputs(layers: list[dict], inputs: list[dict]) -> list[list[str]]:
    previous = inputs[0]["name"] if len(inputs) == 1 else None
    out = []
    for entry in layers:
        out.append(list(entry.get("inputs") or ([previous] if previous else [])))
        previous = entry["name"]
    return out


def _readers(layers, resolved, outputs) -> dict[str, set[int]]:
    """tensor -> indices of the layers reading it (-1: a model output)."""
    readers: dict[str, set[int]] = {}
    for k, refs in enumerate(resolved):
        for ref in refs:
            readers.setdefault(ref, set()).add(k)
    for name in outputs:
        readers.setdefault(name, set()).add(-1)
    return readers


def _runs(layers: list[dict], depth: int):
    """Maximal runs of consecutive layers whose names share their first ``depth``
    underscore-separated parts (and have more parts than that)."""
    start, prefix = 0, None
    for k, entry in enumerate([*layers, {"name": ""}]):
        parts = entry["name"].split("_")
        this = "_".join(parts[:depth]) if len(parts) > depth else None
        if this != prefix or this is None:
            if prefix is not None and k - start >= 2:
                yield prefix, start, k
            start, prefix = k, this


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, str, bool)) and not (
        isinstance(value, str) and "$" in value
    )


def _form(value):
    """A value with every scalar replaced by its type name: what instances must share."""
    if isinstance(value, list):
        return [_form(v) for v in value]
    if isinstance(value, dict):
        return {k: _form(v) for k, v in value.items()}
    return type(value).__name__ if _is_scalar(value) else value


def _leaves(value, path=()):
    """(path, scalar) for every scalar in ``value`` (itself when it is one)."""
    if isinstance(value, list):
        for k, v in enumerate(value):
            yield from _leaves(v, (*path, k))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif _is_scalar(value):
        yield path, value


def _at(value, path):
    for step in path:
        value = value[step]
    return value


def _with(value, path, leaf):
    """A copy of ``value`` with the scalar at ``path`` replaced by ``leaf``."""
    if not path:
        return leaf
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _with(value[path[0]], path[1:], leaf)
    return copy


def _signature(layers, resolved, readers, prefix, start, end) -> str | None:
    names = [entry["name"] for entry in layers[start:end]]
    local = {name: name[len(prefix) + 1 :] for name in names}
    external = {ref for refs in resolved[start:end] for ref in refs if ref not in local}
    if len(external) != 1:
        return None  # a block reads one tensor here
    inside = set(range(start, end))
    for name in names[:-1]:  # only the last layer is read from outside
        if not readers.get(name, set()) <= inside:
            return None
    shape = []
    for entry, refs in zip(layers[start:end], resolved[start:end]):
        fields = {}
        for key, value in entry.items():
            if key in ("name", "inputs"):
                continue
            # scalars (also inside lists and mappings) may differ: parameters; the types and
            # the lengths of lists must agree
            fields[key] = value if key == "type" else _form(value)
        wiring = [local.get(ref, "$x") for ref in refs]
        shape.append([local[entry["name"]], fields, wiring])
    return json.dumps(shape, sort_keys=True)


def _rewrite(spec: dict, layers, resolved, groups) -> dict:
    blocks: dict[str, dict] = {}
    instance_at: dict[int, tuple[dict, int]] = {}
    taken = {entry["name"] for entry in layers} | {t["name"] for t in spec.get("inputs", [])}
    for runs in groups:
        prefix0, start0, end0 = runs[0]
        block_name = _block_name(prefix0, blocks, taken)
        # the scalar options that differ between the instances, one parameter per distinct
        # column of values (two fields always equal share one)
        columns: dict[tuple, str] = {}
        params: dict[str, str] = {}
        per_field: dict[tuple[int, str], str] = {}
        for offset in range(end0 - start0):
            local0 = layers[start0 + offset]["name"][len(prefix0) + 1 :]
            for key, value in layers[start0 + offset].items():
                if key in ("name", "inputs", "type"):
                    continue
                for path, leaf in _leaves(value):
                    column = tuple(_at(layers[start + offset][key], path) for _, start, _ in runs)
                    if len(set(map(json.dumps, column))) == 1:
                        continue
                    if column not in columns:
                        columns[column] = _param_name(key, local0, params)
                        params[columns[column]] = type(leaf).__name__
                    per_field[(offset, key, path)] = columns[column]
        body = []
        names0 = [entry["name"] for entry in layers[start0:end0]]
        for offset, (entry, refs) in enumerate(zip(layers[start0:end0], resolved[start0:end0])):
            local = entry["name"][len(prefix0) + 1 :]
            item: dict = {"type": entry["type"], "name": f"$(name)_{local}"}
            wiring = [f"$(name)_{r[len(prefix0) + 1 :]}" if r in names0 else "x" for r in refs]
            default = (
                ["x"] if offset == 0 else [f"$(name)_{names0[offset - 1][len(prefix0) + 1 :]}"]
            )
            if wiring != default:
                item["inputs"] = wiring
            for key, value in entry.items():
                if key in ("type", "name", "inputs"):
                    continue
                for (at, field, path), param in per_field.items():
                    if (at, field) == (offset, key):
                        value = _with(value, path, f"${param}")
                item[key] = value
            body.append(item)
        definition: dict = {}
        if params:
            definition["params"] = params
        definition["layers"] = body
        blocks[block_name] = definition
        for prefix, start, end in runs:
            instance: dict = {"type": block_name, "name": prefix}
            for (offset, key, path), param in per_field.items():
                instance.setdefault(param, _at(layers[start + offset][key], path))
            run_names = {e["name"] for e in layers[start:end]}
            external = next(r for refs in resolved[start:end] for r in refs if r not in run_names)
            instance_at[start] = (instance, end)
            instance["inputs"] = [external]
    out_layers = []
    previous = spec["inputs"][0]["name"] if len(spec.get("inputs", [])) == 1 else None
    k = 0
    while k < len(layers):
        if k in instance_at:
            instance, end = instance_at[k]
            if instance["inputs"] == ([previous] if previous else []):
                del instance["inputs"]
            out_layers.append(instance)
            previous = layers[end - 1]["name"]
            k = end
            continue
        entry = dict(layers[k])
        entry.pop("inputs", None)
        if resolved[k] != ([previous] if previous else []):
            entry["inputs"] = resolved[k]
        out_layers.append(entry)
        previous = entry["name"]
        k += 1
    folded = {}
    for key, value in spec.items():
        if key == "layers":
            folded["blocks"] = blocks
            folded["layers"] = out_layers
        else:
            folded[key] = value
    return folded


def _block_name(prefix: str, blocks: dict, taken: set) -> str:
    from ..layers import LAYER_TYPES

    stem = re.sub(r"[0-9]+[a-z]?$", "", prefix.split("_")[-1]) or "block"
    stem = stem if stem[:1].isalpha() else f"block_{stem}"
    name, k = stem, 1
    while name in blocks or name in LAYER_TYPES or name in taken:
        k += 1
        name = f"{stem}_{k}"
    return name


def _param_name(key: str, local: str, params: dict) -> str:
    for candidate in (key, f"{key}_{local}"):
        candidate = re.sub(r"[^A-Za-z0-9_]", "_", candidate)
        if _PARAM.match(candidate) and candidate not in params and candidate not in _NOT_PARAMS:
            return candidate
    k = 2
    while f"{key}_{k}" in params:
        k += 1
    return f"{key}_{k}"


def _same_expansion(flat: dict, folded: dict) -> str | None:
    """None when ``folded`` expands to exactly ``flat``, else what differs."""
    from ..pipeline import check_data

    a, b = check_data(flat), check_data(folded)
    if not b.ok:
        return b.errors[0].format()

    def layers(result):
        return [
            (layer.name, layer.type, layer.inputs, layer.spec.model_dump(exclude={"inputs"}))
            for layer in result.model.layers
        ]

    if layers(a) != layers(b) or a.model.outputs != b.model.outputs:
        return "the blocks do not expand to the same layers"
    return None
