"""`specc compile --with-training`: the training scripts appended to the generated model code.

Fast tests: goldens (tests/cases/<stem>/{keras,pytorch}_train.py, checked by test_goldens.py; rewrite with
--update-goldens), determinism, ruff check / ruff format --check on every variant (optimizers,
losses, schedules, early stopping, augmentation), refusals. Slow tests run each backend's
script for one epoch on a real MNIST slice in a subprocess.
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specc.cli import app
from specc.codegen import CodegenError, generate
from specc.pipeline import check_data, check_file, check_text

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases"
RUFF = Path(sys.executable).parent / "ruff"
TARGETS = ("keras", "pytorch")
TRAINED = sorted(
    p
    for p in (ROOT / "specs").iterdir()
    if p.suffix in (".yaml", ".yml", ".json") and "training" in p.read_text()
)


def _result(path: Path):
    result = check_file(path)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result


def _script(path: Path, target: str) -> str:
    result = _result(path)
    return generate(result.model, target, result.source, with_training=True)


def _diff(want: str, actual: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            want.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=name,
            tofile="generated",
        )
    )


# --------------------------------------------------------------------------- goldens


def test_bundled_specs_with_training_are_found():
    names = {p.name for p in TRAINED}
    assert {"mnist_cnn.yaml", "mnist_mlp.json", "inception_block.yaml"} <= names


@pytest.mark.parametrize("target", TARGETS)
def test_script_starts_with_the_model_code_and_is_deterministic(target, tmp_path):
    spec = ROOT / "specs" / "mnist_cnn.yaml"
    copy_ = tmp_path / "elsewhere" / spec.name
    copy_.parent.mkdir()
    copy_.write_text(spec.read_text())
    script = _script(spec, target)
    assert script == _script(copy_, target) == _script(spec, target)
    assert str(tmp_path) not in script and str(ROOT) not in script
    model_code = generate(_result(spec).model, target)
    # the model part is the model code, only with more imports and a longer docstring
    body = model_code.split("\n\n\n", 1)[1]
    assert body.rstrip("\n") in script
    tree = ast.parse(script)
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"load_data", "parse_args", "main"} <= names
    assert script.rstrip().endswith('if __name__ == "__main__":\n    main()')


# --------------------------------------------------------------------------- variants


def _base_spec() -> dict:
    return {
        "version": 1,
        "name": "small_cnn",
        "inputs": [{"name": "image", "shape": [28, 28, 1]}],
        "layers": [
            {"type": "Conv2D", "filters": 8, "kernel_size": 3, "activation": "relu"},
            {"type": "MaxPooling2D", "pool_size": 2},
            {"type": "Flatten"},
            {"type": "Dropout", "rate": 0.1},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
        "training": {
            "dataset": "mnist",
            "optimizer": {"type": "adamw", "learning_rate": 0.002},
            "schedule": {"type": "reduce_on_plateau", "monitor": "val_loss", "patience": 1},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy", "top_k_accuracy"],
            "top_k": 3,
            "batch_size": 32,
            "epochs": 2,
            "validation_split": 0.2,
            "augmentation": {"translation": 0.05},
            "early_stopping": {"monitor": "val_accuracy", "patience": 1},
            "seed": 5,
        },
    }


def _variant(**training) -> dict:
    data = _base_spec()
    data["training"].update(training)
    data["training"] = {k: v for k, v in data["training"].items() if v is not None}
    if "metrics" not in training and data["training"]["loss"] != "sparse_categorical_crossentropy":
        data["training"]["metrics"] = ["accuracy"]  # top-k needs a categorical loss
    if data["training"].get("from_logits"):
        data["layers"][-1] = {"type": "Dense", "units": 10}
    return data


VARIANTS = {
    "adamw_plateau_stop_augment": {},
    "sgd_weight_decay_step": {
        "optimizer": {"type": "sgd", "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.01},
        "schedule": {"type": "step", "step_epochs": 1, "gamma": 0.5},
        "augmentation": None,
        "early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best_weights": False},
    },
    "adam_cosine_logits": {
        "optimizer": {"type": "adam", "weight_decay": 0.001, "amsgrad": True},
        "schedule": {"type": "cosine", "alpha": 0.1},
        "from_logits": True,
        "early_stopping": None,
    },
    "rmsprop_categorical_no_validation": {
        "optimizer": {"type": "rmsprop", "momentum": 0.5, "centered": True, "weight_decay": 0.1},
        "loss": "categorical_crossentropy",
        "validation_split": 0.0,
        "schedule": {"type": "reduce_on_plateau", "monitor": "loss"},
        "early_stopping": {"monitor": "accuracy", "patience": 1},
    },
    "binary_on_probabilities": {"loss": "binary_crossentropy", "schedule": None},
    "binary_logits": {"loss": "binary_crossentropy", "from_logits": True, "schedule": None},
    "mse": {
        "loss": "mse",
        "schedule": None,
        "early_stopping": {"monitor": "val_loss"},
        "metrics": [],
    },
}


def _variant_data(name: str) -> dict:
    return _variant(**copy.deepcopy(VARIANTS[name]))


def _generate_data(data: dict, target: str, file: str = "small_cnn.yaml") -> str:
    result = check_data(data, file=file)
    assert result.ok, [d.format() for d in result.diagnostics]
    return generate(result.model, target, result.source, with_training=True)


def test_every_variant_passes_ruff(tmp_path):
    """Goldens and variants together: ruff check and ruff format --check, as generated."""
    files = []
    for name in VARIANTS:
        for target in TARGETS:
            path = tmp_path / f"{name}_{target}.py"
            path.write_text(_generate_data(_variant_data(name), target))
            files.append(path)
    for spec in TRAINED:
        for target in TARGETS:
            path = tmp_path / f"{spec.stem}_{target}.py"
            path.write_text(_script(spec, target))
            files.append(path)
    args = ["--no-cache", "--config", str(ROOT / "pyproject.toml")]
    check = subprocess.run(
        [str(RUFF), "check", *args, *map(str, files)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [str(RUFF), "format", "--check", "--diff", *args, *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_hyperparameters_are_explicit_in_both_scripts():
    keras_code = _generate_data(_variant_data("adam_cosine_logits"), "keras")
    torch_code = _generate_data(_variant_data("adam_cosine_logits"), "pytorch")
    # Keras: every optimizer argument, epsilon included
    assert "keras.optimizers.Adam(" in keras_code
    for arg in ("learning_rate=0.001", "beta_1=0.9", "beta_2=0.999", "epsilon=1e-07"):
        assert arg in keras_code
    assert "amsgrad=True" in keras_code and "weight_decay=0.001" in keras_code
    assert "SparseCategoricalCrossentropy(from_logits=True)" in keras_code
    # torch: Keras's epsilon, not torch's 1e-8; Adam's decoupled weight decay is AdamW's
    assert "torch.optim.AdamW(" in torch_code and "eps=1e-07" in torch_code
    assert "betas=(0.9, 0.999)" in torch_code and "amsgrad=True" in torch_code
    assert "F.cross_entropy(outputs, targets)" in torch_code  # from logits: stable
    assert "eta_min=0.0001" in torch_code and "T_max=args.epochs" in torch_code

    plateau = _generate_data(_variant_data("adamw_plateau_stop_augment"), "pytorch")
    assert "patience=0" in plateau  # Keras's patience 1: torch counts one epoch more
    assert 'threshold_mode="abs"' in plateau and "eps=0.0" in plateau
    assert "copy.deepcopy(model.state_dict())" in plateau
    assert "data.augment_batch" in plateau
    keras_plateau = _generate_data(_variant_data("adamw_plateau_stop_augment"), "keras")
    assert "keras.callbacks.ReduceLROnPlateau(" in keras_plateau
    assert "min_delta=0.0" in keras_plateau and 'mode="max"' in keras_plateau
    assert "class AugmentedBatches(keras.utils.PyDataset)" in keras_plateau

    sgd = _generate_data(_variant_data("sgd_weight_decay_step"), "pytorch")
    assert "torch.optim.lr_scheduler.StepLR(" in sgd and "weight_decay=0.0" in sgd
    assert 'parameter.mul_(1 - optimizer.param_groups[0]["lr"] * 0.01)' in sgd
    assert "best_state" not in sgd  # restore_best_weights: false


def test_without_a_training_section_compile_refuses_with_a_location(tmp_path):
    spec = ROOT / "specs" / "conv_autoencoder.yaml"
    with pytest.raises(CodegenError) as info:
        generate(_result(spec).model, "keras", _result(spec).source, with_training=True)
    assert "no training section" in info.value.diagnostics[0].message
    out = tmp_path / "x.py"
    run = CliRunner().invoke(
        app, ["compile", str(spec), "-t", "pytorch", "--with-training", "-o", str(out)]
    )
    assert run.exit_code == 1, run.output
    assert re.search(
        r"conv_autoencoder\.yaml:\d+:\d+: --with-training: the spec has no", run.stderr
    )
    assert not out.exists()
    usage = CliRunner().invoke(
        app, ["compile", "specs/mnist_mlp.json", "-t", "onnx-text", "--with-training"]
    )
    assert usage.exit_code == 2


def test_cli_writes_the_script():
    run = CliRunner().invoke(
        app, ["compile", "specs/mnist_mlp.json", "-t", "keras", "--with-training"]
    )
    assert run.exit_code == 0, run.output
    assert run.stdout == _script(ROOT / "specs" / "mnist_mlp.json", "keras")


def test_unsupported_training_options_are_refused_located():
    data = _base_spec()
    data["training"]["metrics"] = ["accuracy", "precision"]
    data["training"]["validation_split"] = 0.0
    result = check_text(json.dumps(data, indent=2), format="json", file="small_cnn.json")
    assert result.ok
    with pytest.raises(CodegenError) as info:
        generate(result.model, "pytorch", result.source, with_training=True)
    messages = [d.message for d in info.value.diagnostics]
    assert any("precision" in m for m in messages)
    assert any("monitors val_loss but validation_split is 0" in m for m in messages)
    assert all(d.line > 1 for d in info.value.diagnostics)


# --------------------------------------------------------------------------- running


def _run_script(code: str, folder: Path, data_dir: Path, epochs: int = 1) -> str:
    if not (data_dir / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {data_dir}")
    script = folder / "train_script.py"
    script.write_text(code)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SPECC_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, str(script), "--data-dir", str(data_dir)]
        + ["--epochs", str(epochs), "--limit", "1000"],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    match = re.search(r"test_accuracy ([0-9.]+)", run.stdout)
    assert match, run.stdout
    assert float(match.group(1)) > 0.3, run.stdout  # chance is 0.1
    saved = list(folder.glob("*.keras")) + list(folder.glob("*.pt"))
    assert saved, run.stdout
    return run.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("spec", ["mnist_cnn.yaml", "mnist_mlp.json"])
def test_script_trains_one_epoch_on_real_mnist(spec, target, tmp_path, data_dir):
    pytest.importorskip("keras" if target == "keras" else "torch")
    _run_script(_script(ROOT / "specs" / spec, target), tmp_path, data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_script_with_schedule_early_stopping_and_augmentation_runs(target, tmp_path, data_dir):
    pytest.importorskip("keras" if target == "keras" else "torch")
    out = _run_script(
        _generate_data(_variant_data("adamw_plateau_stop_augment"), target),
        tmp_path,
        data_dir,
        epochs=2,
    )
    assert "top_3_accuracy" in out
    if target == "pytorch":
        assert re.search(r"epoch 2/2: loss [0-9.]+, accuracy [0-9.]+, top_3_accuracy", out), out
        assert "val_loss" in out and "val_accuracy" in out


def test_data_dict_is_the_data_part_of_the_training_section():
    result = _result(ROOT / "specs" / "inception_block.yaml")
    script = generate(result.model, "pytorch", result.source, with_training=True)
    tree = ast.parse(script)
    (data,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DATA"
    ]
    literal = ast.literal_eval(data)
    training = result.model.training
    assert literal == {k: training[k] for k in literal}
    assert json.loads(json.dumps(literal)) == literal
    assert set(literal) == {
        "dataset",
        "preprocessing",
        "validation_split",
        "loss",
        "augmentation",
        "seed",
    }
