"""Training scripts (`specc compile --with-training`): the model code followed by a runnable,
hand-written-looking script for the spec's ``training:`` section.

Python decides everything here (which optimizer class, every hyperparameter, the loss
formula, metrics, schedule and early-stopping code); the templates
``templates/<target>/train.py.j2`` extend the model templates and only place these lines.

Both scripts load their data with ``specc.data.prepare`` (the data-related keys of the
training section are written into the script as a literal dict) and are otherwise plain
Keras / plain PyTorch. Values checked against Keras 3.15 and torch 2.13: docs/codegen.md.
"""

from __future__ import annotations

import textwrap

from ..ir import ModelIR
from ..layers import lowering as lw
from . import CodegenError, refusal
from .pyformat import INDENT, LINE_LENGTH, Renderer, docstring, py_literal, py_str

#: keras.config.epsilon(): Keras clips probabilities to [EPSILON, 1 - EPSILON] before a log
EPSILON = 1e-7

#: the keys of the training section that specc.data.prepare reads
DATA_KEYS = ("dataset", "preprocessing", "validation_split", "loss", "augmentation", "seed")

_I2 = INDENT * 2
_I3 = INDENT * 3


# --------------------------------------------------------------------------- checks


def check(model: ModelIR, source=None) -> dict:
    """The training section, or CodegenError when a script cannot be written for it."""
    training = model.training
    if not training:
        raise CodegenError(
            [
                refusal(
                    model,
                    source,
                    "--with-training: the spec has no training section",
                    path=(),
                    hint="add a training: section (dataset, optimizer, loss, ...; see "
                    "docs/spec.md), or compile without --with-training",
                )
            ]
        )
    problems = []
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        problems.append(
            refusal(
                model,
                source,
                "--with-training: training scripts feed one input and train one output; "
                f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs",
                path=("training",),
                hint="use a single-input, single-output model",
            )
        )
    metrics = training["metrics"]
    unsupported = [m for m in metrics if m in ("precision", "recall")]
    if unsupported:
        problems.append(
            refusal(
                model,
                source,
                f"--with-training: metric {', '.join(unsupported)} is not written into training "
                "scripts (Keras's Precision/Recall are binary, specc reports macro averages)",
                path=("training", "metrics"),
                hint="`specc train` reports macro precision and recall; keep accuracy and "
                "top_k_accuracy here",
            )
        )
    if "top_k_accuracy" in metrics and training["loss"] in ("binary_crossentropy", "mse"):
        problems.append(
            refusal(
                model,
                source,
                f"--with-training: top_k_accuracy needs a categorical loss, not {training['loss']}",
                path=("training", "metrics"),
                hint="drop top_k_accuracy or use a categorical cross-entropy",
            )
        )
    monitors = [
        (key, (training.get(key) or {}).get("monitor", ""))
        for key in ("schedule", "early_stopping")
    ]
    for key, monitor in monitors:
        if monitor.startswith("val_") and not training["validation_split"]:
            problems.append(
                refusal(
                    model,
                    source,
                    f"--with-training: {key} monitors {monitor} but validation_split is 0",
                    path=("training", key, "monitor"),
                    hint="monitor loss/accuracy, or set validation_split",
                )
            )
        if monitor.endswith("accuracy") and training["loss"] == "mse":
            problems.append(
                refusal(
                    model,
                    source,
                    f"--with-training: {key} monitors {monitor}, which mse training does not "
                    "compute",
                    path=("training", key, "monitor"),
                    hint="monitor loss or val_loss",
                )
            )
    if problems:
        raise CodegenError(problems)
    return training


# --------------------------------------------------------------------------- formatting


def _lines(expr, indent: str, prefix: str = "") -> list[str]:
    return Renderer([]).lines(expr, indent, prefix)


def _dict_lines(value: dict, indent: str, prefix: str = "", suffix: str = "") -> list[str]:
    """A dict literal as ruff formats it: on one line when it fits, else one key per line
    with a (magic) trailing comma."""
    flat = _flat_dict(value)
    if len(indent + prefix + flat + suffix) <= LINE_LENGTH:
        return [indent + prefix + flat + suffix]
    inner = indent + INDENT
    lines = [f"{indent}{prefix}{{"]
    for key, item in value.items():
        head = f"{py_str(key)}: "
        if isinstance(item, dict):
            lines += _dict_lines(item, inner, head, ",")
        else:
            lines.append(f"{inner}{head}{py_literal(item)},")
    lines.append(f"{indent}}}{suffix}")
    return lines


def _flat_dict(value: dict) -> str:
    items = [
        f"{py_str(k)}: {_flat_dict(v) if isinstance(v, dict) else py_literal(v)}"
        for k, v in value.items()
    ]
    return "{" + ", ".join(items) + "}"


def _json_literal(value):
    """JSON values as py_literal takes them (lists stay lists, dicts are handled above)."""
    if isinstance(value, dict):
        return {k: _json_literal(v) for k, v in value.items()}
    return value


def _imports(names: set[str]) -> list[str]:
    """Import lines as ruff's isort orders them: standard library, then third party; within
    a group ``import x`` before ``from x import y``, each sorted by module."""
    stdlib = {"argparse", "copy", "math", "os", "time", "pathlib"}
    groups: list[list[str]] = []
    for in_group in (lambda m: m in stdlib, lambda m: m not in stdlib):
        chosen = [n for n in names if in_group(n.split()[1].split(".")[0])]
        plain = sorted((n for n in chosen if n.startswith("import ")), key=lambda n: n.split()[1])
        froms = sorted((n for n in chosen if n.startswith("from ")), key=lambda n: n.split()[1])
        if plain or froms:
            groups.append(plain + froms)
    lines: list[str] = []
    for group in groups:
        if lines:
            lines.append("")
        lines += group
    return lines


def _extend_docstring(doc: str, lines: list[str]) -> str:
    """Append paragraphs to a module docstring made by ``pyformat.docstring``."""
    extra = docstring(["x", *lines])[len('"""x\n') : -len('"""')]
    if doc.endswith('\n"""'):
        return doc[: -len('"""')] + extra + '"""'
    return doc[: -len('"""')] + "\n\n" + extra.lstrip("\n") + '"""'


def _doc(text: str, indent: str) -> str:
    """A docstring for generated helper text, wrapped to the line length."""
    return docstring(textwrap.wrap(text, LINE_LENGTH - len(indent) - 6), indent)


def _number(value: float) -> str:
    return py_literal(float(value))


# --------------------------------------------------------------------------- shared parts


def _parser_lines(description: str) -> list[str]:
    """``parser = argparse.ArgumentParser(description=...)``, wrapped as ruff format would
    when a long model name makes it longer than a line."""
    line = f"{INDENT}parser = argparse.ArgumentParser(description={description})"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [
        f"{INDENT}parser = argparse.ArgumentParser(",
        f"{INDENT * 2}description={description}",
        f"{INDENT})",
    ]


def _common(model: ModelIR, training: dict, target: str, context: dict, extension: str):
    data = {k: _json_literal(training[k]) for k in DATA_KEYS}
    shape = tuple(model.inputs[0].shape)
    units = model.shape_of(model.outputs[0])[-1]
    ids = {"integer": True} if model.inputs[0].dtype in ("int32", "int64") else {}
    prepare = lw.call(
        "prepare",
        lw.Ref("DATA"),
        input_shape=shape,
        data_dir=lw.Ref("data_dir"),
        output_units=units,
        limit=lw.Ref("limit"),
        **ids,  # token ids: kept as integers, never normalized
    )
    framework = "Keras" if target == "keras" else "PyTorch"
    epochs = training["epochs"]
    with_name = lw.Attr(lw.call("Path", lw.Ref("__file__")), "with_name")
    args = [
        lw.call(
            "parser.add_argument",
            "--data-dir",
            help="dataset folder (default: $SPECC_DATA_DIR, then specc's download cache)",
        ),
        lw.call(
            "parser.add_argument",
            "--epochs",
            type=lw.Ref("int"),
            default=epochs,
            help=f"default: {epochs}, as the spec",
        ),
        lw.call(
            "parser.add_argument",
            "--limit",
            type=lw.Ref("int"),
            help="use only the first N train and test samples",
        ),
        lw.call(
            "parser.add_argument",
            "--out",
            type=lw.Ref("Path"),
            default=lw.call(with_name, f"{model.name}{extension}"),
            help="where to save the trained model (default: next to this script)",
        ),
    ]
    argument_lines: list[str] = []
    for arg in args:
        argument_lines += _lines(arg, INDENT)
    doc = [
        "",
        f"Training script for the spec's training section ({framework}); run it as",
        "python <this file> [--data-dir DIR] [--epochs N] [--limit N] [--out FILE].",
        "It needs specc installed for data loading only: specc.data.prepare loads and",
        f"preprocesses the dataset exactly as `specc train` does; the rest is plain {framework}.",
    ]
    if target == "pytorch":
        doc += [
            "It trains on CUDA when available. Data parallel on N processes (DDP, rank 0",
            "prints and saves): torchrun --nproc-per-node N <this file> [...].",
        ]
    return {
        "module_doc": _extend_docstring(context["module_doc"], doc),
        "data_lines": [
            "# The data part of the spec's training section (defaults filled in), read by",
            "# specc.data.prepare; the hyperparameters are written out in main().",
            *_dict_lines(data, "", "DATA = "),
        ],
        "prepare_lines": _lines(prepare, INDENT, "return "),
        "parser_lines": _parser_lines(py_str(f"Train {model.name} ({framework}) on its dataset.")),
        "argument_lines": argument_lines,
        "seed": training["seed"],
        "batch_size": training["batch_size"],
        "augment": bool(any((training.get("augmentation") or {}).values())),
        "validation": bool(training["validation_split"]),
    }


def _label_mode(model: ModelIR, training: dict) -> str:
    """The label format specc.data.prepare produces for a class dataset."""
    loss = training["loss"]
    if loss == "sparse_categorical_crossentropy":
        return "sparse"
    if loss == "binary_crossentropy" and model.shape_of(model.outputs[0])[-1] == 1:
        return "binary"
    return "one_hot"


def _monitor_mode(monitor: str) -> str:
    return "min" if "loss" in monitor else "max"


# --------------------------------------------------------------------------- Keras


_KERAS_LOSSES = {
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy",
}


def _keras_metrics(model: ModelIR, training: dict) -> list[lw.Expr]:
    if training["loss"] == "mse":
        return []
    mode = _label_mode(model, training)
    if training["loss"] == "binary_crossentropy":
        threshold = 0.0 if training["from_logits"] else 0.5
        metrics = [lw.call("keras.metrics.BinaryAccuracy", name="accuracy", threshold=threshold)]
    elif mode == "sparse":
        metrics = [lw.call("keras.metrics.SparseCategoricalAccuracy", name="accuracy")]
    else:
        metrics = [lw.call("keras.metrics.CategoricalAccuracy", name="accuracy")]
    if "top_k_accuracy" in training["metrics"]:
        k = training["top_k"]
        cls = "SparseTopKCategoricalAccuracy" if mode == "sparse" else "TopKCategoricalAccuracy"
        metrics.append(lw.call(f"keras.metrics.{cls}", k=k, name=f"top_{k}_accuracy"))
    return metrics if "accuracy" in training["metrics"] else metrics[1:]


def _keras_schedule(training: dict) -> tuple[list[lw.Expr], list[str], set[str]]:
    """(callbacks, helper function lines, imports) for the schedule."""
    schedule = training.get("schedule")
    base = training["optimizer"]["learning_rate"]
    if not schedule:
        return [], [], set()
    kind = schedule["type"]
    if kind == "reduce_on_plateau":
        monitor = schedule["monitor"]
        callback = lw.call(
            "keras.callbacks.ReduceLROnPlateau",
            monitor=monitor,
            factor=float(schedule["factor"]),
            patience=schedule["patience"],
            mode=_monitor_mode(monitor),
            min_delta=0.0,
            cooldown=0,
            min_lr=float(schedule["min_lr"]),
            verbose=1,
        )
        return [callback], [], set()
    if kind == "step":
        helper = [
            "def learning_rate(epoch: int, epochs: int) -> float:",
            _doc(
                f"The spec's step schedule: x{schedule['gamma']} every "
                f"{schedule['step_epochs']} epochs (per epoch, as `specc train`).",
                INDENT,
            ),
            f"{INDENT}return {_number(base)} * {_number(schedule['gamma'])} ** "
            f"(epoch // {schedule['step_epochs']})",
        ]
        imports: set[str] = set()
    else:
        alpha = float(schedule["alpha"])
        helper = [
            "def learning_rate(epoch: int, epochs: int) -> float:",
            _doc(
                f"The spec's cosine schedule: from {base} down to alpha={alpha} times it "
                "(per epoch, as `specc train`).",
                INDENT,
            ),
            f"{INDENT}cosine = 0.5 * (1 + math.cos(math.pi * epoch / epochs))",
            f"{INDENT}return {_number(base)} * ((1 - {_number(alpha)}) * cosine + {_number(alpha)})"
            if alpha
            else f"{INDENT}return {_number(base)} * cosine",
        ]
        imports = {"import math"}
    callback = lw.call(
        "keras.callbacks.LearningRateScheduler",
        lw.Ref("lambda epoch: learning_rate(epoch, args.epochs)"),
    )
    return [callback], helper, imports


def _early_stopping_args(training: dict) -> dict | None:
    stop = training.get("early_stopping")
    if not stop:
        return None
    return {
        "monitor": stop["monitor"],
        "min_delta": float(stop["min_delta"]),
        "patience": stop["patience"],
        "mode": _monitor_mode(stop["monitor"]),
        "restore_best_weights": stop["restore_best_weights"],
    }


_KERAS_AUGMENTED_BATCHES = '''class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled training batches, augmented as the spec says (specc.data), new every epoch."""

    def __init__(self, data, batch_size: int, seed: int) -> None:
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(data.x_train))

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.data.augment_batch(self.data.x_train[rows], self.rng), self.data.y_train[rows]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.order))'''


def keras_context(model: ModelIR, training: dict, context: dict) -> dict:
    common = _common(model, training, "keras", context, ".keras")
    optimizer = dict(training["optimizer"])
    cls = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
    kind = optimizer.pop("type")
    optimizer_expr = lw.call(f"keras.optimizers.{cls[kind]}", **optimizer)
    if training["loss"] == "mse":
        loss = lw.call("keras.losses.MeanSquaredError")
    else:
        loss = lw.call(
            f"keras.losses.{_KERAS_LOSSES[training['loss']]}", from_logits=training["from_logits"]
        )
    compile_call = lw.call(
        "model.compile",
        optimizer=optimizer_expr,
        loss=loss,
        metrics=lw.ListOf(tuple(_keras_metrics(model, training))),
    )
    callbacks, schedule_helper, imports = _keras_schedule(training)
    stop = _early_stopping_args(training)
    if stop is not None:
        callbacks.append(lw.call("keras.callbacks.EarlyStopping", **stop, verbose=1))
    helpers = [schedule_helper] if schedule_helper else []
    batch_size = training["batch_size"]
    if common["augment"]:
        helpers.insert(0, _KERAS_AUGMENTED_BATCHES.split("\n"))
        imports |= {"import math", "import numpy as np"}
        fit_args: list = [
            lw.call(
                "AugmentedBatches", lw.Ref("data"), batch_size=batch_size, seed=training["seed"]
            )
        ]
        fit_kwargs: dict = {}
    else:
        fit_args = [lw.Ref("data.x_train"), lw.Ref("data.y_train")]
        fit_kwargs = {"batch_size": batch_size}
    fit_kwargs["epochs"] = lw.Ref("args.epochs")
    if common["validation"]:
        fit_kwargs["validation_data"] = lw.Ref("(data.x_val, data.y_val)")
    if not common["augment"]:
        fit_kwargs["shuffle"] = True
    if callbacks:
        fit_kwargs["callbacks"] = lw.ListOf(tuple(callbacks))
    fit_kwargs["verbose"] = 2
    fit = lw.call("model.fit", *fit_args, **fit_kwargs)
    evaluate = lw.call(
        "model.evaluate",
        lw.Ref("data.x_test"),
        lw.Ref("data.y_test"),
        batch_size=batch_size,
        verbose=0,
        return_dict=True,
    )
    return {
        **context,
        **common,
        "imports": _imports(
            {"import argparse", "from pathlib import Path", "import keras"} | imports
        ),
        "script_helpers": ["\n".join(h) for h in helpers],
        "train_lines": [
            *_lines(compile_call, INDENT),
            *_lines(fit, INDENT),
            *_lines(evaluate, INDENT, "results = "),
        ],
    }


# --------------------------------------------------------------------------- PyTorch


def _torch_loss(training: dict) -> tuple[str, list[str], bool]:
    """(docstring, body lines, uses F) of loss_fn: Keras's formula for the spec's loss."""
    loss, logits = training["loss"], training["from_logits"]
    clip = f"clamp({EPSILON!r}, 1 - {EPSILON!r})"
    if loss == "mse":
        return (
            "Mean squared error, as keras.losses.MeanSquaredError.",
            ["return F.mse_loss(outputs, targets)"],
            True,
        )
    if loss == "binary_crossentropy":
        if logits:
            return (
                "Binary cross-entropy from logits (numerically stable), as Keras's "
                "BinaryCrossentropy(from_logits=True).",
                ["return F.binary_cross_entropy_with_logits(outputs, targets)"],
                True,
            )
        return (
            f"Keras's binary cross-entropy on probabilities: clipped to [{EPSILON!r}, "
            f"1 - {EPSILON!r}] before the log.",
            [
                f"probs = outputs.{clip}",
                "return -(targets * probs.log() + (1 - targets) * (1 - probs).log()).mean()",
            ],
            False,
        )
    name = "sparse categorical" if loss.startswith("sparse") else "categorical"
    if logits:
        target = "class indices" if loss.startswith("sparse") else "one-hot targets"
        return (
            f"Keras's {name} cross-entropy from logits: log-softmax inside "
            f"F.cross_entropy (numerically stable; {target}).",
            ["return F.cross_entropy(outputs, targets)"],
            True,
        )
    doc = (
        f"Keras's {name} cross-entropy on probabilities (the model ends with a softmax): "
        f"renormalized, clipped to [{EPSILON!r}, 1 - {EPSILON!r}], then the log."
    )
    lines = [f"probs = (outputs / outputs.sum(dim=-1, keepdim=True)).{clip}"]
    if loss.startswith("sparse"):
        return doc, [*lines, "return F.nll_loss(probs.log(), targets)"], True
    return doc, [*lines, "return -(targets * probs.log()).sum(dim=-1).mean()"], False


def _torch_metrics(model: ModelIR, training: dict) -> list[str]:
    """Entries of the dict batch_metrics returns: name -> number of correct predictions."""
    if training["loss"] == "mse":
        return []
    mode = _label_mode(model, training)
    entries = []
    k = training["top_k"]
    if mode == "binary" or training["loss"] == "binary_crossentropy":
        threshold = "0.0" if training["from_logits"] else "0.5"
        accuracy = f"((outputs > {threshold}).float() == targets).float().mean(dim=-1).sum()"
        entries.append(("accuracy", accuracy))
    else:
        labels = "targets" if mode == "sparse" else "targets.argmax(dim=-1)"
        entries.append(("accuracy", f"(outputs.argmax(dim=-1) == {labels}).sum()"))
        top = f"(outputs.topk({k}, dim=-1).indices == {labels}[:, None]).any(dim=-1).sum()"
        entries.append((f"top_{k}_accuracy", top))
    wanted = {m if m != "top_k_accuracy" else f"top_{k}_accuracy" for m in training["metrics"]}
    return [f"{py_str(name)}: {expr}," for name, expr in entries if name in wanted]


def _torch_optimizer(training: dict) -> tuple[list[str], lw.Expr, float]:
    """(comment lines, constructor, decoupled weight decay to apply by hand)."""
    spec = training["optimizer"]
    kind = spec["type"]
    params = lw.call("model.parameters")
    decay = float(spec.get("weight_decay") or 0.0)
    if kind == "sgd":
        nesterov = bool(spec["nesterov"]) and spec["momentum"] > 0
        comment = ["# torch.optim.SGD follows Keras's SGD update (momentum and Nesterov alike)."]
        if spec["nesterov"] and not nesterov:
            comment.append("# Keras's nesterov=True without momentum is plain SGD.")
        expr = lw.call(
            "torch.optim.SGD",
            params,
            lr=spec["learning_rate"],
            momentum=spec["momentum"],
            dampening=0.0,
            nesterov=nesterov,
            weight_decay=0.0,
        )
        return comment, expr, decay
    if kind in ("adam", "adamw"):
        comment = [
            "# Keras's epsilon (1e-7 by default, not torch's 1e-8) is added to sqrt(v) before",
            "# the bias correction, torch's after it: Keras's eps acts as torch's",
            "# eps / sqrt(1 - beta_2**t), larger for the first few thousand steps, then the same.",
        ]
        cls = "torch.optim.Adam"
        if kind == "adamw" or decay:
            cls = "torch.optim.AdamW"
            comment.append(
                "# Keras's weight_decay is decoupled (w -= lr * weight_decay * w), as AdamW's."
            )
        expr = lw.call(
            cls,
            params,
            lr=spec["learning_rate"],
            betas=(spec["beta_1"], spec["beta_2"]),
            eps=spec["epsilon"],
            weight_decay=decay,
            amsgrad=spec["amsgrad"],
        )
        return comment, expr, 0.0
    comment = [
        "# Keras's rho is torch's alpha. Keras divides by sqrt(v + eps), torch by sqrt(v) + eps:",
        "# the same eps differs where v is tiny (`specc train` uses Keras's exact rule).",
    ]
    expr = lw.call(
        "torch.optim.RMSprop",
        params,
        lr=spec["learning_rate"],
        alpha=spec["rho"],
        eps=spec["epsilon"],
        weight_decay=0.0,
        momentum=spec["momentum"],
        centered=spec["centered"],
    )
    return comment, expr, decay


def _torch_schedule(training: dict) -> tuple[list[str], list[str]]:
    """(lines creating the scheduler, lines at the end of each epoch)."""
    schedule = training.get("schedule")
    if not schedule:
        return [], []
    kind = schedule["type"]
    base = training["optimizer"]["learning_rate"]
    if kind == "step":
        comment = "# the spec's step schedule, applied per epoch as keras.callbacks would"
        expr = lw.call(
            "torch.optim.lr_scheduler.StepLR",
            lw.Ref("optimizer"),
            step_size=schedule["step_epochs"],
            gamma=float(schedule["gamma"]),
        )
        step = "scheduler.step()"
    elif kind == "cosine":
        comment = "# the spec's cosine schedule, per epoch, down to alpha * learning_rate"
        expr = lw.call(
            "torch.optim.lr_scheduler.CosineAnnealingLR",
            lw.Ref("optimizer"),
            T_max=lw.Ref("args.epochs"),
            eta_min=float(schedule["alpha"]) * base,
        )
        step = "scheduler.step()"
    else:
        patience = schedule["patience"]
        comment = (
            f"# as keras.callbacks.ReduceLROnPlateau(patience={patience}): torch reduces after "
            "patience + 1 epochs without improvement"
        )
        expr = lw.call(
            "torch.optim.lr_scheduler.ReduceLROnPlateau",
            lw.Ref("optimizer"),
            mode=_monitor_mode(schedule["monitor"]),
            factor=float(schedule["factor"]),
            patience=patience - 1,
            threshold=0.0,
            threshold_mode="abs",
            cooldown=0,
            min_lr=float(schedule["min_lr"]),
            eps=0.0,
        )
        step = f"scheduler.step(row[{py_str(schedule['monitor'])}])"
    return [f"{INDENT}{comment}", *_lines(expr, INDENT, "scheduler = ")], [f"{_I2}{step}"]


def _torch_early_stopping(training: dict) -> tuple[list[str], list[str], list[str], bool]:
    """(lines before the epoch loop, at the end of each epoch, after the loop, uses copy)."""
    stop = _early_stopping_args(training)
    if stop is None:
        return [], [], [], False
    monitor, delta = stop["monitor"], stop["min_delta"]
    better = (
        f"current < best - {_number(delta)}"
        if stop["mode"] == "min"
        else f"current > best + {_number(delta)}"
    )
    restore = stop["restore_best_weights"]
    before = [
        f"{INDENT}# early stopping on {monitor}, as keras.callbacks.EarlyStopping("
        f"patience={stop['patience']}, min_delta={delta})",
        f"{INDENT}best, best_state, wait = None, None, 0"
        if restore
        else f"{INDENT}best, wait = None, 0",
    ]
    keep = f"{_I3}best_state = copy.deepcopy(model.state_dict())" if restore else None
    each = [
        f"{_I2}current = row[{py_str(monitor)}]",
        f"{_I2}if best is None or {better}:",
        f"{_I3}best, wait = current, 0",
        *([keep] if keep else []),
        f"{_I2}else:",
        f"{_I3}wait += 1",
        f"{_I3}if wait >= {stop['patience']}:",
        f'{_I3}{INDENT}print(f"early stopping after epoch {{epoch + 1}}", flush=True)',
        f"{_I3}{INDENT}break",
    ]
    after = []
    if restore:
        after = [
            f"{INDENT}if best_state is not None:  # restore_best_weights, as Keras does",
            f"{_I2}model.load_state_dict(best_state)",
        ]
    return before, each, after, restore


def pytorch_context(model: ModelIR, training: dict, context: dict) -> dict:
    common = _common(model, training, "pytorch", context, ".pt")
    loss_doc, loss_lines, loss_uses_f = _torch_loss(training)
    comment, optimizer, decay = _torch_optimizer(training)
    schedule_before, schedule_each = _torch_schedule(training)
    stop_before, stop_each, stop_after, uses_copy = _torch_early_stopping(training)
    batch_size = training["batch_size"]
    seed = training["seed"]

    def loader(split: str, shuffle: bool) -> list[str]:
        shard = {"rank": lw.Ref("rank"), "world_size": lw.Ref("world_size")} if shuffle else {}
        call = lw.call(
            "make_loader",
            lw.Ref(f"data.x_{split}"),
            lw.Ref(f"data.y_{split}"),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            **shard,
        )
        return _lines(call, INDENT, f"{split}_loader = ")

    loaders = loader("train", True)
    if common["validation"]:
        loaders += loader("val", False)
    loaders += loader("test", False)
    batch_lines = []
    if common["augment"]:
        batch_lines.append(f"{_I3}x = torch.from_numpy(data.augment_batch(x.numpy(), rng))")
    step_lines = []
    if decay:
        step_lines = [
            f"{_I3}with torch.no_grad():  # Keras's weight_decay is decoupled: w -= lr * wd * w",
            f"{_I3}{INDENT}for parameter in model.parameters():",
            f'{_I3}{INDENT * 2}parameter.mul_(1 - optimizer.param_groups[0]["lr"] * {_number(decay)})',
        ]
    setup = [f"{INDENT}torch.manual_seed({seed})"]
    if common["augment"]:
        setup.append(f"{INDENT}rng = np.random.default_rng({seed})  # for the augmentation")
    imports = {
        "import argparse",
        "import os",
        "import time",
        "from pathlib import Path",
        "import torch",
        "import torch.distributed as dist",
        "from torch import nn",
        "from torch.nn.parallel import DistributedDataParallel",
        "from torch.utils.data import DataLoader, TensorDataset",
        "from torch.utils.data.distributed import DistributedSampler",
    }
    imports |= {line for line in context["imports"] if line}
    if loss_uses_f:
        imports.add("import torch.nn.functional as F")
    if uses_copy:
        imports.add("import copy")
    if common["augment"]:
        imports.add("import numpy as np")
    validation_lines = []
    if common["validation"]:
        validation_lines = [
            f"{_I2}for name, value in evaluate(model, val_loader, device).items():",
            f'{_I3}row[f"val_{{name}}"] = value',
        ]
    metrics = _torch_metrics(model, training)
    return {
        **context,
        **common,
        "imports": _imports(imports),
        "loss_doc": _doc(loss_doc, INDENT),
        "loss_lines": [f"{INDENT}{line}" for line in loss_lines],
        "metric_lines": [f"{_I2}{line}" for line in metrics],
        "setup_lines": setup,
        "loader_lines": loaders,
        "model_line": f"{INDENT}model = {context['class_name']}().to(device)",
        "optimizer_lines": [
            *(f"{INDENT}{c}" for c in comment),
            *_lines(optimizer, INDENT, "optimizer = "),
        ],
        "before_loop": schedule_before + stop_before,
        "batch_lines": batch_lines,
        "step_lines": step_lines,
        "regularized": bool(context["regularization_lines"]),
        "validation_lines": validation_lines,
        "end_of_epoch": schedule_each + stop_each,
        "after_loop": stop_after,
    }


def training_context(model: ModelIR, target: str, source, template: str, context: dict):
    """The template and context of the model code followed by its training script."""
    training = check(model, source)
    if target == "keras":
        return "keras/train.py.j2", keras_context(model, training, context)
    return "pytorch/train.py.j2", pytorch_context(model, training, context)
