"""No spec that validates may fail later: random specs with random training sections that
`specc validate` accepts train (PyTorch, one epoch on a few samples of scikit-learn's bundled
digits, or of a tiny .npz) without an exception. A user's .npz can only be checked when it
is read, so there a clean ``DatasetError`` (exit 3) is the one other allowed outcome.

A few examples run in the default suite; `make fuzz` (SPECC_FUZZ=long) runs thousands.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st

from specc import diagcodes as codes
from specc.codegen import CodegenError, generate
from specc.pipeline import check_data

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

LONG = os.environ.get("SPECC_FUZZ") == "long"
PROFILE = settings(
    max_examples=int(os.environ.get("SPECC_TRAIN_EXAMPLES", 2000 if LONG else 6)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=not LONG,
    # a failing run is readable as drawn; shrinking re-trains dozens of times
    phases=[Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if LONG else [])],
)

ACTIVATIONS = ["softmax", "sigmoid", "linear", "relu", "tanh"]


@st.composite
def body(draw, shape: tuple[int, ...], units: int) -> list[dict]:
    """Layers from ``shape`` to a last Dense; usually a well-formed classifier."""
    layers: list[dict] = []
    rank = len(shape)
    if rank == 3 and draw(st.booleans()):
        layers.append(
            {
                "type": "Conv2D",
                "filters": draw(st.integers(1, 4)),
                "kernel_size": draw(st.integers(1, 3)),
                "padding": draw(st.sampled_from(["same", "valid"])),
                "activation": draw(st.sampled_from(["relu", "linear", "tanh"])),
            }
        )
        if draw(st.booleans()):
            layers.append({"type": "MaxPooling2D", "pool_size": 2, "padding": "same"})
        if draw(st.booleans()):
            layers.append({"type": "BatchNormalization"})
    if rank > 1 and draw(st.integers(0, 9)) > 0:  # forgetting Flatten must be caught
        kind = "GlobalAveragePooling2D" if rank == 3 and draw(st.booleans()) else "Flatten"
        layers.append({"type": kind})
    if draw(st.booleans()):
        layers.append({"type": "Dense", "units": draw(st.integers(1, 16)), "activation": "relu"})
        if draw(st.booleans()):
            layers.append({"type": "Dropout", "rate": draw(st.sampled_from([0.0, 0.25, 0.5]))})
    final = draw(st.sampled_from([units, units, units, 1, 2, draw(st.integers(1, 12))]))
    activation = draw(st.sampled_from(["softmax", "softmax", *ACTIVATIONS]))
    layers.append({"type": "Dense", "units": final, "activation": activation})
    return layers


@st.composite
def training(draw, dataset) -> dict:
    optimizer = draw(st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]))
    section: dict = {
        "dataset": dataset,
        "optimizer": {"type": optimizer, "learning_rate": draw(st.sampled_from([0.001, 0.01]))},
        "loss": draw(
            st.sampled_from(
                [
                    "sparse_categorical_crossentropy",
                    "sparse_categorical_crossentropy",
                    "categorical_crossentropy",
                    "binary_crossentropy",
                    "mse",
                ]
            )
        ),
        "from_logits": draw(st.booleans()),
        "metrics": draw(
            st.lists(
                st.sampled_from(["accuracy", "precision", "recall", "top_k_accuracy"]),
                max_size=3,
                unique=True,
            )
        ),
        "top_k": draw(st.integers(1, 6)),
        "batch_size": draw(st.sampled_from([1, 7, 16, 64])),
        "epochs": 1,
        "validation_split": draw(st.sampled_from([0.0, 0.1, 0.5, "test"])),
        "preprocessing": {"normalize": draw(st.sampled_from(["unit", "standardize", "none"]))},
        "seed": draw(st.integers(0, 3)),
    }
    if draw(st.booleans()):
        section["augmentation"] = {
            "horizontal_flip": draw(st.booleans()),
            "rotation": draw(st.sampled_from([0.0, 0.1])),
            "translation": draw(st.sampled_from([0.0, 0.1])),
            "zoom": draw(st.sampled_from([0.0, 0.2])),
        }
    if draw(st.booleans()):
        section["schedule"] = draw(
            st.sampled_from(
                [
                    {"type": "step", "step_epochs": 1},
                    {"type": "cosine"},
                    {"type": "reduce_on_plateau", "patience": 1},
                ]
            )
        )
    if draw(st.booleans()):
        section["early_stopping"] = {"monitor": draw(st.sampled_from(["loss", "val_loss"]))}
    return section


@st.composite
def case(draw) -> tuple[dict, dict | None]:
    """A spec, and the arrays of an .npz dataset it trains on (None: digits)."""
    if draw(st.integers(0, 2)) == 0:
        sample = draw(st.sampled_from([(6, 6, 1), (5, 5, 3), (12,), (4, 6)]))
        classes = draw(st.sampled_from([2, 3, 5]))
        regression = draw(st.integers(0, 4)) == 0
        rng = np.random.default_rng(draw(st.integers(0, 9)))
        arrays = {
            "x_train": rng.integers(0, 256, (24, *sample), dtype=np.uint8),
            "x_test": rng.integers(0, 256, (10, *sample), dtype=np.uint8),
        }
        for split, n in (("train", 24), ("test", 10)):
            arrays[f"y_{split}"] = (
                rng.normal(size=(n, classes)).astype(np.float32)
                if regression
                else np.arange(n, dtype=np.int64) % classes
            )
        dataset: object = {"type": "npz", "path": "data.npz"}
        if draw(st.booleans()):
            dataset["num_classes"] = classes
    else:
        sample, classes, arrays, dataset = (8, 8, 1), 10, None, "digits"
    shape = draw(
        st.sampled_from([sample, sample, sample, (int(np.prod(sample)),), (3, 3, 2), (8, 8, 3)])
    )
    spec = {
        "version": 1,
        "name": "fuzzed",
        "inputs": [{"name": "x", "shape": list(shape)}],
        "layers": draw(body(tuple(shape), classes)),
        "training": draw(training(dataset)),
    }
    return spec, arrays


def _log(outcome: str, detail: list) -> None:
    """With SPECC_TRAIN_LOG=FILE, one line per example (for counting outcomes)."""
    path = os.environ.get("SPECC_TRAIN_LOG")
    if path:
        what = getattr(detail[0], "code", None) or str(detail[0])[:80] if detail else ""
        with open(path, "a") as log:
            log.write(f"{outcome}\t{what}\n")


@PROFILE
@given(case())
def test_validated_specs_train_without_exceptions(case):
    from specc.data import DatasetError
    from specc.runner.run import TrainOptions, train

    spec, arrays = case
    note(yaml.safe_dump(spec, sort_keys=False))
    result = check_data(spec)
    _log("refused" if not result.ok else "accepted", result.diagnostics[:1])
    assume(result.ok)
    for target in ("keras", "pytorch"):  # `specc compile --with-training`: a script, or a
        try:  # clean located refusal (exit 1) of what scripts do not carry
            script = generate(result.model, target, result.source, with_training=True)
        except CodegenError as exc:
            assert all(d.code == codes.UNSUPPORTED for d in exc.diagnostics)
            continue
        compile(script, f"train_{target}.py", "exec")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        if arrays is not None:
            np.savez(Path(folder) / "data.npz", **arrays)
        options = TrainOptions(
            backend="pytorch",
            epochs=1,
            limit=24,
            out_dir=str(Path(folder) / "run"),
            progress=False,
            export_onnx=False,
            download=False,
            threads=1,
        )
        try:
            metrics = train(path, options, log=lambda *_: None)
        except DatasetError as exc:
            if arrays is None:
                raise
            note(f"npz refused when read: {exc}")
            _log("npz-refused-when-read", [exc])
            return
        _log("trained", [])
        assert "test_loss" in metrics
        assert (Path(folder) / "run" / "metrics.json").is_file()
        assert (Path(folder) / "run" / "weights.npz").is_file()
