"""`specc import --check`: the imported spec, run in every installed target with the imported
weights, against the original model's own outputs on seeded random inputs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class CheckRow:
    target: str
    output: str
    max_abs: float
    max_rel: float
    refused: str = ""  # why the target cannot build the imported spec (then no numbers)


def reference_outputs(source: Path, kind: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The original model's outputs: Keras for a Keras file, onnxruntime for ONNX."""
    if kind == "keras":
        from .keras import load_keras_model

        net = load_keras_model(source)
        out = net(inputs if len(inputs) > 1 else inputs[0], training=False)
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    import onnxruntime as ort

    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    feed = {i.name: x for i, x in zip(session.get_inputs(), inputs)}
    return [np.asarray(o) for o in session.run(None, feed)]


def check_import(source: Path, kind: str, model, weights: dict, batch: int = 4) -> list[CheckRow]:
    """One row per (installed target, output): the difference from the original model; one
    row saying why for a target that refuses the spec."""
    from .. import targets
    from ..codegen import CodegenError
    from ..crosscheck import random_inputs
    from ..diagnostics import SpecError

    inputs = random_inputs(model, batch, seed=0, high=10)
    if kind == "onnx":  # the original graph may read and write channels-first tensors
        from .onnx import original_inputs, original_output_layouts

        reference = reference_outputs(source, kind, original_inputs(source, inputs))
        reference = [
            np.moveaxis(r, 1, -1) if layout == "cf" and r.ndim >= 3 else r
            for r, layout in zip(reference, original_output_layouts(source))
        ]
    else:
        reference = reference_outputs(source, kind, inputs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="specc-import-check-") as tmp:
        for target in targets.all_targets():
            if target.missing_modules():
                continue
            try:
                runtime = target.runtime(model, Path(tmp))
                runtime.load(weights)
            except (SpecError, CodegenError) as exc:  # the spec is fine; this target refuses it
                rows.append(CheckRow(target.name, "", 0.0, 0.0, exc.diagnostics[0].message))
                continue
            for name, want, got in zip(model.outputs, reference, runtime.forward(inputs)):
                diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
                scale = np.maximum(np.abs(np.asarray(want, np.float64)), 1e-6)
                rows.append(
                    CheckRow(target.name, name, float(diff.max()), float((diff / scale).max()))
                )
    return rows
