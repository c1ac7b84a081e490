"""A missing optional package: exit 3, one wording, a hint that works outside the
repository (the `specc[...]` extra, no constraints file), never a traceback.

Each command runs in a subprocess where the package is hidden (``sys.modules[name] = None``
makes ``import`` fail and ``importlib.util.find_spec`` answer None, as if not installed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from specc.extras import message

ROOT = Path(__file__).resolve().parent.parent

RUN = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None
sys.argv = ["specc", *{argv!r}]
from specc.cli import main
main()
"""


def run_without(hidden: list[str], argv: list[str], tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN.format(hidden=hidden, argv=argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_message_names_the_extra_and_the_cpu_index():
    text = message("torch", "training with the pytorch backend")
    assert text.startswith("training with the pytorch backend needs the Python package 'torch'")
    assert "pip install 'specc[torch]'" in text
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert "constraints" not in text
    assert "pip install 'specc[train]'" in message("matplotlib")
    assert "pip install 'specc[train]'" in message("sklearn.datasets")


CASES = [
    (["torch"], ["train", "specs/digits_cnn.yaml", "--backend", "pytorch"], "torch", "torch"),
    (
        ["matplotlib"],
        ["train", "specs/digits_cnn.yaml", "--backend", "pytorch"],
        "matplotlib",
        "train",
    ),
    (
        ["onnx"],
        ["compile", "specs/mnist_mlp.json", "--target", "onnx", "-o", "{tmp}/m.onnx"],
        "onnx",
        "onnx",
    ),
    (
        ["onnx", "onnxruntime"],
        ["crosscheck", "specs/mnist_mlp.json", "--backends", "pytorch,onnx"],
        "onnx",
        "onnx",
    ),
    (["numpy"], ["crosscheck", "specs/mnist_mlp.json"], "numpy", "train"),
]


@pytest.mark.parametrize(("hidden", "argv", "package", "extra"), CASES)
def test_missing_package_exits_3_with_a_working_hint(hidden, argv, package, extra, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    result = run_without(hidden, argv, tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 3, result.stderr
    assert f"needs the Python package '{package}', which is not installed" in result.stderr
    assert f"pip install 'specc[{extra}]'" in result.stderr
    assert "constraints.txt" not in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written
