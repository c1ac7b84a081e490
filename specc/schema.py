"""The JSON Schema of the spec language, from the pydantic models (plus blocks)."""

from __future__ import annotations

_EXPR = {"type": "string", "pattern": r"\$", "description": "an expression: $param or $(expr)"}


def json_schema() -> dict:
    from .layers import LAYER_TYPES
    from .spec import Spec

    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    _add_blocks(schema, sorted(LAYER_TYPES))
    return schema


def _add_blocks(schema: dict, layer_types: list[str]) -> None:
    """Blocks (specc/blocks.py) are expanded before validation; the schema describes them so
    that editors complete `blocks:` and block instances in `layers:`."""
    defs = schema["$defs"]
    name = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_$()+\-*/ ]{0,200}$"}
    integer_or_expr = {"anyOf": [{"type": "integer", "minimum": 1}, _EXPR]}
    arguments = {"type": "object", "description": "block arguments: parameter name -> value"}
    defs["BlockInstance"] = {
        "type": "object",
        "title": "BlockInstance",
        "description": "An instance of a block from 'blocks:'; the other keys are its arguments.",
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "not": {"enum": layer_types},
                "description": "the name of a block",
            },
            "name": {**name, "description": "instance name; $(i) is the repeat index"},
            "inputs": {"type": "array", "items": {"type": "string"}},
            "repeat": {**integer_or_expr, "description": "instantiate N times in sequence"},
            "first": {**arguments, "description": "arguments for the first repetition"},
            "at": {
                "type": "object",
                "description": "arguments per repetition index: {1: {stride: 2}}",
                "additionalProperties": arguments,
            },
            "if": {"description": "instantiate only when true (else the input passes through)"},
        },
        "additionalProperties": True,
    }
    defs["BlockLayer"] = {
        "type": "object",
        "title": "BlockLayer",
        "description": "A layer or block instance inside a block; any value may be an "
        "expression ($param, $(expr), $(name)_suffix).",
        "required": ["type"],
        "properties": {
            "type": {"anyOf": [{"enum": layer_types}, {"type": "string"}]},
            "name": name,
            "inputs": {"type": "array", "items": {"type": "string"}},
            "if": {"description": "keep the layer only when true; else its input passes through"},
            "repeat": integer_or_expr,
        },
        "additionalProperties": True,
    }
    param_type = {"enum": ["int", "float", "str", "bool"]}
    defs["BlockParam"] = {
        "anyOf": [
            param_type,
            {
                "type": "object",
                "properties": {
                    "type": param_type,
                    "default": {},
                    "description": {"type": "string"},
                },
                "required": ["type"],
                "additionalProperties": False,
            },
        ]
    }
    defs["Block"] = {
        "type": "object",
        "title": "Block",
        "description": "A reusable, parameterized group of layers (docs/spec.md, Blocks).",
        "properties": {
            "description": {"type": "string"},
            "params": {"type": "object", "additionalProperties": {"$ref": "#/$defs/BlockParam"}},
            "inputs": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "layers": {"type": "array", "items": {"$ref": "#/$defs/BlockLayer"}, "minItems": 1},
            "outputs": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
        },
        "required": ["layers"],
        "additionalProperties": False,
    }
    props = schema["properties"]
    props["blocks"] = {
        "type": "object",
        "title": "Blocks",
        "description": "Reusable blocks: name -> definition; use a name as a layer type.",
        "additionalProperties": {"$ref": "#/$defs/Block"},
    }
    # the instance is one more alternative; its `type` is no layer type, so oneOf holds
    props["layers"]["items"]["oneOf"].append({"$ref": "#/$defs/BlockInstance"})
