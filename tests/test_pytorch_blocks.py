"""PyTorch code of models with blocks: one nn.Module class per block
(specc/targets/pytorch/blocks.py), numerically the flat module, its weights at module paths."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from specc import weights as W
from specc.codegen import generate
from specc.pipeline import check_file, check_text
from specc.targets.pytorch import blocks as torch_blocks
from specc.targets.pytorch.codegen import forward_taps, plan, tap_names

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"
CASES = ROOT / "tests" / "cases"
ZOO = ROOT / "specs" / "zoo"

#: spec -> the classes its PyTorch code must define for its blocks (in file order)
CLASS_FORM = {
    CASES / "blocks_basic" / "spec.yaml": ["Residual"],
    CASES / "blocks_nested" / "spec.yaml": ["Bottleneck", "Stack"],
    ZOO / "resnet50.yaml": ["Bottleneck", "Stack"],
    ZOO / "mobilenet.yaml": ["DepthwiseSeparable"],
    ZOO / "mobilenet_v2.yaml": None,  # any classes: checked for one per block below
    ZOO / "densenet121.yaml": ["ConvBlock", "DenseBlock", "Transition"],
    # [$kh, $kw] kernels and their 'same' padding, written element by element
    ZOO / "inception_v3.yaml": None,
}
#: written flat, on purpose (docs/codegen.md): a layer `repeat:` inside a block, and
#: MaxPooling2D 'same' whose padding depends on each instance's spatial size
#: and torch arguments the class cannot write from the parameters: EfficientNet's
#: depthwise padding ('same' or 'valid', by kernel size)
FLAT = [
    CASES / "blocks_repeat" / "spec.yaml",
    ZOO / "xception.yaml",
    ZOO / "efficientnet_b0.yaml",
]

HOSTILE = textwrap.dedent(
    """\
    version: 1
    name: hostile
    inputs: [{name: x, shape: [8, 8, 3]}]
    blocks:
      nn:
        params: {self: int, range: int, in_channels: {type: bool, default: false}}
        inputs: [x]
        layers:
          - {type: Conv2D, name: $(name)_conv, filters: $self, kernel_size: 3, padding: same}
          - {type: BatchNormalization, name: $(name)_bn, if: $in_channels}
          - {type: Conv2D, name: $(name)_out, filters: $(range * 2), kernel_size: 1}
      Hostile:
        params: {F: int}
        layers:
          - {type: nn, name: $(name)_a, self: $F, range: 2, in_channels: true}
          - {type: nn, name: $(name)_b, self: 3, range: $F}
    layers:
      - {type: Hostile, name: torch, F: 4}
      - {type: nn, name: self, self: 5, range: 1}
      - {type: Flatten, name: flat}
      - {type: Dense, name: out, units: 2}
    """
)


def _model(path: Path):
    result = check_file(path)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def _classes(code: str) -> list[str]:
    return [n.name for n in ast.parse(code).body if isinstance(n, ast.ClassDef)]


def _block_classes(code: str, model) -> list[str]:
    helpers = {"KerasBatchNorm", "KerasNormalization", plan(model).class_name}
    return [c for c in _classes(code) if c not in helpers]


@pytest.mark.parametrize("path", list(CLASS_FORM), ids=lambda p: p.stem)
def test_one_class_per_block(path):
    model = _model(path)
    code = generate(model, "pytorch")
    classes = _block_classes(code, model)
    want = CLASS_FORM[path]
    used = {call.block for call in model.expansion.calls}
    assert len(classes) == len(used)
    if want is not None:
        assert classes == want
    # the model's weights live in the instances: hierarchical module paths
    paths = [path for _, path, _ in plan(model).weights()]
    assert any("." in p for p in paths)
    assert "self.reset_parameters()" in code


def test_resnet50_reads_like_torchvision():
    code = generate(_model(ZOO / "resnet50.yaml"), "pytorch")
    assert "class Bottleneck(nn.Module):" in code
    assert (
        "    def __init__(self, in_channels: int, filters: int, stride: int, "
        "conv_shortcut: bool) -> None:" in code
    )
    assert "        if conv_shortcut:\n            self.x0_conv = nn.Conv2d(" in code
    assert "                stride=(stride, stride)," in code
    assert "                    in_channels=in_channels if i == 0 else 4 * filters," in code
    assert "        self.conv4 = Stack(in_channels=512, filters=256, blocks=6, stride=2)" in code
    assert "self.conv4.block[5].x3_conv.weight" in code
    # a file a person reads: far shorter than the flat module
    assert len(code.splitlines()) < 800


@pytest.mark.parametrize("path", FLAT, ids=lambda p: p.stem)
def test_flat_where_the_class_form_cannot_be_exact(path):
    model = _model(path)
    assert plan(model).hierarchy is None
    assert _block_classes(generate(model, "pytorch"), model) == []


def test_hostile_block_and_parameter_names_stay_inert(tmp_path):
    result = check_text(HOSTILE, file="hostile.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    code = generate(result.model, "pytorch")
    assert plan(result.model).hierarchy is not None
    classes = _block_classes(code, result.model)
    assert classes == ["Nn", "HostileBlock"]
    # the spec's parameter 'in_channels' keeps its name; the input's channel count yields
    assert "def __init__(self, in_channels_: int, self_: int, range_: int, in_channels: bool)" in (
        code
    )
    assert "self.b = Nn(in_channels_=4, self_=3, range_=F_, in_channels=False)" in code
    (tmp_path / "hostile.py").write_text(code)
    _ruff(tmp_path / "hostile.py")


def _ruff(*files: Path) -> None:
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    names = [str(f) for f in files]
    check = subprocess.run([RUFF, "check", *config, *names], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [RUFF, "format", "--check", "--diff", *config, *names], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_class_form_passes_ruff(tmp_path):
    files = []
    for k, path in enumerate(CLASS_FORM):
        file = tmp_path / f"m{k}.py"
        file.write_text(generate(_model(path), "pytorch"))
        files.append(file)
    _ruff(*files)


def test_deterministic():
    model = _model(ZOO / "mobilenet_v2.yaml")
    assert generate(model, "pytorch") == generate(_model(ZOO / "mobilenet_v2.yaml"), "pytorch")


# --------------------------------------------------------------------------- with torch


def _module(code: str, name: str):
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(code, f"<{name}>", "exec"), module.__dict__)
    return module


def _flat_code(model, monkeypatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(torch_blocks, "build", lambda tp, helpers: None)
        code = generate(model, "pytorch")
    return code


def _same_as_flat(model, monkeypatch, batch: int = 2):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    name = plan(model).class_name
    net = getattr(_module(generate(model, "pytorch"), f"c_{model.name}"), name)()
    flat_code = _flat_code(model, monkeypatch)
    assert _block_classes(flat_code, model) == []
    with monkeypatch.context() as m:
        m.setattr(torch_blocks, "build", lambda tp, helpers: None)
        flat = getattr(_module(flat_code, f"f_{model.name}"), name)()
        weights = W.random_weights(model, seed=3)
        W.to_torch(flat, model, weights)
        assert all(np.array_equal(v, weights[k]) for k, v in W.from_torch(flat, model).items())
    W.to_torch(net, model, weights)
    for key, array in W.from_torch(net, model).items():
        np.testing.assert_array_equal(array, weights[key], err_msg=key)
    # same parameters, counted the torch way (no module lost or duplicated)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in flat.parameters())
    rng = np.random.default_rng(0)
    inputs = [
        torch.from_numpy(rng.normal(size=(batch, *t.shape)).astype(np.float32))
        for t in model.inputs
    ]
    net.eval()
    flat.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(*inputs), flat(*inputs), rtol=0, atol=0)
    return net, inputs


@pytest.mark.parametrize(
    "path",
    [CASES / "blocks_basic" / "spec.yaml", CASES / "blocks_nested" / "spec.yaml"],
    ids=lambda p: p.parent.name,
)
def test_class_form_computes_the_flat_module(path, monkeypatch):
    _same_as_flat(_model(path), monkeypatch)


def test_hostile_names_compute_the_flat_module(monkeypatch):
    result = check_text(HOSTILE, file="hostile.yaml")
    _same_as_flat(result.model, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["resnet50", "mobilenet", "mobilenet_v2", "densenet121", "inception_v3"], ids=str
)
def test_zoo_class_form_computes_the_flat_module(name, monkeypatch):
    pytest.importorskip("torch").set_num_threads(2)
    _same_as_flat(_model(ZOO / f"{name}.yaml"), monkeypatch, batch=1)


def test_taps_record_every_layer_inside_the_classes(tmp_path, monkeypatch):
    """crosscheck's per-layer outputs: the tapped variant records each layer in the module
    that computes it; the runtime names them back, in model order, equal to the flat
    module's."""
    torch = pytest.importorskip("torch")
    from specc.targets.pytorch.runtime import TorchRuntime

    model = _model(CASES / "blocks_nested" / "spec.yaml")
    names = tap_names(model)
    assert names[("conv2.block.0", "x0_conv")] == "conv2_block1_0_conv"
    assert names[("", "predictions")] == "predictions"
    assert [t.layer for t in forward_taps(model)] == [layer.name for layer in model.layers]
    weights = W.random_weights(model, seed=1)
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(2, *t.shape)).astype(np.float32) for t in model.inputs]
    runtime = TorchRuntime(model, tmp_path, "c")
    runtime.load(weights)
    got = runtime.intermediates(inputs)
    assert list(got) == [layer.name for layer in model.layers]
    with monkeypatch.context() as m:
        m.setattr(torch_blocks, "build", lambda tp, helpers: None)
        flat = TorchRuntime(model, tmp_path, "f")
        flat.load(weights)
        want = flat.intermediates(inputs)
    assert list(want) == list(got)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    del torch
