"""Keras-backed commands print no TensorFlow / absl / oneDNN start-up lines (issue 18)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="needs keras/tensorflow"
)

# what TensorFlow's C++ runtime writes: absl's pre-init warning, glog-style I/W lines
# ("I0000 00:00:... port.cc:153] oneDNN custom operations are on ..."), cpu_feature_guard
CHATTER = re.compile(r"absl|oneDNN|^[IWE]\d{4} |cpu_feature_guard|TF_ENABLE_ONEDNN_OPTS", re.M)


def specc(*args):
    return subprocess.run(
        [sys.executable, "-m", "specc", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_keras_train_stderr_has_no_framework_lines(tmp_path):
    result = specc(
        "train", "specs/digits_cnn.yaml", "--backend", "keras", "--epochs", "1",
        "--limit", "300", "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stderr  # the run's own progress is still there
    assert not CHATTER.search(result.stderr), result.stderr
    assert not CHATTER.search(result.stdout), result.stdout


@pytest.mark.slow
def test_keras_crosscheck_and_evaluate_are_quiet(tmp_path):
    check = specc("crosscheck", "specs/digits_cnn.yaml", "--backends", "keras,onnx")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "crosscheck: building keras" in check.stderr  # says what it is doing
    assert not CHATTER.search(check.stderr), check.stderr
    run = tmp_path / "run"
    train = specc("train", "specs/digits_cnn.yaml", "--epochs", "1", "--limit", "200",
                  "--out", run, "-q")  # fmt: skip
    assert train.returncode == 0 and train.stderr == "", train.stderr
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1)))
    for command in (("evaluate", run), ("predict", run, tmp_path / "x.npy")):
        result = specc(*command)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr


@pytest.mark.slow
def test_verbose_shows_what_a_plain_import_prints(tmp_path):
    plain = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, timeout=300
    )
    lines = [line for line in plain.stderr.splitlines() if CHATTER.search(line)]
    if not lines:
        pytest.skip("this TensorFlow build prints nothing at import")
    result = specc(
        "train", "specs/digits_cnn.yaml", "--backend", "keras", "--epochs", "1",
        "--limit", "300", "--out", tmp_path / "run", "--verbose",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert CHATTER.search(result.stderr), result.stderr
    assert "oneDNN" in result.stderr or "absl" in result.stderr


def test_failed_import_is_replayed(monkeypatch, capfd):
    """What the silenced import wrote is shown again when the import fails."""
    from specc import frameworks

    def body():
        with frameworks._stderr_fd_captured():
            import os

            os.write(2, b"libfoo.so: cannot open shared object file\n")
            raise ImportError("broken")

    with pytest.raises(ImportError):
        body()
    assert "libfoo.so: cannot open shared object file" in capfd.readouterr().err
