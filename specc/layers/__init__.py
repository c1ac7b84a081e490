"""The layer registry: every layer type, and the discriminated union built from them.

To add a layer type, write its class in a module of this package (fields, shape rule,
weight declaration, MACs, and its lowering to every target; see base.py) and list it in
that module's ``LAYERS``: modules are discovered, nothing else needs registering.

A layer family module is imported when one of its types is first looked up, so a check
builds the pydantic classes of the families its spec uses, not all of them. ``_index.py``
(written by ``make docs``) says which module holds which type; it only speeds the lookup
up: a type it does not name, or names wrongly, is found by importing every module.
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

import importlib
import pkgutil
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Union

from .base import ACTIVATIONS, Layer, Shape, ShapeError

#: the original modules first (their order is the schema's), then any others by name
_FIRST = ("core", "conv", "pooling", "reshaping", "normalization", "activation", "merge")


def _module_names() -> tuple[str, ...]:
    others = (m.name for m in pkgutil.iter_modules(__path__) if m.name not in _FIRST)
    return _FIRST + tuple(sorted(n for n in others if not n.startswith("_")))


def _type_name(cls: type[Layer]) -> str:
    return cls.model_fields["type"].annotation.__args__[0]


def _family(name: str) -> dict[str, type[Layer]]:
    module = importlib.import_module(f"{__name__}.{name}")
    return {_type_name(cls): cls for cls in getattr(module, "LAYERS", ())}


class LayerRegistry(Mapping[str, type[Layer]]):
    """Layer type name -> class. Looking one type up imports its family alone; iterating
    (or an unknown name) imports every family, in the schema's order."""

    def __init__(self) -> None:
        self._found: dict[str, type[Layer]] = {}
        self._all: dict[str, type[Layer]] | None = None

    def _load_all(self) -> dict[str, type[Layer]]:
        if self._all is None:
            everything: dict[str, type[Layer]] = {}
            for name in _module_names():
                everything.update(_family(name))
            self._all = everything
            self._found.update(everything)
        return self._all

    def __getitem__(self, name: str) -> type[Layer]:
        cls = self._found.get(name)
        if cls is not None:
            return cls
        if self._all is None and isinstance(name, str):
            from ._index import INDEX

            family = INDEX.get(name)
            if family is not None:
                self._found.update(_family(family))
                cls = self._found.get(name)
                if cls is not None:
                    return cls
        return self._load_all()[name]

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._load_all())

    def __len__(self) -> int:
        return len(self._load_all())


LAYER_TYPES = LayerRegistry()


def any_layer():
    """The discriminated union of every layer type (imports every family)."""
    from pydantic import Field

    return Annotated[Union[tuple(LAYER_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


def index_source() -> str:
    """The text of ``_index.py`` for the layer modules as they are now."""
    lines = [
        '"""Which module of specc.layers holds each layer type; written by `make docs`',
        '(python -m specc.layers), checked by tests/test_layer_index.py."""',
        "",
        "INDEX = {",
    ]
    for name in _module_names():
        lines += [f"    {type_name!r}: {name!r}," for type_name in _family(name)]
    return "\n".join([*lines, "}", ""]).replace("'", '"')


def keras_default_name(layer_type: str) -> str:
    """Keras's automatic layer-name stem: Conv2D -> conv2d, LeakyReLU -> leaky_re_lu."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", layer_type)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


__all__ = [
    "ACTIVATIONS",
    "LAYER_TYPES",
    "Layer",
    "LayerRegistry",
    "Shape",
    "ShapeError",
    "any_layer",
    "keras_default_name",
]
