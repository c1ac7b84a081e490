"""The layer registry: every layer type, and the discriminated union built from them.

To add a layer type, write its class (fields + shape, parameter and MAC rules + Keras
constructor data) in a module here and list the module in ``_MODULES``.
"""

from __future__ import annotations

import re
from typing import Annotated, Union

from pydantic import Field

from . import activation, conv, core, merge, normalization, pooling, reshaping
from .base import ACTIVATIONS, Layer, Shape, ShapeError

_MODULES = (core, conv, pooling, reshaping, normalization, activation, merge)

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
