"""The PyTorch target: a readable ``nn.Module`` (channels-last in and out), and its
runtime adapter."""

from __future__ import annotations

from pathlib import Path

from ...codegen import CodegenError
from ...ir import ModelIR
from ..base import Target


class PyTorchTarget(Target):
    name = "pytorch"
    summary = "PyTorch code: an nn.Module with Keras's numerics"
    needs = ("torch",)
    extra = "torch"
    trains = True
    lowering_method = "torch_lowering"

    def refusals(self, model: ModelIR, source=None):
        from .codegen import plan

        try:
            plan(model, source)
        except CodegenError as exc:
            return exc.diagnostics
        return []

    def emit(
        self,
        model: ModelIR,
        source=None,
        with_training: bool = False,
        taps: bool = False,
        **options,
    ) -> str:
        from ...codegen import generate_code
        from .codegen import lower

        def lowering(model, source):
            return lower(model, source, taps=taps)

        return generate_code(model, "pytorch", lowering, source, with_training)

    def runtime(self, model: ModelIR, folder: Path, tag: str = ""):
        from .runtime import TorchRuntime

        return TorchRuntime(model, folder, tag)


TARGET = PyTorchTarget()
