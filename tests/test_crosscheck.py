"""`specc crosscheck`: every bundled spec agrees across Keras, PyTorch and ONNX (forward) and
across Keras and PyTorch (one SGD and one Adam step); an injected fault is caught and
localized; BatchNormalization's moving variance follows Keras; a trained MNIST run gives the
same predictions in all three backends."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specc.cli import app
from specc.codegen import generate
from specc.crosscheck import compare, crosscheck, without_dropout
from specc.layers import lowering as lw
from specc.layers.normalization import BatchNormalization
from specc.pipeline import check_file
from specc.targets.pytorch.codegen import forward_taps

from .conftest import MODEL_SPECS, skip_if_torch_refused

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def _model(name):
    result = check_file(name if isinstance(name, Path) else ROOT / "specs" / name)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


# --------------------------------------------------------------------------- no framework


def test_compare_tolerances():
    a = np.array([1.0, 0.0, 1e-7])
    assert compare(a, a, 1e-5, 1e-4) == (0.0, 0.0, True)
    max_abs, max_rel, ok = compare(a, a + [2e-4, 0, 0], 1e-5, 1e-4)
    assert not ok and max_abs == pytest.approx(2e-4) and max_rel == pytest.approx(2e-4, rel=1e-3)
    assert compare(a, a + [1e-5, 0, 0], 1e-5, 1e-4)[2]  # within atol + rtol * |a|
    assert not compare([np.nan], [np.nan], 1e-5, 1e-4)[2]  # NaN never passes (issue 19)
    assert not compare([np.inf], [np.inf], 1e-5, 1e-4)[2]
    assert not compare([np.nan], [0.0], 1e-5, 1e-4)[2]
    assert compare(np.zeros(2), np.zeros(3), 1e-5, 1e-4) == (np.inf, np.inf, False)
    assert compare([0.0], [1e-3], 1e-5, 1e-4, slack=1e-3)[2]


def test_without_dropout_keeps_names_and_weights():
    model = _model("keras_mnist_cnn.yaml")
    variant = without_dropout(model)
    assert [layer.name for layer in variant.layers] == [layer.name for layer in model.layers]
    assert [layer.spec.rate for layer in variant.layers if layer.type == "Dropout"] == [0.0, 0.0]
    assert [layer.spec.rate for layer in model.layers if layer.type == "Dropout"] == [0.25, 0.5]
    assert "p=0.0" in generate(variant, "pytorch") and "p=0.25" in generate(model, "pytorch")


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_tapped_variant_records_every_layer_once(spec):
    """The tapped module (crosscheck's per-layer outputs) records each layer exactly once,
    right after the statements computing it; the code users get has no taps."""
    skip_if_torch_refused(spec)
    from specc import targets

    model = _model(spec.name)
    taps = forward_taps(model)
    assert [tap.layer for tap in taps] == [layer.name for layer in model.layers]
    plain = generate(model, "pytorch")
    tapped = targets.get("pytorch").emit(model, taps=True)
    assert "self.taps" not in plain
    ast.parse(tapped)
    recorded = [line.strip() for line in tapped.splitlines() if "self.taps[" in line]
    assert [line.split("'")[1] for line in recorded] == [tap.layer for tap in taps]
    # removing the tap lines gives the plain module back
    untapped = "\n".join(line for line in tapped.splitlines() if "self.taps[" not in line)
    assert untapped + "\n" == plain


def test_helper_class_never_clashes_with_the_model_class():
    from specc.pipeline import check_data

    data = {
        "version": 1,
        "name": "keras_batch_norm",
        "inputs": [{"name": "x", "shape": [4]}],
        "layers": [{"type": "BatchNormalization", "name": "bn"}],
    }
    code = generate(check_data(data).model, "pytorch")
    assert "class KerasBatchNorm_(nn.Module):" in code
    assert "class KerasBatchNorm(nn.Module):" in code
    assert "self.bn = KerasBatchNorm_(" in code
    compile(code, "keras_batch_norm.py", "exec")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backends", "keras,tflite"], "unknown backend 'tflite'"),
        (["--backends", "onnx"], "at least two backends"),
        (["--weights", "w.npz", "--run", "runs/x"], "not both"),
        (["--run", "no/such/run", "--backends", "pytorch,onnx"], "not a specc run folder"),
    ],
)
def test_usage_errors(args, message):
    result = CliRunner().invoke(app, ["crosscheck", "specs/mnist_mlp.json", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_invalid_spec_exits_1():
    result = CliRunner().invoke(app, ["crosscheck", "tests/cases/error_kernel_too_large/spec.yaml"])
    assert result.exit_code == 1


# --------------------------------------------------------------------------- frameworks


@pytest.fixture(scope="module")
def frameworks():
    pytest.importorskip("keras")
    pytest.importorskip("onnxruntime")
    return pytest.importorskip("torch")


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec", MODEL_SPECS, ids=lambda p: p.parent.name if p.stem == "spec" else p.stem
)
def test_every_spec_agrees(spec, frameworks):
    skip_if_torch_refused(spec)
    report = crosscheck(_model(spec), batch=4, seed=1)
    assert report.ok, report.format_text()
    checks = {row.check for row in report.rows}
    assert checks == {"forward", "train sgd", "train adam"}
    pairs = {row.pair for row in report.rows if row.check == "forward"}
    built = report.backends  # a target that refuses the spec is left out, with a note
    assert set(built) >= {"keras", "pytorch"}
    assert pairs == {(a, b) for i, a in enumerate(built) for b in built[i + 1 :]}
    for name in {"keras", "pytorch", "onnx"} - set(built):
        assert any(note.startswith(f"{name}: not compared") for note in report.notes)
    assert not report.divergences


def _with_module(change):
    """BatchNormalization.torch_lowering with its module changed by ``change(module)``."""
    original = BatchNormalization.torch_lowering

    def lowering(self, shapes, out, layout):
        low = original(self, shapes, out, layout)
        modules = tuple(change(module, len(shapes[0])) for module in low.modules)
        return lw.TorchLowering(modules, low.steps, low.out_layout, low.comment)

    return lowering


def _wrong_epsilon(module, rank):
    args = tuple((k, 0.1 if k == "eps" else v) for k, v in module.args)
    return lw.TorchModule(module.cls, args, module.suffix)


def _torch_batch_norm(module, rank):
    """What the PyTorch target used to emit: nn.BatchNorm (unbiased running variance)."""
    cls = {1: "nn.BatchNorm1d", 2: "nn.BatchNorm1d", 3: "nn.BatchNorm2d"}[rank]
    values = dict(module.args)
    args = (
        ("num_features", values["num_features"]),
        ("eps", values["eps"]),
        ("momentum", round(1 - values["momentum"], 12)),
        ("affine", values["scale"] and values["center"]),
    )
    return lw.TorchModule(cls, args, module.suffix)


@pytest.mark.slow
def test_injected_fault_is_caught_and_localized(frameworks, monkeypatch):
    monkeypatch.setattr(BatchNormalization, "torch_lowering", _with_module(_wrong_epsilon))
    assert "eps=0.1," in generate(_model("residual_block.yaml"), "pytorch")
    result = CliRunner().invoke(
        app, ["crosscheck", "specs/residual_block.yaml", "--no-train-step", "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    forward = {tuple(row["pair"]): row["passed"] for row in report["rows"]}
    assert forward == {
        ("keras", "pytorch"): False,
        ("keras", "onnx"): True,
        ("pytorch", "onnx"): False,
    }
    found = {tuple(d["pair"]): d["layer"] for d in report["divergences"]}
    assert found == {("keras", "pytorch"): "stem_bn", ("pytorch", "onnx"): "stem_bn"}
    assert all(d["type"] == "BatchNormalization" for d in report["divergences"])
    # the text report names it too
    text = CliRunner().invoke(
        app, ["crosscheck", "specs/residual_block.yaml", "--no-train-step", "--batch", "2"]
    )
    assert text.exit_code == 1
    assert "first diverging layer 'stem_bn' (BatchNormalization)" in text.output
    assert "FAIL" in text.output


@pytest.mark.slow
def test_torch_running_variance_would_be_caught(frameworks, monkeypatch):
    """nn.BatchNorm's unbiased running variance fails the training step; KerasBatchNorm
    (what the target emits now) passes it (test_every_spec_agrees)."""
    monkeypatch.setattr(BatchNormalization, "torch_lowering", _with_module(_torch_batch_norm))
    assert "nn.BatchNorm2d(" in generate(_model("residual_block.yaml"), "pytorch")
    report = crosscheck(_model("residual_block.yaml"), backends=["keras", "pytorch"], batch=2)
    failed = {(row.check, row.what) for row in report.rows if not row.passed}
    assert failed == {
        ("train sgd", "moving statistics (12)"),
        ("train adam", "moving statistics (12)"),
    }, report.format_text()
    assert all("moving_variance" in row.note for row in report.rows if not row.passed)


@pytest.mark.slow
def test_keras_batch_norm_matches_keras_statistics(frameworks):
    """The emitted module: biased variance in the running statistics, as Keras."""
    torch = frameworks
    model = _model("residual_block.yaml")
    code = generate(model, "pytorch")
    namespace: dict = {}
    exec(compile(code, "residual_net.py", "exec"), namespace)
    bn = namespace["KerasBatchNorm"](
        num_features=1, eps=1e-3, momentum=0.0, scale=True, center=True
    )
    bn.train()
    bn(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    assert float(bn.running_var[0]) == pytest.approx(1.25)  # Keras: 1.25; nn.BatchNorm: 1.667
    assert float(bn.running_mean[0]) == pytest.approx(1.5)


@pytest.mark.slow
def test_only_requested_frameworks_are_imported(frameworks):
    code = (
        "import sys\n"
        "from specc.pipeline import check_file\n"
        "from specc.crosscheck import crosscheck\n"
        "r = crosscheck(check_file('specs/mnist_mlp.json').model, backends=['pytorch', 'onnx'])\n"
        "assert r.ok\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'torch', 'onnxruntime')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['onnxruntime', 'torch']"


@pytest.mark.slow
def test_trained_mnist_run_agrees(frameworks, data_dir, tmp_path):
    if not (data_dir / "mnist").is_dir():
        pytest.skip(f"no MNIST in {data_dir}")
    run = tmp_path / "run"
    trained = CliRunner().invoke(
        app,
        [
            "train",
            "specs/mnist_mlp.json",
            "--backend",
            "pytorch",
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--data-dir",
            str(data_dir),
            "--out",
            str(run),
            "--offline",
            "--quiet",
        ],
    )
    assert trained.exit_code == 0, trained.output
    result = CliRunner().invoke(
        app,
        [
            "crosscheck",
            "specs/mnist_mlp.json",
            "--run",
            str(run),
            "--data-dir",
            str(data_dir),
            "--limit",
            "2000",
            "--no-train-step",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = [row for row in report["rows"] if row["check"] == "trained"]
    assert len(rows) == 3 and all(row["passed"] for row in rows)
    for row in rows:
        same, total = row["note"].split("(")[1].split(")")[0].split("/")
        assert int(total) == 2000 and int(same) / int(total) >= 0.999
    metrics = json.loads((run / "metrics.json").read_text())
    accuracy = report["accuracy"]
    assert set(accuracy) == {"keras", "pytorch", "onnx"}
    assert accuracy["pytorch"] == pytest.approx(metrics["accuracy"])
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.001


_BN_NO_SCALE = """version: 1
name: bn_no_scale
inputs:
  - {name: image, shape: [8, 8, 3]}
layers:
  - {type: Conv2D, name: conv, filters: 4, kernel_size: 3, use_bias: false}
  - {type: BatchNormalization, name: bn, scale: false}
  - {type: ReLU, name: relu}
  - {type: GlobalAveragePooling2D, name: pool}
  - {type: Dense, name: out, units: 3}
"""


def test_batch_norm_without_scale_has_keras_weights_and_compiles_to_pytorch(tmp_path):
    """InceptionV3's BatchNormalization(scale=False): the canonical layout comes from the
    layer's declaration (no torch involved), and the PyTorch target keeps beta alone."""
    from specc import weights as W

    spec = tmp_path / "bn.yaml"
    spec.write_text(_BN_NO_SCALE)
    model = check_file(spec).model
    assert [key for key, _, _ in W.layout(model)] == [
        "conv/kernel",
        "bn/beta",
        "bn/moving_mean",
        "bn/moving_variance",
        "out/kernel",
        "out/bias",
    ]
    result = CliRunner().invoke(app, ["compile", str(spec), "--target", "pytorch"])
    assert result.exit_code == 0, result.output
    assert "scale=False," in result.stdout and "center=True," in result.stdout


@pytest.mark.slow
def test_batch_norm_without_scale_crosschecks_in_every_backend(tmp_path, frameworks):
    spec = tmp_path / "bn.yaml"
    spec.write_text(_BN_NO_SCALE)
    result = CliRunner().invoke(app, ["crosscheck", str(spec)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "Traceback" not in result.output


def test_gradient_rule_against_float64():
    """Gradients pass when Keras-vs-PyTorch is within 10x of PyTorch's own float32-vs-float64
    rounding (per weight, relative to its size, at least the network's median rounding);
    a 1% error in one weight's gradient fails and is named."""
    import numpy as np

    from specc.crosscheck import _gradient_row

    rng = np.random.default_rng(0)
    reference = {f"l{i}/kernel": rng.normal(size=(16, 16)) for i in range(20)}
    torch32 = {
        k: (v + rng.normal(scale=1e-7, size=v.shape)).astype(np.float32)
        for k, v in reference.items()
    }
    keras = {
        k: (v + rng.normal(scale=2e-7, size=v.shape)).astype(np.float32)
        for k, v in reference.items()
    }
    row = _gradient_row(
        "train sgd",
        ("keras", "pytorch"),
        {"gradients": keras},
        {"gradients": torch32},
        1,
        reference,
    )
    assert row.passed, row.note
    assert row.what == "gradients (20) vs float64"
    keras["l7/kernel"] = (keras["l7/kernel"] * 1.01).astype(np.float32)
    row = _gradient_row(
        "train sgd",
        ("keras", "pytorch"),
        {"gradients": keras},
        {"gradients": torch32},
        1,
        reference,
    )
    assert not row.passed
    assert "worst l7/kernel" in row.note


def test_float64_row_is_the_semantic_check():
    """Keras and PyTorch in float64 must agree to FLOAT64_AGREEMENT relative to each weight's
    gradient; a 1e-5 relative change in one weight (far below float32 rounding of a deep
    network) fails and is named."""
    import numpy as np

    from specc.crosscheck import FLOAT64_AGREEMENT, _float64_row

    rng = np.random.default_rng(1)
    torch64 = {f"l{i}/kernel": rng.normal(size=(8, 8)) for i in range(5)}
    keras64 = {k: v * (1 + 1e-8) for k, v in torch64.items()}
    row = _float64_row("train sgd", ("keras", "pytorch"), keras64, torch64)
    assert row.passed and row.max_rel < FLOAT64_AGREEMENT
    keras64["l3/kernel"] = torch64["l3/kernel"] * (1 + 1e-5)
    row = _float64_row("train sgd", ("keras", "pytorch"), keras64, torch64)
    assert not row.passed and "worst l3/kernel" in row.note
