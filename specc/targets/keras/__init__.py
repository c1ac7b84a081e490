"""The Keras target: readable Keras 3 code (``build_model()``), and its runtime adapter."""

from __future__ import annotations

from pathlib import Path

from ...ir import ModelIR
from ..base import Target


class KerasTarget(Target):
    name = "keras"
    summary = "Keras 3 code: build_model() returns a keras.Model"
    needs = ("keras", "tensorflow")
    extra = "keras"
    trains = True
    lowering_method = "keras_args"

    def lowers(self, layer_type) -> bool:
        return bool(layer_type.keras_class)

    def refusals(self, model: ModelIR, source=None):
        return []  # every specc layer is a Keras layer with Keras's own options

    def emit(self, model: ModelIR, source=None, with_training: bool = False, **options) -> str:
        from ...codegen import generate_code
        from .codegen import lower

        return generate_code(model, "keras", lower, source, with_training)

    def runtime(self, model: ModelIR, folder: Path, tag: str = ""):
        from .runtime import KerasRuntime

        return KerasRuntime(model, folder, tag)


TARGET = KerasTarget()
