"""Normalization's statistics computed from the training split by `specc train`, as Keras's
``Normalization.adapt`` computes them (specc.runner.adapt)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from specc import weights as W
from specc.pipeline import check_text
from specc.runner.adapt import AdaptError, statistics

from .conftest import ROOT

SPEC = """
version: 1
name: adapted
inputs: [{name: x, shape: [4, 3]}]
layers:
  - {type: Normalization, name: per_feature}
  - {type: Normalization, name: per_step, axis: [1]}
  - {type: Flatten, name: flat}
  - {type: Dense, name: probs, units: 2, activation: softmax}
training:
  dataset: {type: npz, path: data.npz}
  preprocessing: {normalize: none}
  validation_split: test
  loss: sparse_categorical_crossentropy
  optimizer: {type: adam, learning_rate: 0.001}
  batch_size: 16
  epochs: 1
"""


def _model(text=SPEC):
    result = check_text(text, "yaml", "spec.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def test_statistics_are_the_population_moments_over_the_reduced_axes():
    x = np.random.default_rng(0).normal(3.0, 2.0, (50, 4, 3)).astype(np.float32)
    model = _model(SPEC.replace("  - {type: Normalization, name: per_step, axis: [1]}\n", ""))
    stats = statistics(model, x)
    # axis -1 keeps the 3 features: mean and biased variance over the batch and the 4 steps
    np.testing.assert_allclose(stats["per_feature/mean"], x.reshape(-1, 3).mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["per_feature/variance"], x.reshape(-1, 3).var(0), rtol=1e-5)


def test_a_layer_after_another_cannot_be_adapted():
    with pytest.raises(AdaptError, match="'per_step' \\(Normalization\\) reads 'per_feature'"):
        statistics(_model(), np.zeros((5, 4, 3), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["keras", "pytorch"])
def test_specc_train_adapts_before_training(backend, tmp_path):
    spec = SPEC.replace("  - {type: Normalization, name: per_step, axis: [1]}\n", "")
    (tmp_path / "spec.yaml").write_text(spec)
    rng = np.random.default_rng(1)
    x_train = rng.normal(5.0, 3.0, (64, 4, 3)).astype(np.float32)
    np.savez(
        tmp_path / "data.npz",
        x_train=x_train,
        y_train=rng.integers(0, 2, 64),
        x_test=rng.normal(5.0, 3.0, (16, 4, 3)).astype(np.float32),
        y_test=rng.integers(0, 2, 16),
    )
    result = subprocess.run(
        [sys.executable, "-m", "specc", "train", "spec.yaml", "--backend", backend]
        + ["--out", str(tmp_path / "run"), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    trained = W.load(tmp_path / "run" / "weights.npz")
    # validation on the test split: the training split is every x_train sample
    flat = x_train.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(trained["per_feature/mean"], flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(trained["per_feature/variance"], flat.var(0), rtol=1e-5)
    assert trained["per_feature/count"] == 0  # Keras 3's adapt leaves count at 0
