"""The layer registry: every layer type, and the discriminated union built from them.

To add a layer type, write its class in a module of this package (fields, shape rule,
weight declaration, MACs, and its lowering to every target; see base.py) and list it in
that module's ``LAYERS``: modules are discovered, nothing else needs registering.
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import importlib
import pkgutil
import re
from typing import Annotated, Union

from pydantic import Field

from .base import ACTIVATIONS, Layer, Shape, ShapeError

#: the original modules first (their order is the schema's), then any others by name
_FIRST = ("core", "conv", "pooling", "reshaping", "normalization", "activation", "merge")
_NAMES = _FIRST + tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _FIRST)
)
_MODULES = tuple(importlib.import_module(f"{__name__}.{name}") for name in _NAMES)
_MODULES = tuple(m for m in _MODULES if hasattr(m, "LAYERS"))

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls
    for module in _MODULES
    for cls in module.LAYERS
}

AnyLayer = Annotated[Union[tuple(LAYER_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


def keras_default_name(layer_type: str) -> str:
    """Keras's automatic layer-name stem: Conv2D -> conv2d, LeakyReLU -> leaky_re_lu."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", layer_type)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


__all__ = [
    "ACTIVATIONS",
    "AnyLayer",
    "LAYER_TYPES",
    "Layer",
    "Shape",
    "ShapeError",
    "keras_default_name",
]
