"""Turn pydantic validation errors into located diagnostics a user can act on."""

from __future__ import annotations

import math
import re

from .diagnostics import Diagnostic, did_you_mean
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


def _model_for(data: object, path: tuple):
    """The pydantic model class that validates the mapping at ``path`` (for field hints)."""
    from . import spec as spec_module
    from .layers import LAYER_TYPES

    if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int) and len(path) <= 3:
        entry = data["layers"][path[1]]
        return LAYER_TYPES.get(entry.get("type")) if isinstance(entry, dict) else None
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


def pydantic_diagnostics(exc, source: Source) -> list[Diagnostic]:
    """One diagnostic per distinct problem of a pydantic ValidationError, located in ``source``."""
    data = source.data
    seen: set = set()
    out: list[Diagnostic] = []
    errors = exc.errors(include_url=False)
    for err in errors:
        kind = err["type"]
        path = _data_path(data, err["loc"])
        field = _field_name(path)
        value = err.get("input")
        ctx = err.get("ctx") or {}
        hint = None
        prefer_key = False
        code = "invalid-value"

        if kind == "literal_error" and isinstance(value, dict):
            # a mapping given where a name or a mapping may go: the mapping branch's
            # errors say what is wrong, "not one of: mnist, ..." would mislead
            if any(
                e is not err and e["loc"][: len(err["loc"]) - 1] == err["loc"][:-1] for e in errors
            ):
                continue
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
            code = "missing-field"
            if path[:1] == ("layers",) and model is not None:
                required = [
                    n for n, f in model.model_fields.items() if f.is_required() and n != "type"
                ]
                hint = f"{model.__name__} requires: {', '.join(required)}"
            loc_path = path[:-1]
        elif kind == "extra_forbidden":
            model = _model_for(data, path[:-1])
            message = f"unknown field '{path[-1]}'"
            if model is not None and path[:1] == ("layers",):
                message += f" for {model.__name__}"
            hint = did_you_mean(path[-1], _user_fields(model))
            if hint is None and model is not None:
                hint = f"known fields: {', '.join(_user_fields(model))}"
            prefer_key = True
            code = "unknown-field"
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
            raw = _data_lookup(data, path + ("type",))
            if not isinstance(raw, str):  # pydantic shows str(tag): '['Dense']', '1.5'
                example = "Dense" if path[:1] == ("layers",) else (expected or ["..."])[0]
                message = f"type must be a string such as '{example}', got {_show(raw)}"
                if not (isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str)):
                    hint = "see `specc schema` for every type"
            loc_path = path + ("type",)
            code = "unknown-type" if known is None else "unsupported-layer"
        elif kind == "union_tag_not_found":
            message = "missing required field 'type'"
            hint = "for example 'type: Dense'; see `specc schema` for every layer type"
            loc_path = path
            code = "missing-field"
        elif kind == "literal_error":
            expected = re.findall(r"'([^']+)'|(\d+)", ctx.get("expected", ""))
            choices = [a or b for a, b in expected]
            if path == ("version",):
                message = f"unknown format version {_show(value)}; this specc reads version 1"
                hint = "write 'version: 1'"
                code = "version"
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
            code = "invalid-name"
        elif kind in _TYPE_WORDS:
            message = f"{field} must be {_TYPE_WORDS[kind]}, got {_show(value)}"
            if kind == "tuple_type" and field in ("padding",):
                message = (
                    f"{field} must be an integer, a pair, or a pair of pairs, got {_show(value)}"
                )
            if kind == "float_type" and isinstance(value, str):
                hint = "write numbers without quotes, e.g. 0.001"
            loc_path = path
            code = "invalid-type"
        elif kind == "int_parsing_size":  # an integer beyond 64 bits
            if path == ("version",):
                message = f"unknown format version {_show(value)}; this specc reads version 1"
                code = "version"
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
        line, col = source.locate(loc_path, prefer_key=prefer_key)
        out.append(
            Diagnostic(
                message=message,
                file=source.file,
                line=line,
                column=col,
                layer=_subject(data, path),
                hint=hint,
                code=code,
            )
        )
    # 'filtres' unknown + 'filters' missing is one typo: keep the did-you-mean only
    typos = {
        (d.layer, d.hint.split("'")[1])
        for d in out
        if d.code == "unknown-field" and d.hint and d.hint.startswith("did you mean")
    }
    out = [
        d
        for d in out
        if not (d.code == "missing-field" and (d.layer, d.message.split("'")[1]) in typos)
    ]
    out.sort(key=lambda d: (d.line, d.column))
    return out
