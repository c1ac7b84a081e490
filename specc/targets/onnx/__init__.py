"""The ONNX target: a checked ``onnx.ModelProto`` built node by node from the IR (standard
ONNX ops, opsets 13 and up), and its onnxruntime adapter."""

from __future__ import annotations

from pathlib import Path

from ...diagnostics import SpecError
from ...ir import ModelIR
from ..base import Target


class OnnxTarget(Target):
    name = "onnx"
    summary = "an ONNX graph (binary, or its text form with format='text')"
    needs = ("onnx", "onnxruntime")
    extra = "onnx"
    lowering_method = "onnx_lowering"

    def refusals(self, model: ModelIR, source=None):
        from .graph import DEFAULT_OPSET, _Locator, _refuse

        try:
            _refuse(model, DEFAULT_OPSET, _Locator(model, source))
        except SpecError as exc:
            return exc.diagnostics
        return []

    def emit(
        self,
        model: ModelIR,
        source=None,
        weights=None,
        opset: int | None = None,
        seed: int = 0,
        format: str = "binary",
        **options,
    ) -> str | bytes:
        from .graph import DEFAULT_OPSET, build_onnx, onnx_bytes, onnx_text

        proto = build_onnx(model, weights, opset=opset or DEFAULT_OPSET, seed=seed, source=source)
        return onnx_text(proto) if format == "text" else onnx_bytes(proto)

    def runtime(self, model: ModelIR, folder: Path, tag: str = ""):
        from .runtime import OnnxRuntime

        return OnnxRuntime(model, folder, tag)


TARGET = OnnxTarget()
