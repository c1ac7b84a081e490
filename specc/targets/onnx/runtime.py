"""The ONNX runtime adapter: the built graph in onnxruntime (CPU, one thread)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ir import ModelIR
from ...layers import lowering as lw


class OnnxRuntime:
    name = "onnx"

    def __init__(self, model: ModelIR, folder: Path, tag: str = ""):
        self.model = model
        self.proto = None

    def load(self, weights) -> None:
        from .graph import build_onnx

        self.proto = build_onnx(self.model, weights)
        self.session = self._session(self.proto)

    @staticmethod
    def _session(proto):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        return ort.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def _feed(self, inputs):
        return {t.name: x for t, x in zip(self.model.inputs, inputs)}

    def forward(self, inputs) -> list[np.ndarray]:
        return list(self.session.run(list(self.model.outputs), self._feed(inputs)))

    def intermediates(self, inputs) -> dict[str, np.ndarray]:
        """Every layer-named value added as a graph output, back to channels-last."""
        import onnx

        from .graph import layer_layouts

        proto = onnx.ModelProto()
        proto.CopyFrom(self.proto)
        graph = proto.graph
        outputs = {o.name for o in graph.output}
        produced = {name for node in graph.node for name in node.output}
        layouts = layer_layouts(self.model)
        wanted = []
        for layer in self.model.layers:
            if layer.name in outputs:
                wanted.append((layer.name, lw.CL))  # graph outputs are channels-last
            elif layer.name in produced:
                graph.output.append(onnx.helper.make_empty_tensor_value_info(layer.name))
                wanted.append((layer.name, layouts[layer.name]))
        values = self._session(proto).run([n for n, _ in wanted], self._feed(inputs))
        out = {}
        for (name, layout), value in zip(wanted, values):
            if layout == lw.CF and value.ndim >= 3:
                value = np.moveaxis(value, 1, -1)
            out[name] = value
        return out

    def train_step(self, inputs, targets, loss_spec, optimizer) -> dict:
        raise NotImplementedError("onnxruntime runs inference only")
