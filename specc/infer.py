"""Stage 4, infer: every layer's output shape, parameters (trainable / non-trainable) and MACs."""

from __future__ import annotations

from .diagnostics import Diagnostic
from .errors import layer_label
from .graph import Graph
from .ir import LayerIR, ModelIR, TensorIR
from .layers.base import ShapeError, fmt_shape
from .source import Source
from .spec import BUILTIN_DATASETS, Spec


def infer(spec: Spec, graph: Graph, source: Source) -> tuple[ModelIR | None, list[Diagnostic]]:
    """Walk the graph in topological order; layers downstream of a problem are skipped."""
    diagnostics: list[Diagnostic] = []
    shapes: dict[str, tuple[int, ...]] = {name: shape for name, shape, _ in graph.inputs}
    failed = set(graph.broken)
    layers: list[LayerIR] = []
    for node in graph.nodes:
        if node.name in failed or any(ref in failed for ref in node.inputs):
            failed.add(node.name)
            continue
        layer = node.layer
        in_shapes = [shapes[ref] for ref in node.inputs]
        try:
            out = layer.output_shape(in_shapes)
            if any(d <= 0 for d in out):
                raise ShapeError(
                    f"output shape {fmt_shape(out)} has an empty dimension "
                    f"(input {', '.join(fmt_shape(s) for s in in_shapes)})"
                )
            trainable, frozen = layer.count_params(in_shapes, out)
            macs = layer.count_macs(in_shapes, out)
        except ShapeError as exc:
            failed.add(node.name)
            path = ("layers", node.index) + ((exc.field,) if exc.field else ())
            line, col = source.locate(path)
            message = exc.message
            if in_shapes and "input" not in message and fmt_shape(in_shapes[0]) not in message:
                message += f" (input shape {fmt_shape(in_shapes[0])})"
            diagnostics.append(
                Diagnostic(
                    message,
                    file=source.file,
                    line=line,
                    column=col,
                    layer=layer_label(source.data, node.index, node.name),
                    hint=exc.hint,
                    code="shape",
                )
            )
            continue
        shapes[node.name] = out
        layers.append(
            LayerIR(
                index=node.index,
                name=node.name,
                type=layer.layer_type,
                inputs=list(node.inputs),
                output_shape=out,
                trainable_params=trainable,
                non_trainable_params=frozen,
                macs=macs,
                spec=layer,
            )
        )
    if failed:
        return None, diagnostics
    model = ModelIR(
        name=spec.name,
        description=spec.description,
        inputs=[TensorIR(name, shape, dtype) for name, shape, dtype in graph.inputs],
        layers=layers,
        outputs=list(graph.outputs),
        training=spec.training.model_dump(mode="json") if spec.training else None,
        file=source.file,
    )
    # only what the outputs need is part of the model (unused layers were warned about)
    needed = _needed(model)
    model.layers = [layer for layer in model.layers if layer.name in needed]
    diagnostics.extend(check_training(spec, model, source))
    return model, diagnostics


def _needed(model: ModelIR) -> set[str]:
    by_name = {layer.name: layer for layer in model.layers}
    seen: set[str] = set()
    stack = list(model.outputs)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in by_name:
            stack.extend(by_name[name].inputs)
    return seen


def check_training(spec: Spec, model: ModelIR, source: Source) -> list[Diagnostic]:
    """Cross-checks between the training section and the model: classes and input size."""
    training = spec.training
    if training is None or not isinstance(training.dataset, str):
        return []
    out: list[Diagnostic] = []
    sample, classes = BUILTIN_DATASETS[training.dataset]

    def report(path, message, hint=None):
        line, col = source.locate(path)
        out.append(
            Diagnostic(message, file=source.file, line=line, column=col, hint=hint, code="training")
        )

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        report(
            ("training", "dataset"),
            f"dataset '{training.dataset}' feeds one input and one output; the model has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs",
        )
        return out
    size = 1
    for d in model.inputs[0].shape:
        size *= d
    want = sample[0] * sample[1] * sample[2]
    if size != want:
        report(
            ("training", "dataset"),
            f"dataset '{training.dataset}' has samples of shape {fmt_shape(sample)} ({want} values) "
            f"but input '{model.inputs[0].name}' has shape {fmt_shape(model.inputs[0].shape)} "
            f"({size} values)",
            hint=f"use an input shape of {list(sample)}",
        )
    out_shape = model.shape_of(model.outputs[0])
    last = out_shape[-1]
    if (
        training.loss in ("sparse_categorical_crossentropy", "categorical_crossentropy")
        and last != classes
    ):
        report(
            ("training", "loss"),
            f"dataset '{training.dataset}' has {classes} classes but output "
            f"'{model.outputs[0]}' has {last} units (shape {fmt_shape(out_shape)})",
            hint=f"end the model with Dense {classes}",
        )
    return out
