"""Training compatibility is part of validation: when a spec has a ``training:`` section,
check that what `specc train` will feed the model and compare its output with fits.

- the loss fits the output: one vector of scores per sample (rank 1), one unit per class
  for the categorical losses, one unit (two classes) or one per class for binary
  cross-entropy, and an output activation that agrees with ``from_logits``;
- the dataset fits the input: as many values per sample (the runner reshapes, so
  ``[784]`` takes MNIST), a floating-point input, and image channels for folders;
- metrics fit the task, and the validation split, batch size and augmentation make sense
  for the dataset.

Each problem is a located diagnostic (``specc.diagcodes``: ``loss-output``,
``dataset-input``, ...). Every check is static: nothing is loaded.
"""

from __future__ import annotations

import math

from . import diagcodes as codes
from .diagnostics import Diagnostic
from .errors import layer_label
from .ir import ModelIR
from .layers.base import fmt_shape
from .source import Source
from .spec import BUILTIN_DATASETS, Spec

CLASS_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
#: training samples of the built-in datasets (before the validation split)
BUILTIN_TRAIN_SIZE = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "digits": 1437}
FLOAT_DTYPES = ("float32", "float16", "float64")


def _output_activation(model: ModelIR) -> str | None:
    """'softmax', 'sigmoid', 'linear' (or another) applied last to the output; None if unknown."""
    by_name = {layer.name: layer for layer in model.layers}
    layer = by_name.get(model.outputs[0])
    while layer is not None:
        spec = layer.spec
        if layer.type == "Softmax":
            return "softmax"
        if "activation" in type(spec).model_fields:
            return getattr(spec, "activation", None) or "linear"  # Keras's default: none
        if layer.type in ("Flatten", "Reshape", "Dropout") and len(layer.inputs) == 1:
            layer = by_name.get(layer.inputs[0])  # shape-only layers keep the activation
            continue
        return None
    return None


def check_training(spec: Spec, model: ModelIR, source: Source) -> list[Diagnostic]:
    """Every way the training section does not fit the model (empty when it does)."""
    training = spec.training
    if training is None:
        return []
    out: list[Diagnostic] = []
    data = source.data

    def report(path, code, message, hint=None, *, layer_index=None, severity=None):
        label = None
        if layer_index is not None:
            label = layer_label(data, layer_index, model.outputs[0])
        out.append(
            Diagnostic.at(source, path, code, message, layer=label, hint=hint, severity=severity)
        )

    dataset = training.dataset
    name = dataset if isinstance(dataset, str) else dataset.type
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        report(
            ("training", "dataset"),
            codes.DATASET_OUTPUT,
            f"dataset '{name}' feeds one input and one output; the model has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs",
            hint="`specc train` trains single-input, single-output models",
        )
        return out

    tensor = model.inputs[0]
    input_path = _input_path(spec, data, tensor.name)
    out_layer = (
        next(layer for layer in model.layers if layer.name == model.outputs[0])
        if model.layers
        else None
    )
    out_shape = model.shape_of(model.outputs[0])
    out_index = out_layer.index if out_layer is not None else None
    out_path = ("layers", out_index) if out_index is not None else ("outputs",)
    units = out_shape[-1]
    classes: int | None = None

    # ------------------------------------------------------------ dataset vs input
    token_ids = tensor.dtype in ("int32", "int64") and not isinstance(dataset, str)
    if tensor.dtype not in FLOAT_DTYPES and not token_ids:  # npz integer arrays: token ids
        report(
            input_path + ("dtype",) if _has(data, input_path + ("dtype",)) else input_path,
            codes.DATASET_INPUT,
            f"training feeds float32 samples, but input '{tensor.name}' has dtype {tensor.dtype}",
            hint="remove the dtype (default float32) to train this model; integer inputs "
            "(int32/int64 token ids) train from an npz dataset",
        )
    size = math.prod(tensor.shape)
    if isinstance(dataset, str):
        sample, classes = BUILTIN_DATASETS[dataset]
        want = math.prod(sample)
        if size != want:
            report(
                ("training", "dataset"),
                codes.DATASET_INPUT,
                f"dataset '{dataset}' has samples of shape {fmt_shape(sample)} ({want} values) "
                f"but input '{tensor.name}' has shape {fmt_shape(tensor.shape)} ({size} values)",
                hint=f"use an input shape of {list(sample)}",
            )
    elif dataset.type == "folder":
        height, width = dataset.image_size
        shape = tuple(tensor.shape)
        if len(shape) == 3 and shape[-1] in (1, 3, 4):
            fits = shape == (height, width, shape[-1]) or size == height * width * shape[-1]
            channels = [shape[-1]]
        else:
            channels = [1, 3]
            fits = size in (height * width, height * width * 3)
        if not fits:
            report(
                ("training", "dataset", "image_size"),
                codes.DATASET_INPUT,
                f"images of size {height}x{width} with {' or '.join(map(str, channels))} "
                f"channel(s) do not fit input '{tensor.name}' of shape {fmt_shape(shape)}",
                hint=f"use an input shape of [{height}, {width}, {channels[-1]}]",
            )
    else:
        classes = dataset.num_classes

    # ------------------------------------------------------------ loss vs output
    loss = training.loss
    if loss != "mse" and len(out_shape) != 1:
        fix = (
            "add a Flatten (or GlobalAveragePooling2D) before the last Dense"
            if len(out_shape) > 1
            else None
        )
        report(
            out_path,
            codes.LOSS_OUTPUT,
            f"{loss} needs one vector of class scores per sample, but output "
            f"'{model.outputs[0]}' has shape {fmt_shape(out_shape)}",
            hint=fix,
            layer_index=out_index,
        )
        return out
    if loss == "mse" and isinstance(dataset, str) and out_shape != (classes,):
        report(
            out_path,
            codes.LOSS_OUTPUT,
            f"mse on '{dataset}' compares one-hot labels of {classes} classes with the output, "
            f"but output '{model.outputs[0]}' has shape {fmt_shape(out_shape)}",
            hint=f"end the model with Dense {classes}",
            layer_index=out_index,
        )
    if classes is not None and loss in CLASS_LOSSES and units != classes:
        report(
            ("training", "loss") if _has(data, ("training", "loss")) else out_path,
            codes.LOSS_OUTPUT,
            f"dataset '{name}' has {classes} classes but output "
            f"'{model.outputs[0]}' has {units} units (shape {fmt_shape(out_shape)})",
            hint=f"end the model with Dense {classes}",
        )
    if classes is not None and loss == "binary_crossentropy":
        allowed = {classes} | ({1} if classes == 2 else set())
        if units not in allowed:
            report(
                ("training", "loss"),
                codes.LOSS_OUTPUT,
                f"binary_crossentropy on '{name}' ({classes} classes) needs "
                + ("1 unit or " if classes == 2 else "")
                + f"{classes} units (one per class), but output '{model.outputs[0]}' has {units}",
                hint="use sparse_categorical_crossentropy for one label among several classes"
                if classes > 2
                else None,
            )
    if loss in CLASS_LOSSES and units == 1:
        report(
            ("training", "loss") if _has(data, ("training", "loss")) else out_path,
            codes.LOSS_OUTPUT,
            f"{loss} over a single unit is always 0 (softmax of one value is 1)",
            hint="use binary_crossentropy for two classes with one unit",
        )
    activation = _output_activation(model)
    if loss != "mse" and activation is not None:
        squash = "sigmoid" if loss == "binary_crossentropy" else "softmax"
        if training.from_logits and activation in ("softmax", "sigmoid"):
            report(
                ("training", "from_logits"),
                codes.LOSS_ACTIVATION,
                f"from_logits is true but output '{model.outputs[0]}' already applies "
                f"{activation}: the loss would apply {squash} a second time",
                hint=f"set from_logits: false, or remove the output's {activation}",
            )
        elif not training.from_logits and activation == "linear":
            report(
                out_path,
                codes.LOSS_ACTIVATION,
                f"{loss} expects probabilities but output '{model.outputs[0]}' has no "
                f"activation (logits)",
                hint=f"add activation: {squash} to the output, or set training.from_logits: true",
                layer_index=out_index,
            )
        elif activation == "softmax" and loss == "binary_crossentropy" and units == 1:
            report(
                out_path,
                codes.LOSS_OUTPUT,
                "softmax over a single unit always outputs 1: binary_crossentropy cannot learn",
                hint="use activation: sigmoid for one binary unit",
                layer_index=out_index,
            )

    # ------------------------------------------------------------ metrics vs task
    for k, metric in enumerate(training.metrics):
        path = ("training", "metrics", k)
        if loss == "mse":
            report(
                path,
                codes.METRIC_TASK,
                f"metric '{metric}' is a classification metric; with loss mse it is not computed",
                hint="remove it, or use a classification loss",
                severity=codes.WARNING,
            )
        elif metric == "top_k_accuracy" and training.top_k >= units:
            report(
                ("training", "top_k") if _has(data, ("training", "top_k")) else path,
                codes.METRIC_TASK,
                f"top_k_accuracy with top_k {training.top_k} over {units} output unit(s) is "
                "always 1",
                hint=f"choose top_k below {units}" if units > 1 else "remove top_k_accuracy",
            )

    # ------------------------------------------------------------ split, batch, augmentation
    split = training.validation_split
    if isinstance(dataset, str):
        train_size = BUILTIN_TRAIN_SIZE[dataset]
        if isinstance(split, float) and split > 0 and round(train_size * split) < 1:
            report(
                ("training", "validation_split"),
                codes.TRAINING_SETTING,
                f"validation_split {split} of {train_size} samples holds no sample",
            )
        left = train_size - (int(train_size * split) if isinstance(split, float) else 0)
        if training.batch_size > left:
            report(
                ("training", "batch_size"),
                codes.TRAINING_SETTING,
                f"batch_size {training.batch_size} is larger than the {left} training samples "
                f"of '{dataset}'",
                hint=f"use a batch_size of at most {left}",
                severity=codes.WARNING,
            )
    return out


def _has(data: object, path: tuple) -> bool:
    node = data
    for seg in path:
        if isinstance(node, dict) and seg in node:
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        else:
            return False
    return True


def _input_path(spec: Spec, data: object, name: str) -> tuple:
    for k, tensor in enumerate(spec.inputs):
        if tensor.name == name:
            return ("inputs", k)
    for index, layer in enumerate(spec.layers):
        if layer.layer_type == "Input" and layer.name == name:
            return ("layers", index)
    return ("inputs",)
