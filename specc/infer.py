"""Stage 4, infer: every layer's output shape, parameters (trainable / non-trainable) and MACs."""

from __future__ import annotations

from .diagnostics import Diagnostic
from .errors import layer_label
from .graph import Graph, ancestors
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
            weights = layer.weights(in_shapes)
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
                weights=weights,
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
        source=source,
    )
    # only what the outputs need is part of the model (unused layers were warned about)
    needed = _needed(model)
    model.layers = [layer for layer in model.layers if layer.name in needed]
    diagnostics.extend(check_training(spec, model, source))
    diagnostics.extend(check_resources(model, source))
    return model, diagnostics


DEFAULT_MAX_MEMORY = 16 * 1024**3  # bytes, for the weights and for one sample's activations


def max_memory() -> int:
    """The memory limit in bytes: $SPECC_MAX_MEMORY (e.g. '64GB', '512MB', or bytes) or 16 GB."""
    import os
    import re

    text = os.environ.get("SPECC_MAX_MEMORY", "").strip()
    match = re.fullmatch(r"(?i)(\d+(?:\.\d+)?)\s*([KMGT]?)B?", text) if text else None
    if not match:
        return DEFAULT_MAX_MEMORY
    scale = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def check_resources(model: ModelIR, source: Source) -> list[Diagnostic]:
    """Refuse models whose weights or per-sample activations would need absurd memory.

    specc knows both statically (float32: 4 bytes a value), so nothing is ever allocated.
    """
    from .summary import readable_bytes

    limit = max_memory()
    out = []
    checks = (
        ("weights", model.total_params, f"its {model.total_params:,} parameters"),
        (
            "activations",
            sum(layer.activations for layer in model.layers),
            "the layer outputs of a single sample",
        ),
    )
    for what, count, detail in checks:
        need = count * 4
        if need > limit:
            biggest = max(
                model.layers,
                key=(lambda layer: layer.params)
                if what == "weights"
                else (lambda layer: layer.activations),
            )
            line, col = source.locate(("layers", biggest.index))
            out.append(
                Diagnostic(
                    f"the model's {what} need {readable_bytes(need)} (float32) for {detail}, "
                    f"above the {readable_bytes(limit)} limit; the largest is layer '{biggest.name}' "
                    f"({biggest.type}, output {fmt_shape(biggest.output_shape)}, {biggest.params:,} params)",
                    file=source.file,
                    line=line,
                    column=col,
                    hint=f"if this is intended, raise the limit: SPECC_MAX_MEMORY={-(-need // 1024**3)}GB",
                    code="too-large",
                )
            )
    return out


def _needed(model: ModelIR) -> set[str]:
    return ancestors(model.outputs, {layer.name: layer for layer in model.layers})


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
