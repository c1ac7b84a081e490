"""The interface every target implements, and what a target's runtime adapter offers.

A target is a plugin over the IR (``specc/targets/<name>/``): it says which layers it
refuses (located diagnostics at the layer's own line), emits code or a graph, and gives the
runner and ``specc crosscheck`` a :class:`Runtime` (build, load weights, forward, per-layer
intermediates, one training step). Nothing here imports a framework.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar, Protocol

from ..diagnostics import Diagnostic
from ..ir import ModelIR
from ..layers.base import Layer


class Runtime(Protocol):
    """A built model in one framework, with canonical weights in and out."""

    name: str

    def load(self, weights: dict) -> None: ...

    def forward(self, inputs: list) -> list:
        """Inference-mode outputs (numpy arrays, channels-last as in Keras)."""

    def intermediates(self, inputs: list) -> dict:
        """Every layer's output (layer name -> channels-last numpy array), inference mode."""

    def train_step(self, inputs, targets, loss_spec, optimizer: dict) -> dict:
        """One step from the loaded weights: loss, training-mode outputs, gradients and
        weights after the step, the last two as canonical dicts."""


class Target:
    """One target. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str] = ""
    #: one line for help texts and docs
    summary: ClassVar[str] = ""
    #: Python modules the target's runtime needs, and the extra that installs them
    needs: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    #: the layer method holding this target's per-layer lowering
    lowering_method: ClassVar[str] = ""
    #: whether the runtime can take a training step (crosscheck's training rows)
    trains: ClassVar[bool] = False

    # -- coverage ---------------------------------------------------------------------------
    def lowers(self, layer_type: type[Layer]) -> bool:
        """Whether the layer type has a lowering for this target (it may still refuse some
        option values, at the option's line)."""
        own = getattr(layer_type, self.lowering_method, None)
        return own is not None and own is not getattr(Layer, self.lowering_method, None)

    def refusal_reason(self, layer_type: type[Layer]) -> str | None:
        """Why the layer type has no lowering for this target (declared by the layer)."""
        return layer_type.refusals.get(self.name)

    # -- what a target does -------------------------------------------------------------------
    def refusals(self, model: ModelIR, source=None) -> list[Diagnostic]:
        """Everything in ``model`` this target cannot express exactly, located."""
        raise NotImplementedError

    def emit(self, model: ModelIR, source=None, **options) -> str | bytes:
        """The generated code (str) or graph (bytes); raises SpecError when refused."""
        raise NotImplementedError

    def runtime(self, model: ModelIR, folder: Path, tag: str = "") -> Runtime:
        """Build ``model`` in the framework (generated files go to ``folder``)."""
        raise NotImplementedError

    def missing_modules(self) -> list[str]:
        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    def install_hint(self) -> str:
        return f"pip install 'specc[{self.extra}]'"


def optimizer_spec(values: dict):
    """The spec's optimizer model (specc.spec.SGD / Adam ...) for a dict of every argument:
    runtimes build their optimizer from it exactly as the runner does."""
    from .. import spec

    return {"sgd": spec.SGD, "adam": spec.Adam}[values["type"]].model_validate(values)
