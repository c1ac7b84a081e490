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

    def write(
        self,
        model: ModelIR,
        path: Path,
        source=None,
        weights=None,
        opset: int | None = None,
        seed: int = 0,
    ) -> Path | None:
        """The binary model written to ``path`` (what ``emit`` returns, written atomically);
        above ``graph.EXTERNAL_DATA_THRESHOLD`` bytes of weights (a protobuf message cannot
        exceed 2 GiB) the model and ``<path>.data`` beside it, ONNX's external-data format:
        then that file's path is returned. Raises SpecError (nothing written) or
        fsutil.WriteError."""
        from ...fsutil import WriteError, reason_of
        from . import graph

        proto, payload = graph._build(
            model, weights, opset or graph.DEFAULT_OPSET, seed, source, True
        )
        if sum(a.nbytes for a in payload.values()) <= graph.EXTERNAL_DATA_THRESHOLD:
            graph._write_streamed(path, proto, payload)  # the same bytes as emit
            return None
        try:
            graph._write_external(path, proto, payload)
        except WriteError:
            raise
        except OSError as exc:
            raise WriteError(path, reason_of(exc)) from None
        return Path(path).with_name(Path(path).name + ".data")

    def runtime(self, model: ModelIR, folder: Path, tag: str = ""):
        from .runtime import OnnxRuntime

        return OnnxRuntime(model, folder, tag)


TARGET = OnnxTarget()
