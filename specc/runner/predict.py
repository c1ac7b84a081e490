"""`specc predict` and `specc evaluate`: use a finished run folder.

A run folder holds everything needed: ``run.json`` (model, backend, the data options and
the training section), ``normalization.json`` (the preprocessing fitted on the training
split), the model in its backend (``model.keras`` / ``model.pt`` with ``model_pytorch.py``)
and ``model.onnx``. Inputs go through exactly the run's preprocessing: raw samples as the
dataset's loader gives them (e.g. digits 0..16, MNIST 0..255), then ``normalization.json``,
then the model's input shape.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm", ".tif", ".tiff")
ENGINES = ("backend", "onnx")


class PredictError(Exception):
    """A usage problem (bad run folder or inputs): exit code 2, or ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Inputs:
    raw: np.ndarray  # samples as the dataset's loader gives them, (N, *sample_shape)
    names: list[str]  # one per sample: file name, or "<file>[i]"
    labels: np.ndarray | None  # class indices when the file carries them


def _read_json(path: Path) -> dict:
    """A run file's JSON object (PredictError naming the file when it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictError(f"{path.parent} is not a finished specc run (no {path.name})") from None
    except (OSError, ValueError) as exc:
        raise PredictError(f"{path}: cannot read: {exc}") from None
    except RecursionError:
        raise PredictError(f"{path}: cannot read: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise PredictError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


read_run_json = _read_json


def _damaged(path: Path, exc: BaseException) -> PredictError:
    """A run file that specc did not write so (edited, truncated, from elsewhere)."""
    first = str(exc).strip().splitlines()
    reason = first[0] if first else type(exc).__name__
    if type(exc).__name__ == "ValidationError":  # pydantic: the first error's location and text
        errors = exc.errors()  # type: ignore[attr-defined]
        if errors:
            where = ".".join(str(p) for p in errors[0]["loc"])
            reason = f"{where + ': ' if where else ''}{errors[0]['msg']}"
    return PredictError(f"{path}: not as specc writes it ({reason}); train the run again")


def _check_normalization(path: Path, stats: dict) -> None:
    """What training recorded (every run writes mode and scale): refuse anything else
    rather than predict from inputs scaled differently than the model was trained on."""
    mode = stats.get("mode")
    if "mode" not in stats:
        raise PredictError(f"{path}: no normalization 'mode'")
    if mode not in ("unit", "standardize", "none"):
        raise PredictError(f"{path}: unknown normalization mode {mode!r}")
    needed = ("scale", "mean", "std") if mode == "standardize" else ("scale",)
    for key in needed:
        if key not in stats:
            raise PredictError(f"{path}: normalization {mode!r} has no {key!r}")
        value = stats[key]
        try:
            array = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            raise PredictError(f"{path}: {key} must be numbers, got {value!r}") from None
        if array.size == 0 or not np.isfinite(array).all():
            raise PredictError(f"{path}: {key} must be finite numbers, got {value!r}")
        if key == "scale" and not (array > 0).all():
            raise PredictError(f"{path}: scale must be > 0, got {value!r}")


def _dims(value) -> tuple[int, ...]:
    dims = tuple(value)
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"a shape must be positive integers, got {value!r}")
    return dims


class TrainedRun:
    """A run folder loaded for inference through its backend or onnxruntime."""

    def __init__(self, run_dir: str | Path, engine: str = "backend"):
        from ..spec import Training

        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise PredictError(f"{self.dir}: no such run folder")
        if engine not in ENGINES:
            raise PredictError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.info = _read_json(self.dir / "run.json")
        self.normalization = _read_json(self.dir / "normalization.json")
        #: the model input takes integer ids (recorded by prepare(..., integer=True))
        self.integer = bool(self.normalization.get("integer", False))
        data = self.info.get("data")
        if not data or "training" not in data:
            raise PredictError(
                f"{self.dir} was written by an older specc (run.json has no data section); "
                "train it again to predict with it"
            )
        self.data = data
        record = self.dir / "run.json"
        try:
            self.training = Training.model_validate(data["training"])
            self.input_shape = _dims(data["input_shape"])
            self.sample_shape = _dims(data["sample_shape"])
            self.class_names = [str(c) for c in data["class_names"] or []]
            model, spec = self.info.get("model"), self.info.get("spec")
            if not isinstance(model, str) or not (spec is None or isinstance(spec, str)):
                raise TypeError("'model' and 'spec' must be strings")
            if not isinstance(data.get("limit"), (int, type(None))):
                raise TypeError("data.limit must be an integer")
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged(record, exc) from None
        _check_normalization(self.dir / "normalization.json", self.normalization)
        self.engine = engine
        self.backend_name = self.info.get("backend", "keras")
        self._model = None

    # ------------------------------------------------------------------ preprocessing
    def model_inputs(self, raw: np.ndarray) -> np.ndarray:
        """Raw samples -> model inputs, as the run's training did."""
        from ..data import DatasetError
        from ..data.prepare import _ids, apply_normalization
        from ..data.preprocess import reshape_to

        try:
            if self.integer:  # token ids: as training fed them (int64, never normalized)
                x = _ids(
                    reshape_to(np.asarray(raw), self.input_shape, name="the inputs"), "the inputs"
                )
                return x
            x = apply_normalization(np.asarray(raw), self.normalization)
            return np.asarray(reshape_to(x, self.input_shape, name="the inputs"), np.float32)
        except DatasetError as exc:
            raise PredictError(str(exc)) from None

    # ------------------------------------------------------------------ models
    def _load(self):
        if self._model is not None:
            return self._model
        if self.engine == "onnx":
            self._model = self._load_onnx()
        elif self.backend_name == "keras":
            self._model = self._load_keras()
        else:
            self._model = self._load_torch()
        return self._model

    def _missing(self, module: str):
        from ..extras import message

        engine = self.engine if self.engine == "onnx" else self.backend_name
        return PredictError(message(module, f"the {engine} engine"), exit_code=3)

    def _load_onnx(self):
        path = self.dir / "model.onnx"
        if not path.is_file():
            raise PredictError(f"{self.dir} has no model.onnx (trained without onnx installed?)")
        try:
            import onnxruntime as ort
        except ImportError:
            raise self._missing("onnxruntime") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged file: one line, no traceback
            raise _unloadable(path, exc) from None

    def _load_keras(self):
        try:
            from ..frameworks import import_keras

            keras = import_keras()
        except ImportError:
            raise self._missing("keras") from None
        from .keras_backend import KerasBackend

        path = self.dir / "model.keras"
        if not path.is_file():
            raise PredictError(f"{self.dir} has no model.keras")
        try:
            model = keras.models.load_model(path)
        except Exception as exc:  # noqa: BLE001 - a damaged file: one line, no traceback
            raise _unloadable(path, exc) from None
        return KerasBackend(model, self.training)

    def _load_torch(self):
        try:
            import torch
        except ImportError:
            raise self._missing("torch") from None
        from ..codegen.pyformat import class_name
        from .run import import_generated
        from .torch_backend import TorchBackend

        code, weights = self.dir / "model_pytorch.py", self.dir / "model.pt"
        for path in (code, weights):
            if not path.is_file():
                raise PredictError(f"{self.dir} has no {path.name}")
        try:  # the run's own generated code (a run folder is trusted, as a saved model)
            module = import_generated(code, f"specc_run_pytorch_{self.info['model']}")
            net = getattr(module, class_name(self.info["model"]))()
        except Exception as exc:  # noqa: BLE001 - an edited or truncated file: one line
            raise _unloadable(code, exc) from None
        try:  # weights_only: the file's pickles never run code
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - a damaged file: one line, no traceback
            raise _unloadable(weights, exc) from None
        net.eval()
        return TorchBackend(net, self.training)

    def outputs(self, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        """The model's outputs for model inputs ``x`` (inference mode)."""
        model = self._load()
        parts = []
        for start in range(0, len(x), chunk):
            xb = x[start : start + chunk]
            if self.engine == "onnx":
                if self.integer:  # ids as the graph's input type (tensor(int32) or int64)
                    xb = xb.astype(np.int32 if "int32" in model.get_inputs()[0].type else np.int64)
                feed = {model.get_inputs()[0].name: xb}
                parts.append(np.asarray(model.run([model.get_outputs()[0].name], feed)[0]))
            elif self.backend_name == "keras":
                parts.append(np.asarray(model.model.predict_on_batch(xb)))
            else:
                import torch

                with torch.no_grad():
                    parts.append(model.module(torch.from_numpy(np.ascontiguousarray(xb))).numpy())
        if not parts:
            return np.zeros((0, *self._output_tail()), np.float32)
        return np.concatenate(parts)

    def _output_tail(self):
        return (len(self.class_names),) if self.class_names else (1,)

    def loss_and_outputs(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """(outputs, loss): through the backend as training computed it; with onnx, the
        outputs from onnxruntime and the loss from the backend's formula in numpy."""
        if self.engine != "onnx":
            return self._load().evaluate(x, y, self.training.batch_size)
        outputs = self.outputs(x)
        loss = numpy_loss(outputs, y, self.training)
        factors = self.data.get("regularizers")
        if factors:  # the weights' penalty, which Keras's evaluate includes
            from .. import weights as W

            loss += W.penalty(W.load(self.dir / "weights.npz"), factors)
        return outputs, loss


def _unloadable(path: Path, exc: BaseException) -> PredictError:
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if len(reason) > 160:  # torch.load's first line is a paragraph
        reason = reason[:157] + "..."
    return PredictError(f"{path}: cannot be loaded ({reason}); the run folder is damaged")


def numpy_loss(outputs, y, training) -> float:
    """The loss as Keras computes it from probabilities (clipped to [1e-7, 1 - 1e-7])."""
    from .losses import EPSILON, probabilities

    if training.loss == "mse":
        return float(np.mean((np.asarray(outputs, np.float64) - np.asarray(y)) ** 2))
    probs = probabilities(outputs, training.loss, training.from_logits)
    y = np.asarray(y)
    if training.loss == "binary_crossentropy":
        probs = np.clip(probs, EPSILON, 1 - EPSILON)
        y = y.reshape(probs.shape).astype(np.float64)
        return float(np.mean(-(y * np.log(probs) + (1 - y) * np.log(1 - probs))))
    probs = np.clip(probs / probs.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    if training.loss == "sparse_categorical_crossentropy":
        picked = probs[np.arange(len(probs)), y.reshape(-1).astype(np.int64)]
        return float(np.mean(-np.log(picked)))
    return float(np.mean(-(y * np.log(probs)).sum(axis=-1)))


# ---------------------------------------------------------------------- inputs


def _image(path: Path, sample_shape: tuple, scale: float) -> np.ndarray:
    """An image file as a raw sample of the dataset: resized to its height x width, in its
    channels, 0..255 mapped to the dataset's raw range (0..``scale``)."""
    try:
        from PIL import Image
    except ImportError:
        from ..extras import message

        raise PredictError(message("PIL", "reading images"), 3) from None
    if len(sample_shape) not in (2, 3):
        raise PredictError(
            f"the run's samples have shape {list(sample_shape)}, not images: give .npy or .npz"
        )
    height, width = sample_shape[0], sample_shape[1]
    channels = sample_shape[2] if len(sample_shape) == 3 else 1
    import warnings

    from ..data.loaders import MAX_IMAGE_PIXELS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as img:
            if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:  # read from the header only
                raise PredictError(
                    f"{path}: refusing the image: {img.size[0]}x{img.size[1]} pixels is more "
                    f"than {MAX_IMAGE_PIXELS:,} (a decompression bomb, or far too large)"
                )
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (width, height):
                img = img.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.float64)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PredictError(f"{path}: refusing the image: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's parsers raise all three
        raise PredictError(f"{path}: cannot read the image: {exc}") from None
    pixels = pixels * (scale / 255.0)
    if scale == 255.0:
        pixels = pixels.round()
    return pixels.reshape(sample_shape)


def _labels(path: Path, name: str, y: np.ndarray, run: TrainedRun) -> np.ndarray:
    """Class indices from an .npz's labels: whole numbers below the run's class count."""
    if y.dtype.kind not in "biuf" or (
        y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all())
    ):
        raise PredictError(f"{path}: '{name}' must hold class indices (whole numbers)")
    y = y.astype(np.int64)
    classes = len(run.class_names)
    if y.size and (y.min() < 0 or (classes and y.max() >= classes)):
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        raise PredictError(
            f"{path}: '{name}' holds the class index {bad}; the run's classes are 0 to "
            f"{classes - 1}"
        )
    return y


def _load_npy(path: Path) -> np.ndarray:
    """An .npy whose header is checked against the file's size and the memory limit first."""
    from ..infer import max_memory

    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        held = path.stat().st_size - handle.tell()
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    declared = math.prod(shape) * dtype.itemsize
    if declared != held:
        raise ValueError(
            f"the header declares shape {tuple(shape)} ({declared:,} bytes) but the file holds "
            f"{held:,}: truncated or corrupted"
        )
    if declared > max_memory():
        raise ValueError(f"{declared:,} bytes is more than SPECC_MAX_MEMORY allows")
    return np.load(path, allow_pickle=False)


def read_inputs(path: str | Path, run: TrainedRun) -> Inputs:
    """Samples from an .npy, an .npz (``x`` and optional ``y``), an image, or a folder of
    images, as raw samples of the run's dataset."""
    path = Path(path)
    scale = float(run.normalization.get("scale", 1.0))
    sample = run.sample_shape
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PredictError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        raw = np.stack([_image(p, sample, scale) for p in files])
        return Inputs(raw, [p.name for p in files], None)
    if not path.is_file():
        raise PredictError(f"{path}: no such file or folder")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Inputs(_image(path, sample, scale)[None], [path.name], None)
    from ..data import DatasetError
    from ..data.bounded import NpzReader

    labels = None
    try:  # headers checked before anything is allocated (a header may claim 149 GiB)
        if path.suffix.lower() == ".npy":
            array = _load_npy(path)
        elif path.suffix.lower() == ".npz":
            with NpzReader(path) as npz:
                key = next((k for k in ("x", "inputs", "images") if k in npz.files), None)
                if key is None:
                    raise PredictError(
                        f"{path}: no 'x' array (found: {', '.join(npz.files) or 'none'})"
                    )
                array = npz.read(key)
                for name in ("y", "labels"):
                    if name in npz.files:
                        labels = _labels(path, name, npz.read(name).reshape(-1), run)
                        break
        else:
            raise PredictError(
                f"{path}: give an .npy, an .npz, an image ({', '.join(IMAGE_SUFFIXES)}) or a folder"
            )
    except DatasetError as exc:
        raise PredictError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise PredictError(f"{path}: cannot read: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise PredictError(f"{path}: expected numbers, got an array of {array.dtype}")
    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise PredictError(
            f"{path}: holds {bad:,} NaN/Inf value{'s' if bad > 1 else ''}; a model's "
            "prediction for them means nothing (training refuses them too)"
        )
    per_sample = math.prod(sample)
    if tuple(array.shape) == sample or array.size == per_sample and array.ndim < len(sample) + 1:
        array = array.reshape((1, *sample))
    if array.ndim == 0 or array.size % per_sample or array.shape[0] * per_sample != array.size:
        raise PredictError(
            f"{path}: an array of shape {list(array.shape)} is not samples of shape "
            f"{list(sample)} (the run's dataset samples)"
        )
    array = array.reshape((array.shape[0], *sample))
    if not len(array):
        raise PredictError(f"{path}: holds no samples")
    if labels is not None and len(labels) != len(array):
        raise PredictError(f"{path}: {len(labels)} labels for {len(array)} samples")
    return Inputs(array, [f"{path.name}[{i}]" for i in range(len(array))], labels)


# ---------------------------------------------------------------------- commands


def predict(run: TrainedRun, inputs: Inputs, top_k: int = 3) -> dict:
    """Class, confidence and the top-k classes of each sample (and the accuracy when the
    inputs carry labels)."""
    from .losses import predicted_classes, probabilities

    if run.training.loss == "mse":
        raise PredictError("this run is a regression (loss mse): there are no classes to predict")
    outputs = run.outputs(run.model_inputs(inputs.raw))
    probs = probabilities(outputs, run.training.loss, run.training.from_logits)
    if probs.ndim == 2 and probs.shape[-1] == 1:  # one sigmoid unit: [p(0), p(1)]
        probs = np.concatenate([1 - probs, probs], axis=-1)
    classes = predicted_classes(probs)
    k = max(1, min(top_k, probs.shape[-1]))
    top = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    names = run.class_names or [str(i) for i in range(probs.shape[-1])]
    rows = []
    for i, name in enumerate(inputs.names):
        row = {
            "input": name,
            "class": names[int(classes[i])],
            "index": int(classes[i]),
            "confidence": float(probs[i, classes[i]]),
            "top_k": [{"class": names[int(c)], "p": float(probs[i, c])} for c in top[i]],
        }
        if inputs.labels is not None:
            row["label"] = names[int(inputs.labels[i])]
        rows.append(row)
    result: dict = {"engine": run.engine, "samples": len(rows), "predictions": rows}
    nonfinite = int(sum(not np.isfinite(row).all() for row in probs))
    if nonfinite:  # the model itself (a diverged run): said, not hidden in the table
        result["nonfinite_outputs"] = nonfinite
    if inputs.labels is not None:
        correct = int(np.sum(classes == inputs.labels))
        result["accuracy"] = correct / max(len(rows), 1)
        result["correct"] = correct
    return result


def format_predictions(result: dict, fmt: str) -> str:
    """text (a table), csv or json."""
    rows = result["predictions"]
    if fmt == "json":
        from .report import finite_json

        return json.dumps(finite_json(result), indent=2) + "\n"  # a NaN output: null
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        k = len(rows[0]["top_k"]) if rows else 0
        header = ["input", "class", "confidence"] + [f"top{j + 1}" for j in range(k)]
        header += [f"p{j + 1}" for j in range(k)]
        has_label = bool(rows) and "label" in rows[0]
        writer.writerow(header + (["label"] if has_label else []))
        for row in rows:
            writer.writerow(
                [row["input"], row["class"], f"{row['confidence']:.6f}"]
                + [t["class"] for t in row["top_k"]]
                + [f"{t['p']:.6f}" for t in row["top_k"]]
                + ([row["label"]] if has_label else [])
            )
        return buffer.getvalue()
    width = max([len("input")] + [len(r["input"]) for r in rows])
    lines = [f"{'input':<{width}}  class       confidence  top-k"]
    for row in rows:
        top = ", ".join(f"{t['class']} {t['p']:.3f}" for t in row["top_k"])
        label = f"  (label {row['label']})" if "label" in row else ""
        lines.append(
            f"{row['input']:<{width}}  {row['class']:<10}  {row['confidence']:>10.4f}  {top}{label}"
        )
    if "accuracy" in result:
        lines.append(
            f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['samples']}) "
            "against the labels in the input file"
        )
    return "\n".join(lines) + "\n"


def evaluate_run(run: TrainedRun, data_dir: str | None = None, download: bool = True) -> dict:
    """Recompute the run's test metrics: the same data options (data folder, limit,
    validation split, seed), the run's preprocessing, the run's model. Returns the
    metrics.json-shaped dict (``test_loss``, accuracy, per class, confusion matrix, ``test``)."""
    from ..data import DatasetError, prepare
    from .results import report_test_split
    from .run import run_data_dir

    spec_file = run.info.get("spec")
    base_dir = Path(spec_file).parent if spec_file else None
    try:
        data = prepare(
            run.training,
            run.input_shape,
            data_dir or run_data_dir(run.info),
            output_units=None,
            base_dir=base_dir,
            limit=run.data.get("limit"),
            download=download,
            integer=run.integer,
        )
    except DatasetError as exc:
        raise PredictError(str(exc), exit_code=3) from None
    x = data.x_test
    if data.x_test_raw is not None:
        x = run.model_inputs(data.x_test_raw)  # exactly the run's normalization
    x = np.asarray(x) if run.integer else np.asarray(x, np.float32)
    outputs, loss = run.loss_and_outputs(x, data.y_test)
    return report_test_split(outputs, loss, data.y_test, data, run.training)


def compare_metrics(new: dict, recorded: dict, tolerance: float = 1e-6) -> list[str]:
    """Names of the ``test`` metrics that differ from metrics.json by more than
    ``tolerance`` (accuracy-like metrics are ratios of counts: equal means equal)."""
    differ = []
    test = recorded.get("test")
    test = test if isinstance(test, dict) else {}
    for name, value in (new.get("test") or {}).items():
        if name in test and test[name] is None and not math.isfinite(float(value)):
            continue  # metrics.json writes a NaN (a diverged run) as null: the same value
        old = test.get(name)
        if old is None and name == "loss":
            old = recorded.get("test_loss")
        if old is None and name == "accuracy":
            old = recorded.get("accuracy")
        if isinstance(old, bool) or not isinstance(old, (int, float)):
            differ.append(name)  # missing, or not a number: not what the run recorded
        elif abs(float(old) - float(value)) > tolerance * max(1.0, abs(float(old))):
            differ.append(name)
    return differ
