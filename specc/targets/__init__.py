"""The target registry: Keras, PyTorch and ONNX, each a plugin over the IR.

    from specc import targets
    code = targets.get("pytorch").emit(model)      # raises SpecError when refused

Each target lives in ``specc/targets/<name>/`` (its ``TARGET``); the CLI, the runner and
``specc crosscheck`` look targets up here instead of branching on names. Targets are
imported on first use, so ``import specc`` stays fast.
"""

from __future__ import annotations

import importlib

from .base import Runtime, Target

#: target name -> module defining ``TARGET``
REGISTRY: dict[str, str] = {
    "keras": "specc.targets.keras",
    "pytorch": "specc.targets.pytorch",
    "onnx": "specc.targets.onnx",
}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Target:
    """The target called ``name``; ValueError for an unknown one."""
    if name not in REGISTRY:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).TARGET


def all_targets() -> list[Target]:
    return [get(name) for name in REGISTRY]


__all__ = ["REGISTRY", "Runtime", "Target", "all_targets", "get", "names"]
