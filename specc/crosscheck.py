"""`specc crosscheck`: prove that the Keras, PyTorch and ONNX builds of a spec agree, and
say where they don't.

Every backend is built from what specc generates (the Keras and PyTorch code is written to
a temporary folder and imported from there, the ONNX graph comes from ``build_onnx``), gets
one canonical weight set (``specc.weights``) and the same seeded inputs. Checks:

- **forward**: each output, for each pair of backends (inference mode);
- **localization**: when a pair disagrees, every layer's output is compared (Keras: a
  sub-model over the layers' outputs; ONNX: the layer-named values added as graph outputs;
  PyTorch: a tapped variant of the generated module that records each layer's output) and
  the first diverging layer is named (each target's runtime adapter, specc.targets);
- **training step** (Keras and PyTorch): one SGD step (learning rate 1, so the weight
  delta is the gradient) and one Adam step, every hyperparameter explicit, from the same
  weights on the same batch: loss, outputs in training mode (batch statistics), gradients,
  updated weights and BatchNormalization moving statistics. Dropout is disabled for the
  check by building both models from a variant of the spec with every Dropout rate 0 (the
  random masks of two frameworks cannot agree; everything else trains as written);
- **trained** (``run_dir``): the weights of a ``specc train`` run, test-set predictions of
  every backend: agreement of the predicted classes and each backend's accuracy.

Frameworks are imported only for the backends requested.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import targets
from . import weights as W
from .codegen import CodegenError
from .diagnostics import SpecError
from .ir import ModelIR

BACKENDS = targets.names()
MIN_AGREEMENT = 0.999  # trained check: share of identical test predictions for a pair
SGD = {"type": "sgd", "learning_rate": 1.0, "momentum": 0.0, "nesterov": False}
ADAM = {
    "type": "adam",
    "learning_rate": 0.001,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-7,
    "amsgrad": False,
}


class CrosscheckError(Exception):
    """The check cannot run: ``exit_code`` 2 (a bad request) or 3 (framework/data missing)."""

    def __init__(self, message: str, exit_code: int = 3):
        super().__init__(message)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One comparison: ``what`` of ``check`` between the backends of ``pair``."""

    check: str  # forward | train sgd | train adam | trained
    what: str
    pair: tuple[str, str]
    max_abs: float
    max_rel: float
    passed: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "check": self.check,
            "what": self.what,
            "pair": list(self.pair),
            "max_abs": _json_float(self.max_abs),
            "max_rel": _json_float(self.max_rel),
            "passed": self.passed,
            "note": self.note,
        }


@dataclass
class Divergence:
    """The first layer (topological order) whose output differs between two backends."""

    pair: tuple[str, str]
    layer: str | None  # None: every layer agrees within tolerance
    type: str = ""
    max_abs: float = 0.0
    max_rel: float = 0.0
    compared: int = 0  # layers compared

    def to_dict(self) -> dict:
        return {
            "pair": list(self.pair),
            "layer": self.layer,
            "type": self.type,
            "max_abs": _json_float(self.max_abs),
            "max_rel": _json_float(self.max_rel),
            "layers_compared": self.compared,
        }

    def text(self) -> str:
        pair = " vs ".join(self.pair)
        if self.layer is None:
            return f"{pair}: no single layer diverges ({self.compared} layers compared)"
        return (
            f"{pair}: first diverging layer '{self.layer}' ({self.type}): "
            f"max abs {_num(self.max_abs)}, max rel {_num(self.max_rel)}"
        )


@dataclass
class Report:
    spec: str
    model: str
    backends: list[str]
    weights: str
    batch: int
    seed: int
    atol: float
    rtol: float
    rows: list[Row] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.passed for row in self.rows)

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "model": self.model,
            "backends": self.backends,
            "weights": self.weights,
            "batch": self.batch,
            "seed": self.seed,
            "atol": self.atol,
            "rtol": self.rtol,
            "ok": self.ok,
            "rows": [row.to_dict() for row in self.rows],
            "divergences": [d.to_dict() for d in self.divergences],
            "accuracy": self.accuracy,
            "notes": self.notes,
        }

    def format_text(self) -> str:
        lines = [
            f"crosscheck {self.model} ({self.spec}): {', '.join(self.backends)}",
            f"weights: {self.weights}; inputs: batch {self.batch}, seed {self.seed}; "
            f"atol {self.atol:g}, rtol {self.rtol:g}",
            "",
        ]
        header = ("check", "compared", "backends", "max abs", "max rel", "result")
        table = [
            (
                r.check,
                r.what,
                " vs ".join(r.pair),
                _num(r.max_abs),
                _num(r.max_rel),
                ("PASS" if r.passed else "FAIL") + (f"  {r.note}" if r.note else ""),
            )
            for r in self.rows
        ]
        widths = [max(len(str(row[k])) for row in [header, *table]) for k in range(5)]
        for k, row in enumerate([header, *table]):
            cells = [
                str(row[i]).rjust(widths[i]) if i in (3, 4) else str(row[i]).ljust(widths[i])
                for i in range(5)
            ]
            lines.append("  ".join(cells) + "  " + row[5])
            if k == 0:
                lines.append("  ".join("-" * w for w in widths) + "  ------")
        if self.accuracy:
            lines.append("")
            lines.append(
                "test accuracy: "
                + ", ".join(f"{name} {acc:.4f}" for name, acc in self.accuracy.items())
            )
        if self.divergences:
            lines.append("")
            lines += [f"localization: {d.text()}" for d in self.divergences]
        lines += [f"note: {note}" for note in self.notes]
        lines.append("")
        failed = sum(not r.passed for r in self.rows)
        if failed:
            lines.append(f"FAIL: {failed} of {len(self.rows)} comparisons disagree")
        else:
            lines.append(f"PASS: {len(self.rows)} comparisons agree")
        return "\n".join(lines) + "\n"


def _json_float(value: float):
    return value if math.isfinite(value) else str(value)


def _num(value: float) -> str:
    return f"{value:.2e}" if math.isfinite(value) else str(value)


def compare(a, b, atol: float, rtol: float, slack=0.0) -> tuple[float, float, bool]:
    """(max abs error, max rel error, every element close).

    Close: ``|a - b| <= atol + rtol * max(|a|, |b|) + slack`` and every value finite (NaN or
    Inf on either side never passes, even where both agree; ``slack``, per element, is for
    errors propagated from an earlier comparison). The
    relative error ``|a - b| / max(|a|, |b|)`` is taken over elements larger than ``atol``
    only (smaller ones are judged by the absolute error)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf, math.inf, False
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)
        scale = np.maximum(np.abs(a), np.abs(b))
        scale = np.where(np.isnan(scale), 0.0, scale)
        finite = bool(np.isfinite(a).all() and np.isfinite(b).all())
        passed = finite and bool(np.all(diff <= atol + rtol * scale + slack))
        max_abs = float(diff.max()) if diff.size else 0.0
        if not finite:
            max_abs = math.inf
        big = scale > atol
        max_rel = float((diff[big] / scale[big]).max()) if big.any() else 0.0
    return max_abs, max_rel, passed


def _nonfinite_note(a, b, pair) -> str:
    """'' when both are finite, else which side holds how many NaN/Inf values."""
    parts = []
    for name, x in zip(pair, (a, b), strict=True):
        count = int((~np.isfinite(np.asarray(x, np.float64))).sum())
        if count:
            parts.append(f"{name} {count:,}")
    return f"non-finite values ({', '.join(parts)})" if parts else ""


def _compare_many(items, atol, rtol) -> tuple[float, float, bool, str]:
    """Aggregate over (name, a, b, slack): the maxima, all close, and the worst name."""
    max_abs = max_rel = 0.0
    passed, worst, worst_score = True, "", -1.0
    for name, a, b, slack in items:
        ab, rel, ok = compare(a, b, atol, rtol, slack)
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if not ok and not (np.isfinite(a64).all() and np.isfinite(b64).all()):
            score = math.inf
        elif a64.shape == b64.shape and a64.size:
            bound = atol + rtol * np.maximum(np.abs(a64), np.abs(b64)) + slack
            score = float((np.abs(a64 - b64) / bound).max())
        else:
            score = math.inf
        if score > worst_score or (score == worst_score == math.inf and not worst):
            worst, worst_score = name, score
        max_abs, max_rel, passed = max(max_abs, ab), max(max_rel, rel), passed and ok
    return max_abs, max_rel, passed, worst


# --------------------------------------------------------------------------- backends


def _build(name: str, model: ModelIR, folder: Path, tag: str = ""):
    """The runtime adapter of target ``name`` (specc.targets)."""
    return targets.get(name).runtime(model, folder, tag)


def _require(backends) -> None:
    for name in backends:
        target = targets.get(name)
        missing = target.missing_modules()
        if missing:
            from .extras import message

            raise CrosscheckError(message(missing[0], f"the {name} backend of crosscheck"))


def _check_batch_memory(model: ModelIR, batch: int, backends: int) -> None:
    """Refuse a batch whose inputs and layer outputs cannot fit (``--batch 1000000000``
    asked NumPy for 477 GiB of inputs: a MemoryError traceback, or the OOM killer), before
    anything is allocated: every backend keeps every layer's output, compared in float64."""
    from .infer import max_memory
    from .summary import readable_bytes

    per_sample = sum(math.prod(t.shape) for t in model.inputs) + sum(
        layer.activations for layer in model.layers
    )
    need = batch * per_sample * 8 * backends
    limit = max_memory()
    if need > limit:
        raise CrosscheckError(
            f"--batch-size {batch:,} needs about {readable_bytes(need)} for the inputs and every "
            f"layer's outputs in {backends} backends, above the {readable_bytes(limit)} limit; "
            f"use a smaller --batch-size (or raise SPECC_MAX_MEMORY)",
            exit_code=2,
        )


# --------------------------------------------------------------------------- inputs


def _inputs(
    model: ModelIR, batch: int, seed: int, high: int = 256, pad: bool = True
) -> list[np.ndarray]:
    """Seeded inputs: standard normal floats; integers in [0, high) (pixels, token ids);
    sequences read by an Embedding with mask_zero padded with 0s, unless not ``pad``."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for tensor in model.inputs:
        shape = (batch, *tensor.shape)
        if tensor.dtype.startswith("float"):
            out.append(rng.normal(size=shape).astype(tensor.dtype))
        else:  # ids: below every reading layer's input_dim (an Embedding's vocabulary)
            limits = [
                layer.spec.input_dim
                for layer in model.layers
                if tensor.name in layer.inputs and hasattr(layer.spec, "input_dim")
            ]
            top = min([high, *limits])
            count = int(np.prod(shape))
            # with mask_zero, 0 is padding: real ids from 1, padding added below
            low = 1 if _masks_zero(model, tensor.name) and top > 1 else 0
            if limits and count > top - low and count <= min(limits) - low:
                # more ids than ``high`` holds: distinct ids from the whole vocabulary
                top = min(limits)
            if limits and count <= top - low:
                # distinct ids: Keras's Adam squares an Embedding's sparse gradient per
                # occurrence, torch's the summed gradient; they differ when an id repeats
                ids = (low + rng.permutation(top - low)[:count]).reshape(shape)
            else:
                ids = rng.integers(low, top, size=shape)
            if pad and low and len(shape) == 2 and shape[1] > 1:
                # padded sequences, as pad_sequences writes them: 'pre' padding for the
                # first half of the batch, 'post' for the rest; at least one real id each
                for row in range(batch):
                    pad = int(rng.integers(0, shape[1]))
                    if row < batch // 2:
                        ids[row, :pad] = 0
                    else:
                        ids[row, shape[1] - pad :] = 0
            out.append(ids.astype(tensor.dtype))
    return out


random_inputs = _inputs


def _training_batch(model: ModelIR, batch: int) -> tuple[int, str | None]:
    """The batch of the training step, and a note when it is not ``batch``.

    Keras's Adam squares an Embedding's sparse gradient per occurrence of an id, torch's
    the summed gradient, so one step differs wherever an id repeats in the batch (Keras's
    own behaviour, not the generated code's). The step therefore uses at most as many
    samples as the vocabulary gives every id once; a vocabulary smaller than one sample
    cannot, and the note says why the Embedding's Adam update may differ."""
    fits = batch
    for tensor in model.inputs:
        limits = [
            layer.spec.input_dim
            for layer in model.layers
            if tensor.name in layer.inputs and hasattr(layer.spec, "input_dim")
        ]
        if not limits or tensor.dtype.startswith("float"):
            continue
        ids = min(limits) - (1 if _masks_zero(model, tensor.name) and min(limits) > 1 else 0)
        fits = min(fits, ids // max(1, math.prod(tensor.shape)))
    if fits == batch:
        return batch, None
    if fits >= 1:
        return fits, (
            f"training step: batch of {fits}, not {batch}, so that no token id repeats "
            "(Keras's Adam updates a repeated id of an Embedding's sparse gradient "
            "differently from PyTorch)"
        )
    return batch, (
        "training step: the vocabulary is smaller than one sample's ids, so ids repeat and "
        "Keras's Adam (per occurrence of an id of an Embedding's sparse gradient) may "
        "update the embeddings differently from PyTorch (the summed gradient)"
    )


def _masks_zero(model: ModelIR, tensor: str) -> bool:
    """Whether an Embedding with mask_zero reads the input ``tensor``."""
    return any(
        tensor in layer.inputs and getattr(layer.spec, "mask_zero", False) for layer in model.layers
    )


def _loss_spec(model: ModelIR) -> tuple[str | None, bool]:
    """(loss, from_logits) of the training step: the spec's, else None (summed MSE)."""
    training = model.training or {}
    if training and len(model.outputs) == 1:
        from .spec import Training

        parsed = Training.model_validate(training)
        return parsed.loss, parsed.from_logits
    return None, False


def _targets(model: ModelIR, loss: str | None, batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, 2])
    shapes = [(batch, *model.shape_of(name)) for name in model.outputs]
    if loss in (None, "mse"):
        return [rng.normal(size=s).astype(np.float32) for s in shapes]
    units = shapes[0][-1]
    if loss == "sparse_categorical_crossentropy":
        return [rng.integers(0, units, size=batch).astype(np.int64)]
    if loss == "categorical_crossentropy":
        return [np.eye(units, dtype=np.float32)[rng.integers(0, units, size=batch)]]
    return [rng.integers(0, 2, size=shapes[0]).astype(np.float32)]  # binary


def _no_cell_dropout(spec):
    """A recurrent layer (or a wrapper of one) without its input/recurrent dropout."""
    from .layers.base import Layer

    update = {k: 0.0 for k in ("dropout", "recurrent_dropout") if getattr(spec, k, 0.0)}
    inner = getattr(spec, "layer", None)
    if isinstance(inner, Layer):
        if any(getattr(inner, k, 0.0) for k in ("dropout", "recurrent_dropout")):
            update["layer"] = _no_cell_dropout(inner)
    return spec.model_copy(update=update) if update else spec


def without_dropout(model: ModelIR) -> ModelIR:
    """The same model with every Dropout rate 0, and the noise of every other random
    training-only layer (its class's ``noise_field``) 0: identical weights and layer names."""
    layers = [
        dataclasses.replace(layer, spec=layer.spec.model_copy(update={_noise(layer): 0.0}))
        if _noise(layer)
        else dataclasses.replace(layer, spec=_no_cell_dropout(layer.spec))
        for layer in model.layers
    ]
    return dataclasses.replace(model, layers=layers)


def _noise(layer) -> str | None:
    return getattr(type(layer.spec), "noise_field", None)


# --------------------------------------------------------------------------- the check


def _pairs(names):
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def localize(model: ModelIR, built: dict, pair, inputs, atol, rtol, cache) -> Divergence:
    """Compare every layer's output in topological order; the first one out of tolerance."""
    for name in pair:
        if name not in cache:
            cache[name] = built[name].intermediates(inputs)
    a, b = (cache[n] for n in pair)
    compared = 0
    for layer in model.layers:
        if layer.name not in a or layer.name not in b:
            continue
        compared += 1
        max_abs, max_rel, ok = compare(a[layer.name], b[layer.name], atol, rtol)
        if not ok:
            return Divergence(pair, layer.name, layer.type, max_abs, max_rel, compared)
    return Divergence(pair, None, compared=compared)


def every_layer_row(model: ModelIR, built: dict, pair, inputs, atol, rtol, cache):
    """Every layer's output compared (not only the model's outputs, where a wrong epsilon
    in an early BatchNormalization can shrink below any tolerance): one row naming the first
    layer out of tolerance and the worst layer by relative error, and the first divergence.

    The absolute tolerance is scaled by the layer's magnitude (``atol * max(1, max|x|)``):
    a float32 tensor of magnitude 100 carries rounding errors near 100 x those of one of
    magnitude 1, also in its elements near zero."""
    for name in pair:
        if name not in cache:
            cache[name] = built[name].intermediates(inputs)
    a, b = (cache[n] for n in pair)
    first = None
    worst, worst_rel = "", -1.0
    max_abs = max_rel = 0.0
    compared = 0
    for layer in model.layers:
        if layer.name not in a or layer.name not in b:
            continue
        compared += 1
        x, y = a[layer.name], b[layer.name]
        scale = max(1.0, float(np.max(np.abs(x)))) if np.size(x) else 1.0
        layer_abs, rel, ok = compare(x, y, atol * scale, rtol)
        max_abs, max_rel = max(max_abs, layer_abs), max(max_rel, rel)
        if rel > worst_rel:
            worst, worst_rel = layer.name, rel
        if not ok and first is None:
            first = Divergence(pair, layer.name, layer.type, layer_abs, rel, compared)
    note = f"first: {first.layer}; " if first else ""
    note += f"worst: {worst}" if worst else ""
    row = Row("forward", f"every layer ({compared})", pair, max_abs, max_rel, first is None, note)
    return row, first


def crosscheck(
    model: ModelIR,
    *,
    spec_path: str = "",
    backends=BACKENDS,
    weights: dict | None = None,
    weights_label: str | None = None,
    run_dir: str | Path | None = None,
    batch: int = 8,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    train_step: bool = True,
    every_layer: bool = True,
    data_dir: str | None = None,
    limit: int | None = None,
    log=None,
) -> Report:
    """Build every requested backend and compare them; see the module docstring."""
    backends = list(dict.fromkeys(backends))
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise CrosscheckError(
            f"unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}", exit_code=2
        )
    if len(backends) < 2:
        raise CrosscheckError("crosscheck needs at least two backends", exit_code=2)
    if batch < 1:
        raise CrosscheckError("--batch-size must be at least 1", exit_code=2)
    _check_batch_memory(model, batch, len(backends))
    _require(backends)
    run = None
    if run_dir is not None:
        if weights is not None:
            raise CrosscheckError("give either weights or a run folder, not both", exit_code=2)
        run = _read_run(model, Path(run_dir))
        weights, weights_label = run["weights"], f"run {run_dir} (weights.npz)"
    if weights is None:
        weights = W.random_weights(model, seed)
        weights_label = weights_label or f"random (seed {seed})"
    try:
        W.check(model, weights)
    except ValueError as exc:
        raise CrosscheckError(f"the weights do not fit the model: {exc}", exit_code=2) from None
    say = log or (lambda text: None)
    report = Report(
        spec_path or model.file,
        model.name,
        backends,
        weights_label or "given",
        batch,
        seed,
        atol,
        rtol,
    )
    with tempfile.TemporaryDirectory(prefix="specc-crosscheck-") as tmp:
        folder = Path(tmp)
        built, refused = {}, {}
        for name in backends:
            say(f"building {name}")
            try:
                built[name] = _build(name, model, folder)
                built[name].load(weights)
            except (SpecError, CodegenError) as exc:  # a target that refuses the spec
                built.pop(name, None)
                refused[name] = exc.diagnostics
        if refused:
            if len(built) < 2:
                lines = [d.format() for found in refused.values() for d in found]
                raise CrosscheckError(
                    "fewer than two backends can build this spec:\n" + "\n".join(lines),
                    exit_code=1,
                )
            backends = [b for b in backends if b in built]
            report.backends = backends
            for name, found in refused.items():
                more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
                report.notes.append(
                    f"{name}: not compared, the target refuses the spec: {found[0].message}{more}"
                )
        inputs = _inputs(model, batch, seed)
        outputs = {name: b.forward(inputs) for name, b in built.items()}
        cache: dict = {}
        for pair in _pairs(backends):
            failed = False
            for index, out_name in enumerate(model.outputs):
                max_abs, max_rel, ok = compare(
                    outputs[pair[0]][index], outputs[pair[1]][index], atol, rtol
                )
                report.rows.append(
                    Row("forward", out_name, pair, max_abs, max_rel, ok, _nonfinite_note(
                        outputs[pair[0]][index], outputs[pair[1]][index], pair))
                )  # fmt: skip
                failed = failed or not ok
            if every_layer:
                say(f"comparing every layer: {pair[0]} vs {pair[1]}")
                row, divergence = every_layer_row(model, built, pair, inputs, atol, rtol, cache)
                report.rows.append(row)
                if divergence is not None:
                    report.divergences.append(divergence)
            elif failed:
                say(f"localizing {pair[0]} vs {pair[1]}")
                report.divergences.append(localize(model, built, pair, inputs, atol, rtol, cache))
        if train_step:
            trainers = [name for name in built if targets.get(name).trains]
            if len(trainers) >= 2:
                _training_rows(model, weights, folder, built, trainers[:2], report, say)
            else:
                report.notes.append(
                    "the training step needs two backends that train (keras, pytorch): skipped"
                )
        if run is not None:
            _trained_rows(model, run, built, report, data_dir, limit, say)
    return report


def _training_rows(model, weights, folder, built, pair, report, say) -> None:
    variant = without_dropout(model)
    if any(a.spec is not b.spec for a, b in zip(model.layers, variant.layers)):
        report.notes.append(
            "training step: dropout rates (and other training noise) set to 0 (a variant of the spec)"
        )
        nets = {name: _build(name, variant, folder, "_train") for name in pair}
    else:
        nets = {name: built[name] for name in pair}
    loss_spec = _loss_spec(model)
    batch, note = _training_batch(model, report.batch)
    if note:
        report.notes.append(note)
    from .infer import incoming_masks

    dropped = sorted(
        {m for n, m in incoming_masks(model).items() if model.layer(n).spec.keras_masking == "drop"}
    )
    if dropped:  # the padding id would get gradients at many steps: a repeated id
        report.notes.append(
            f"training step: sequences without padding (a layer drops the mask of "
            f"{', '.join(repr(m) for m in dropped)}, so id 0 would repeat with gradients, "
            "which Keras's Adam updates differently from PyTorch)"
        )
    inputs = _inputs(model, batch, report.seed, pad=not dropped)
    targets = _targets(model, loss_spec[0], batch, report.seed)
    kinds = {key: kind for key, _, kind in W.layout(model)}
    pair = tuple(pair)
    atol, rtol = report.atol, report.rtol
    reference = keras64 = None
    for label, optimizer in (("train sgd", SGD), ("train adam", ADAM)):
        say(f"{label}: one step")
        results = {}
        for name, net in nets.items():
            net.load(weights)
            results[name] = net.train_step(inputs, targets, loss_spec, optimizer)
            net.load(weights)
        k, t = results[pair[0]], results[pair[1]]
        what = f"loss ({loss_spec[0] or 'mse'})"
        report.rows.append(Row(label, what, pair, *compare(k["loss"], t["loss"], atol, rtol)))
        for index, out_name in enumerate(model.outputs):
            row = compare(k["outputs"][index], t["outputs"][index], atol, rtol)
            report.rows.append(Row(label, f"{out_name} (training mode)", pair, *row))
        slack = _step_sensitivity(optimizer, k["gradients"], t["gradients"])
        if label == "train sgd" and "pytorch" in pair and reference is None:
            say("float64 reference gradients (pytorch)")
            reference = _float64_gradients(variant, weights, folder, inputs, targets, loss_spec)
            if reference is not None and "keras" in pair:
                say("float64 gradients (keras)")
                keras64 = _keras_float64_gradients(
                    variant, weights, folder, inputs, targets, loss_spec
                )
                if keras64 is None:
                    report.notes.append(
                        "gradients: the Keras model could not be built in float64; float32 "
                        "Keras judged against PyTorch's rounding only"
                    )
                else:
                    report.rows.append(_float64_row(label, pair, keras64, reference))
        if reference is not None:
            report.rows.append(
                _gradient_row(label, pair, k, t, pair.index("pytorch"), reference, keras64 or None)
            )
        plain = reference is None  # without a float64 reference: plain atol/rtol
        groups = (
            ("gradients", k["gradients"], t["gradients"], lambda key, plain=plain: plain),
            ("updated weights", k["after"], t["after"], lambda key: kinds[key] == "trainable"),
            ("moving statistics", k["after"], t["after"], lambda key: kinds[key] != "trainable"),
        )
        for what, ka, ta, keep in groups:
            keys = [key for key in ka if keep(key)]
            if not keys:
                continue
            items = [
                (key, ka[key], ta[key], slack.get(key, 0.0) if what == "updated weights" else 0.0)
                for key in keys
            ]
            max_abs, max_rel, ok, worst = _compare_many(items, atol, rtol)
            note = "" if ok else f"worst: {worst}"
            report.rows.append(
                Row(label, f"{what} ({len(keys)})", pair, max_abs, max_rel, ok, note)
            )


#: gradients PASS when the two float32 backends differ by at most this multiple of how far
#: float32 PyTorch is from a float64 PyTorch reference (both relative to each weight's
#: gradient size; plus a floor for exact zeros)
GRADIENT_FACTOR = 10.0


def _float64_gradients(model, weights, folder, inputs, targets, loss_spec) -> dict | None:
    """The gradients of the same step computed by the generated PyTorch module in float64."""
    try:
        import torch

        from .targets.pytorch.runtime import TorchRuntime, _loss, regularization
    except ImportError:
        return None
    runtime = TorchRuntime(model, folder, "_float64")
    net = runtime.net.double()
    with torch.no_grad():
        for key, w, tensor in W.torch_tensors(net, model):
            tensor.copy_(torch.from_numpy(W.to_target(weights[key], w, "pytorch")).double())
    net.train()
    outs = net(*(torch.from_numpy(np.asarray(x, np.float64)) for x in inputs))
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    ys = [torch.from_numpy(y.astype(np.float64) if y.dtype.kind == "f" else y) for y in targets]
    loss = _loss(outs, ys, loss_spec) + regularization(net)
    loss.backward()
    grads = {}
    for key, w, tensor in W.torch_tensors(net, model):
        if w.trainable:
            array = np.zeros(tuple(tensor.shape)) if tensor.grad is None else tensor.grad.numpy()
            grads[key] = W.from_target(array, w, "pytorch").astype(np.float64)
    return grads


#: the two frameworks' float64 gradients (same weights, same batch) agree to this, relative
#: to each weight's gradient size: what is left is float32 constants (Keras keeps epsilon as
#: a float32), 7.6e-8 on MobileNet; a semantic difference (an epsilon, a stride, an
#: activation's derivative) shows far above it
FLOAT64_AGREEMENT = 1e-6
#: ... or differ by at most this much (gradients that are mathematically zero)
FLOAT64_FLOOR = 1e-12


def _keras_float64_gradients(model, weights, folder, inputs, targets, loss_spec):
    """The Keras model's gradients of the same step with every layer in float64 (Keras's
    "float64" dtype policy), or None when that build fails."""
    try:
        import keras

        from .targets.keras.runtime import KerasRuntime
    except ImportError:
        return None
    previous = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("float64")
        net = KerasRuntime(model, folder, "_float64")
        net.load(weights)
        xs = [np.asarray(x, np.float64) if np.asarray(x).dtype.kind == "f" else x for x in inputs]
        grads = net.train_step(xs, targets, loss_spec, SGD)["gradients"]
    except Exception:  # a layer without float64 kernels: judged without it (noted)
        return None
    finally:
        keras.config.set_dtype_policy(previous)
    return {key: np.asarray(g, np.float64) for key, g in grads.items()}


def _float64_row(label, pair, keras64: dict, torch64: dict) -> Row:
    """The semantic check: Keras and PyTorch in float64 give the same gradients (rounding
    is out of the way there, so any difference beyond FLOAT64_AGREEMENT is a real one)."""
    worst, worst_rel, worst_abs, worst_score, max_abs, passed = "", 0.0, 0.0, -1.0, 0.0, True
    for key, ref in torch64.items():
        if key not in keras64:
            continue
        other = keras64[key]
        if other.shape != ref.shape:
            passed, worst = False, f"{key} (shape {other.shape} vs {ref.shape})"
            continue
        if not ref.size:
            continue
        diff = float(np.max(np.abs(other - ref)))
        rel = diff / (float(np.max(np.abs(ref))) + 1e-30)
        max_abs = max(max_abs, diff)
        # a gradient that is mathematically 0 (a bias before BatchNormalization) is float64
        # noise in both: judged by the absolute floor, not relative to its own size
        score = min(rel / FLOAT64_AGREEMENT, diff / FLOAT64_FLOOR)
        passed = passed and score <= 1.0
        if score > worst_score:
            worst, worst_rel, worst_score = key, rel, score
            worst_abs = diff
    note = (
        f"worst {worst}: {_num(worst_rel)} relative to |g64|, {_num(worst_abs)} absolute "
        f"(limit {FLOAT64_AGREEMENT:g} relative or {FLOAT64_FLOOR:g} absolute)"
    )
    return Row(
        label, f"gradients ({len(torch64)}) in float64", pair, max_abs, worst_rel, passed, note
    )


def _gradient_row(label, pair, k, t, torch_index, reference, other64=None) -> Row:
    """Float32 gradients judged by each framework's own rounding. For each weight, distances
    are taken relative to its float64 gradient's size (``max|g64|``): ``rel = max|keras -
    pytorch| / max|g64|``, and the weight's rounding ``r`` is the larger of ``max|pytorch32 -
    pytorch64|`` and, when the other framework's float64 gradients ``other64`` are given,
    ``max|keras32 - keras64|`` (TensorFlow's float32 backward of an ill-conditioned gradient
    can be 1000x less accurate than PyTorch's: MobileNet). A weight passes when ``rel <=
    GRADIENT_FACTOR * max(r, median r over all weights) + 1e-6`` (one tensor's own rounding
    can be small by luck of its summation order; the median is the network's rounding
    level; 1e-6 covers exact zeros). The note shows the worst weight's numbers."""
    grads = (k["gradients"], t["gradients"])
    torch32 = grads[torch_index]
    other32 = grads[1 - torch_index]
    rows = []  # (key, diff, rel, own rounding)
    shapes_ok = True
    for key, ref in reference.items():
        if key not in grads[0] or key not in grads[1]:
            continue
        a, b = np.asarray(grads[0][key], np.float64), np.asarray(grads[1][key], np.float64)
        if a.shape != b.shape or a.shape != ref.shape:
            shapes_ok = False
            continue
        if not a.size:
            continue
        size = float(np.max(np.abs(ref))) + 1e-30
        diff = float(np.max(np.abs(a - b)))
        err32 = float(np.max(np.abs(np.asarray(torch32[key], np.float64) - ref)))
        if other64 is not None and key in other64:
            own = np.abs(np.asarray(other32[key], np.float64) - other64[key])
            err32 = max(err32, float(np.max(own)))
        rows.append((key, diff, diff / size, err32 / size))
    level = float(np.median([r[3] for r in rows])) if rows else 0.0
    worst, worst_score, worst_rel, worst_own = "", -1.0, 0.0, 0.0
    passed = shapes_ok
    for key, _, rel, own in rows:
        bound = GRADIENT_FACTOR * max(own, level) + 1e-6
        passed = passed and rel <= bound
        if rel / bound > worst_score:
            worst, worst_score, worst_rel, worst_own = key, rel / bound, rel, own
    max_abs = max((r[1] for r in rows), default=0.0)
    max_rel = max((r[2] for r in rows), default=0.0)
    note = (
        f"worst {worst}: {pair[0]} vs {pair[1]} {_num(worst_rel)}, float32 vs float64 "
        f"{_num(worst_own)} (median {_num(level)}; limit {GRADIENT_FACTOR:g}x), relative to |g64|"
    )
    if other64 is not None:
        note += " (rounding: the larger of both frameworks' float32 vs float64)"
    return Row(
        label, f"gradients ({len(reference)}) vs float64", pair, max_abs, max_rel, passed, note
    )


def _step_sensitivity(optimizer: dict, grads_a: dict, grads_b: dict) -> dict:
    """How far the two gradients' difference may move the updated weights, per element.

    SGD: ``lr * |dg|``. Adam's first step is ``lr * g / (|g| + eps / sqrt(1 - beta_2))``,
    whose slope is at most ``lr * sqrt(1 - beta_2) / eps`` (316 with lr 1e-3, eps 1e-7): where
    a gradient is mathematically zero (a bias right before BatchNormalization) its sign is
    rounding noise, which the step amplifies up to that factor."""
    lr = optimizer["learning_rate"]
    if optimizer["type"] == "adam":
        lr *= math.sqrt(1 - optimizer["beta_2"]) / optimizer["epsilon"]
    return {
        key: lr * np.abs(np.asarray(grads_a[key], np.float64) - np.asarray(grads_b[key]))
        for key in grads_a
        if key in grads_b and np.shape(grads_a[key]) == np.shape(grads_b[key])
    }


# --------------------------------------------------------------------------- trained runs


def _read_run(model: ModelIR, folder: Path) -> dict:
    path = folder / "weights.npz"
    if not path.is_file():
        raise CrosscheckError(f"{folder} is not a specc run folder (no weights.npz)", exit_code=2)
    try:
        weights = W.load(path)
    except Exception as exc:  # empty, truncated or not an npz
        raise CrosscheckError(f"cannot read {path}: {exc}", exit_code=3) from None
    for key, value in weights.items():
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            count = int((~np.isfinite(value)).sum())
            first = [int(i) for i in np.argwhere(~np.isfinite(value))[0]]
            raise CrosscheckError(
                f"{path}: {key} holds {count:,} NaN/Inf values, the first at index {first}; "
                "a model with non-finite weights cannot be checked",
                exit_code=3,
            )
    from .runner.predict import PredictError, _check_normalization, read_run_json

    run = {"weights": weights, "normalization": None, "info": {}}
    try:  # a record that is not as specc writes it: one line naming it, not a traceback
        if (folder / "run.json").is_file():
            run["info"] = read_run_json(folder / "run.json")
            want = run["info"].get("spec_sha256")
            if want and want != model.sha256():
                raise CrosscheckError(
                    f"{folder} was trained from a different spec (spec_sha256 differs)",
                    exit_code=2,
                )
            data = run["info"].get("data")
            if data is not None and not isinstance(data, dict):
                raise PredictError(f"{folder / 'run.json'}: 'data' is not a JSON object")
        if (folder / "normalization.json").is_file():
            run["normalization"] = read_run_json(folder / "normalization.json")
            _check_normalization(folder / "normalization.json", run["normalization"])
    except PredictError as exc:
        raise CrosscheckError(str(exc), exit_code=3) from None
    return run


def _trained_rows(model, run, built, report, data_dir, limit, say) -> None:
    from .data import DatasetError, prepare
    from .runner.losses import predicted_classes, probabilities
    from .spec import Training

    if not model.training:
        raise CrosscheckError("the spec has no training: section, so no test set to predict")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise CrosscheckError("trained runs have one input and one output")
    training = Training.model_validate(model.training)
    if data_dir is None:  # where the run found its data, unless told otherwise
        from .runner.run import run_data_dir

        data_dir = run_data_dir(run["info"])
    if limit is None:  # the run's --limit: the same test samples as the run's metrics
        limit = (run["info"].get("data") or {}).get("limit")
    say("loading the test set")
    try:
        data = prepare(
            training,
            model.inputs[0].shape,
            data_dir,
            output_units=model.shape_of(model.outputs[0])[-1],
            base_dir=Path(model.file).parent,
            limit=limit,
            download=os.environ.get("SPECC_OFFLINE", "") in ("", "0"),
        )
    except DatasetError as exc:
        raise CrosscheckError(str(exc)) from None
    x = data.x_test
    if run["normalization"] is not None and data.x_test_raw is not None:
        data.normalization = run["normalization"]  # exactly the run's preprocessing
        x = data.transform(data.x_test_raw)
    x = np.asarray(x, dtype=np.float32)
    predictions, outputs = {}, {}
    for name, backend in built.items():
        say(f"predicting {len(x)} test samples with {name}")
        parts = [backend.forward([x[i : i + 500]])[0] for i in range(0, len(x), 500)]
        outputs[name] = np.concatenate(parts)
        if training.loss != "mse":
            probs = probabilities(outputs[name], training.loss, training.from_logits)
            predictions[name] = predicted_classes(probs)
            truth = data.class_indices(data.y_test)
            report.accuracy[name] = float(np.mean(predictions[name] == truth))
    for pair in _pairs(list(built)):
        max_abs, max_rel, ok = compare(outputs[pair[0]], outputs[pair[1]], report.atol, report.rtol)
        if predictions:
            same = int(np.sum(predictions[pair[0]] == predictions[pair[1]]))
            rate = same / max(len(x), 1)
            ok = rate >= MIN_AGREEMENT
            note = f"{rate:.2%} identical predictions ({same}/{len(x)})"
        else:
            note = ""
        bad = _nonfinite_note(outputs[pair[0]], outputs[pair[1]], pair)
        if bad:
            ok, note = False, bad
        what = f"{model.outputs[0]} on the test set ({len(x)} samples)"
        report.rows.append(Row("trained", what, pair, max_abs, max_rel, ok, note))
