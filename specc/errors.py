"""Turn pydantic validation errors into located diagnostics a user can act on."""

from __future__ import annotations

import math
import re

from . import diagcodes as codes
from .diagnostics import Diagnostic, closest, did_you_mean, json_path
from .layers.base import NAME_PATTERN
from .source import Source

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "an integer or a list of integers",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _data_path(data: object, loc: tuple) -> tuple:
    """Follow pydantic's ``loc`` through the data, dropping segments (union tags) that are not in it."""
    path: list = []
    node = data
    for seg in loc:
        if isinstance(node, dict) and isinstance(seg, str) and seg in node:
            path.append(seg)
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            path.append(seg)
            node = node[seg]
        elif isinstance(node, dict) and isinstance(seg, str) and seg == node.get("type"):
            continue  # the tag of a discriminated union ('adam', 'npz'), not a field
        elif (
            isinstance(node, dict)
            and isinstance(seg, str)
            and not seg[:1].isupper()
            and "[" not in seg
        ):
            # a field that is missing or unknown: keep it so the message can name it
            if seg not in ("function-before", "function-after", "tagged-union", "str", "int"):
                path.append(seg)
                node = None
    return tuple(path)


def _data_lookup(data: object, path: tuple) -> object:
    node = data
    for seg in path:
        try:
            node = node[seg]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _show(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def layer_label(data: object, index: int, name: str | None = None) -> str:
    """``layers[3] Conv2D 'c3'`` for diagnostics."""
    entry = (
        data["layers"][index]
        if isinstance(data, dict) and isinstance(data.get("layers"), list)
        else None
    )
    layer_type = entry.get("type") if isinstance(entry, dict) else None
    name = name or (entry.get("name") if isinstance(entry, dict) else None)
    label = f"layers[{index}]"
    if isinstance(layer_type, str):
        label += f" {layer_type}"
    if isinstance(name, str) and re.match(NAME_PATTERN, name):
        label += f" '{name}'"
    return label


def _nested_model(owner, field: object, value: object):
    """The model validating ``value``, a mapping in ``owner``'s field ``field`` (an initializer
    or regularizer config, a wrapped layer): the field's union member whose ``type`` it names;
    the owner itself when there is none."""
    import typing

    from pydantic import BaseModel

    info = owner.model_fields.get(field) if isinstance(field, str) else None
    kind = value.get("type") if isinstance(value, dict) else None
    if info is None or kind is None:
        return owner
    pending, seen = [info.annotation], set()
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            tag = annotation.model_fields.get("type")
            if tag is not None and kind in typing.get_args(tag.annotation):
                return annotation
            continue
        if id(annotation) in seen:
            continue
        seen.add(id(annotation))
        pending.extend(typing.get_args(annotation))
    return owner


def _model_for(data: object, path: tuple):
    """The pydantic model class that validates the mapping at ``path`` (for field hints)."""
    from . import spec as spec_module
    from .layers import LAYER_TYPES

    if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int) and len(path) <= 3:
        entry = data["layers"][path[1]]
        layer = LAYER_TYPES.get(entry.get("type")) if isinstance(entry, dict) else None
        if len(path) == 3 and layer is not None:  # a mapping inside a layer field
            return _nested_model(layer, path[2], entry.get(path[2]))
        return layer
    if not path:
        return spec_module.Spec
    if path[0] == "inputs" and len(path) <= 3:
        return spec_module.InputSpec
    if path[0] == "training":
        models = {
            1: spec_module.Training,
            2: {
                "preprocessing": spec_module.Preprocessing,
                "augmentation": spec_module.Augmentation,
                "early_stopping": spec_module.EarlyStopping,
            },
        }
        if len(path) == 1:  # ``path`` is the mapping that holds the field
            return models[1]
        if len(path) == 2:
            node = data["training"].get(path[1]) if isinstance(data.get("training"), dict) else None
            kind = node.get("type") if isinstance(node, dict) else None
            by_kind = {
                "optimizer": {
                    "sgd": spec_module.SGD,
                    "adam": spec_module.Adam,
                    "adamw": spec_module.AdamW,
                    "rmsprop": spec_module.RMSprop,
                },
                "schedule": {
                    "step": spec_module.StepSchedule,
                    "cosine": spec_module.CosineSchedule,
                    "reduce_on_plateau": spec_module.PlateauSchedule,
                },
                "dataset": {"npz": spec_module.NpzDataset, "folder": spec_module.FolderDataset},
            }
            if path[1] in by_kind:
                return by_kind[path[1]].get(kind)
            return models[2].get(path[1])
    return None


def _user_fields(model) -> list[str]:
    return [name for name in model.model_fields if name != "type"] if model else []


def _subject(data: object, path: tuple) -> str | None:
    if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int):
        return layer_label(data, path[1])
    return None


def _field_name(path: tuple) -> str:
    """Dotted field path after the layer, e.g. 'kernel_size' or 'training.optimizer.learning_rate'."""
    rest = path[2:] if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int) else path
    text = ""
    for seg in rest:
        text += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if text else str(seg))
    return text


_MARKERS = ("function-before", "function-after", "tagged-union", "constrained-", "literal[")
_MISMATCH = set(_TYPE_WORDS) | {"model_type", "is_instance_of"}


def _branch(data: object, loc: tuple) -> tuple[tuple, str] | None:
    """For an error inside one branch of a union: (loc up to the union, the branch), else None."""
    node = data
    for i, seg in enumerate(loc):
        if isinstance(node, dict) and isinstance(seg, str) and seg in node:
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        elif isinstance(seg, str) and (
            not isinstance(node, dict | list) or "[" in seg or seg.startswith(_MARKERS)
        ):
            return loc[:i], seg
        elif isinstance(node, dict) and isinstance(seg, str) and seg == node.get("type"):
            continue
        else:
            return None
    return None


def _mismatch(err: dict, depth: int) -> bool:
    """The value is not of the kind this union branch takes (a string for a mapping branch)."""
    if len(err["loc"]) != depth + 1:
        return False
    if err["type"] in _MISMATCH:
        return True
    if err["type"] == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        wants_text = "'" in expected
        return isinstance(err.get("input"), str) != wants_text
    return False


def _meant_branches(data: object, errors: list[dict]) -> list[dict]:
    """One root cause, one diagnostic: where a value may take several forms (a dataset name
    or a mapping, a fraction or 'test'), keep the errors of the form the user wrote."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for err in errors:
        found = _branch(data, tuple(err["loc"]))
        if found:
            groups.setdefault(found[0], {}).setdefault(found[1], []).append(err)
    drop: set[int] = set()
    for prefix, branches in groups.items():
        if len(branches) < 2:
            continue
        depth = len(prefix)
        meant = [b for b, errs in branches.items() if not all(_mismatch(e, depth) for e in errs)]
        keep = meant or list(branches)[:1]
        for branch, errs in branches.items():
            if branch not in keep:
                drop.update(id(e) for e in errs)
    return [e for e in errors if id(e) not in drop]


def pydantic_diagnostics(exc, source: Source) -> list[Diagnostic]:
    """One diagnostic per distinct problem of a pydantic ValidationError, located in ``source``."""
    data = source.data
    seen: set = set()
    out: list[Diagnostic] = []
    errors = _meant_branches(data, exc.errors(include_url=False))
    typos: set = set()  # (layer path, field) pairs a did-you-mean hint names
    missing: dict = {}  # (layer path, field) -> index in out
    for err in errors:
        kind = err["type"]
        path = _data_path(data, err["loc"])
        field = _field_name(path)
        value = err.get("input")
        ctx = err.get("ctx") or {}
        hint = None
        prefer_key = False
        code = codes.INVALID_VALUE

        if kind == "missing" and err["loc"] and isinstance(err["loc"][-1], int):
            # a fixed-size list (kernel_size: [3] for a pair) is too short
            wanted = 1 + max(
                e["loc"][-1]
                for e in errors
                if e["type"] == "missing" and e["loc"][:-1] == err["loc"][:-1]
            )
            stored = _data_path(data, err["loc"][:-1])
            got = _data_lookup(data, stored)
            count = f", got {len(got)}" if isinstance(got, list) else ""
            message = f"{_field_name(stored)} must have {wanted} items{count}"
            loc_path = stored
        elif kind == "missing":
            model = _model_for(data, path[:-1])
            message = f"missing required field '{path[-1]}'"
            if len(path) > 1 and path[:1] != ("layers",):
                message += f" in {json_path(path[:-1])}"
            code = codes.MISSING_FIELD
            if path[:1] == ("layers",) and model is not None:
                required = [
                    n for n, f in model.model_fields.items() if f.is_required() and n != "type"
                ]
                hint = f"{model.__name__} requires: {', '.join(required)}"
            loc_path = path  # located at the mapping that lacks it
        elif kind == "extra_forbidden":
            model = _model_for(data, path[:-1])
            message = f"unknown field '{path[-1]}'"
            if model is not None and path[:1] == ("layers",):
                message += f" for {model.__name__}"
            elif len(path) > 1:
                message += f" in {json_path(path[:-1])}"
            suggestion = closest(path[-1], _user_fields(model))
            if suggestion:
                typos.add((path[:-1], suggestion))
            hint = did_you_mean(path[-1], _user_fields(model))
            if hint is None and model is not None:
                hint = f"known fields: {', '.join(_user_fields(model))}"
            prefer_key = True
            code = codes.UNKNOWN_FIELD
            loc_path = path
        elif kind == "union_tag_invalid":
            tag = ctx.get("tag")
            expected = re.findall(r"'([^']+)'", ctx.get("expected_tags", ""))
            known = None
            if path[:1] == ("layers",) and len(path) == 2:
                from .layers.keras_catalog import unsupported

                message = f"unknown layer type '{tag}'"
                known = unsupported(str(tag), expected)  # a Keras layer, not a typo
            else:
                message = f"{field or 'type'}: unknown type '{tag}'"
            hint = did_you_mean(tag, expected) or f"one of: {', '.join(expected)}"
            if known is not None:
                message, hint = known
            loc_path = path + ("type",)
            raw = _data_lookup(data, loc_path)
            if isinstance(_data_lookup(data, path), str):  # shorthand: optimizer: adamm
                raw, loc_path = _data_lookup(data, path), path
            if not isinstance(raw, str):  # pydantic shows str(tag): '['Dense']', '1.5'
                example = "Dense" if path[:1] == ("layers",) else (expected or ["..."])[0]
                message = f"type must be a string such as '{example}', got {_show(raw)}"
                if not (isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str)):
                    hint = "see `specc schema` for every type"
            code = codes.UNKNOWN_TYPE if known is None else codes.UNSUPPORTED_LAYER
        elif kind == "union_tag_not_found":
            message = "missing required field 'type'"
            hint = "for example 'type: Dense'; see `specc schema` for every layer type"
            loc_path = path
            code = codes.MISSING_FIELD
        elif kind == "literal_error":
            expected = re.findall(r"'([^']+)'|(\d+)", ctx.get("expected", ""))
            choices = [a or b for a, b in expected]
            if path == ("version",):
                message = f"unknown format version {_show(value)}; this specc reads version 1"
                hint = "write 'version: 1'"
                code = codes.VERSION
            else:
                message = f"{field}: {_show(value)} is not one of: {', '.join(choices)}"
                hint = did_you_mean(value, choices)
            loc_path = path
        elif kind in _BOUNDS:
            bound = next(iter(ctx.values()))
            message = f"{field} must be {_BOUNDS[kind]} {bound}, got {_show(value)}"
            loc_path = path
        elif kind in ("too_short", "too_long"):
            size = "at least" if kind == "too_short" else "at most"
            limit = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
            message = f"{field} must have {size} {limit} item{'s' if limit != 1 else ''}"
            if kind == "too_short" and field == "layers":
                message = "a spec needs at least one layer"
            loc_path = path
        elif kind == "string_pattern_mismatch":
            message = f"{field}: {_show(value)} is not a valid name"
            hint = (
                "names start with a letter and hold letters, digits and '_' (at most 64 characters)"
            )
            loc_path = path
            code = codes.INVALID_NAME
        elif kind in _TYPE_WORDS:
            message = f"{field} must be {_TYPE_WORDS[kind]}, got {_show(value)}"
            if kind == "tuple_type" and field in ("padding",):
                message = (
                    f"{field} must be an integer, a pair, or a pair of pairs, got {_show(value)}"
                )
            if kind == "float_type" and isinstance(value, str):
                hint = "write numbers without quotes, e.g. 0.001"
            loc_path = path
            code = codes.INVALID_TYPE
        elif kind == "int_parsing_size":  # an integer beyond 64 bits
            if path == ("version",):
                message = f"unknown format version {_show(value)}; this specc reads version 1"
                code = codes.VERSION
            else:
                message = f"{field} is too large, got {_show(value)}"
            loc_path = path
        elif kind == "finite_number":
            message = f"{field} must be a finite number, got {_show(value)}"
            loc_path = path
        elif kind == "value_error":
            message = str(ctx.get("error") or err["msg"])
            loc_path = path
        else:
            msg = err["msg"]
            message = f"{field}: {msg[0].lower() + msg[1:]}" if field else msg
            loc_path = path

        if not field and kind not in (
            "missing",
            "extra_forbidden",
            "union_tag_invalid",
            "union_tag_not_found",
        ):
            message = message.lstrip(": ")
        key = (loc_path, message)
        if key in seen:
            continue
        seen.add(key)
        if kind == "missing" and not isinstance(err["loc"][-1], int):
            missing[len(out)] = (path[:-1], path[-1])
        out.append(
            Diagnostic.at(
                source,
                loc_path,
                code,
                message,
                layer=_subject(data, path),
                hint=hint,
                prefer_key=prefer_key,
            )
        )
    # 'filtres' unknown + 'filters' missing is one typo: keep the did-you-mean only
    out = [d for i, d in enumerate(out) if missing.get(i) not in typos]
    out.sort(key=lambda d: (d.line, d.column))
    return out
