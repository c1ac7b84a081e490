"""Stage 4, infer: every layer's output shape, parameters (trainable / non-trainable) and MACs."""

from __future__ import annotations

from . import diagcodes as codes
from .diagnostics import Diagnostic
from .errors import layer_label
from .graph import Graph, ancestors
from .ir import LayerIR, ModelIR, TensorIR
from .layers.base import ShapeError, fmt_shape
from .source import Source
from .spec import Spec


def input_masks(model: ModelIR) -> dict[str, tuple[str | None, ...]]:
    """Layer name -> for each of its inputs, the Embedding (mask_zero) whose Keras mask that
    input carries (None: no mask), for every layer a mask reaches. Embeddings start one;
    each layer's ``output_mask`` says what its output carries on."""
    carried: dict[str, str] = {}  # tensor -> the Embedding whose mask it carries
    reached: dict[str, tuple[str | None, ...]] = {}
    for layer in model.layers:
        masks = tuple(carried.get(n) for n in layer.inputs)
        if any(m is not None for m in masks):
            reached[layer.name] = masks
            out = layer.spec.output_mask(masks)
            if out is not None:
                carried[layer.name] = out
        if getattr(layer.spec, "mask_zero", False):
            carried[layer.name] = layer.name
    return reached


def keras_runtime_mask_problems(model: ModelIR) -> dict[str, str]:
    """Attention layers a mask reaches whose masks in Keras may not be the mask flow's
    (``input_masks``): layer name -> why. Keras's MultiHeadAttention clears the masks of the
    tensors it reads when it runs (and an identity layer's output is its input tensor), so
    an attention layer that can run after another MultiHeadAttention gets what that left,
    which depends on tensor identity and execution order; only attention layers that run
    before every other masked MultiHeadAttention get exactly the mask flow's masks."""
    symbolic = input_masks(model)
    readers = [
        layer for layer in model.layers if layer.spec.keras_runtime_masks and layer.name in symbolic
    ]
    clearing = [layer.name for layer in readers if layer.spec.keras_clears_input_masks]
    if not readers or not clearing:
        return {}
    by_name = {layer.name: layer for layer in model.layers}

    def ancestors(name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(by_name[name].inputs)
        while stack:
            item = stack.pop()
            if item not in seen and item in by_name:
                seen.add(item)
                stack.extend(by_name[item].inputs)
        return seen

    before = {mha: ancestors(mha) for mha in clearing}  # what surely runs before each
    problems = {}
    for layer in readers:
        earlier = [m for m in clearing if m != layer.name and layer.name not in before[m]]
        if earlier:
            problems[layer.name] = (
                f"the MultiHeadAttention '{earlier[0]}', which can run before it, clears the "
                "masks of the tensors it reads"
            )
    return problems


def incoming_masks(model: ModelIR) -> dict[str, str]:
    """Layer name -> the Embedding (mask_zero) whose Keras mask reaches its inputs (the
    first input's that carries one), for every layer a mask reaches."""
    return {
        name: next(m for m in masks if m is not None) for name, masks in input_masks(model).items()
    }


def mask_warnings(model: ModelIR, source: Source) -> list[Diagnostic]:
    """Where an Embedding's mask_zero mask reaches a layer Keras does not mask (Keras's
    UserWarning "will therefore destroy the mask information"): the layers after it see the
    padding steps in every target; and attention layers that may get no mask in Keras (see
    :func:`keras_runtime_mask_problems`)."""
    masks = incoming_masks(model)
    cleared = keras_runtime_mask_problems(model) if masks else {}
    return [
        Diagnostic.at(
            source,
            ("layers", layer.index),
            codes.MASK_DROPPED,
            f"drops the mask of Embedding '{masks[layer.name]}' (mask_zero): Keras does not "
            f"mask {layer.type}, so the layers after it see the padding steps",
            layer=layer_label(source.data, layer.index, layer.name),
            hint="put the layers that should skip padding (recurrent layers, "
            "GlobalAveragePooling1D) before it, or set mask_zero: false",
        )
        for layer in model.layers
        if layer.name in masks and layer.spec.keras_masking == "drop"
    ] + [
        Diagnostic.at(
            source,
            ("layers", layer.index),
            codes.MASK_CLEARED,
            f"may not get the mask of Embedding '{masks[layer.name]}' (mask_zero) in Keras: {why}",
            layer=layer_label(source.data, layer.index, layer.name),
            hint="the PyTorch and ONNX targets refuse this layer; with mask_zero: false every "
            "target attends to every step alike",
        )
        for layer in model.layers
        if (why := cleared.get(layer.name)) is not None
    ]


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
            message = exc.message
            if in_shapes and "input" not in message and fmt_shape(in_shapes[0]) not in message:
                message += f" (input shape {fmt_shape(in_shapes[0])})"
            diagnostics.append(
                Diagnostic.at(
                    source,
                    path,
                    codes.SHAPE,
                    message,
                    layer=layer_label(source.data, node.index, node.name),
                    hint=exc.hint,
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
            out.append(
                Diagnostic.at(
                    source,
                    ("layers", biggest.index),
                    codes.TOO_LARGE,
                    f"the model's {what} need {readable_bytes(need)} (float32) for {detail}, "
                    f"above the {readable_bytes(limit)} limit; the largest is layer '{biggest.name}' "
                    f"({biggest.type}, output {fmt_shape(biggest.output_shape)}, {biggest.params:,} params)",
                    hint=f"if this is intended, raise the limit: SPECC_MAX_MEMORY={-(-need // 1024**3)}GB",
                )
            )
    return out


def _needed(model: ModelIR) -> set[str]:
    return ancestors(model.outputs, {layer.name: layer for layer in model.layers})
