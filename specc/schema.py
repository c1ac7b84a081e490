"""The JSON Schema of the spec language, from the pydantic models."""

from __future__ import annotations


def json_schema() -> dict:
    from .spec import Spec

    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
