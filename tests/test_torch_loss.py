"""Keras computes cross-entropy from the logits when the model ends in softmax; so must torch.

Found by `specc crosscheck --run` on trained weights: with saturated probabilities (below
1e-7), clipping gives -log(1e-7) = 16.1 while Keras's loss from the logits keeps growing.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from specc import weights as W  # noqa: E402
from specc.codegen import generate  # noqa: E402
from specc.pipeline import check_file  # noqa: E402
from specc.runner.keras_backend import keras_loss as keras_loss_object  # noqa: E402
from specc.runner.run import import_generated  # noqa: E402
from specc.runner.torch_backend import LogitsTap, keras_loss  # noqa: E402
from specc.spec import Training  # noqa: E402

from .conftest import ROOT  # noqa: E402


def test_saturated_softmax_loss_matches_keras(tmp_path):
    model = check_file(ROOT / "specs" / "mnist_mlp.json").model
    weights = {k: v * 30 for k, v in W.random_weights(model, seed=1).items()}  # saturate
    (tmp_path / "k.py").write_text(generate(model, "keras"))
    (tmp_path / "t.py").write_text(generate(model, "pytorch"))
    k_model = import_generated(tmp_path / "k.py", "k_sat").build_model()
    W.to_keras(k_model, model, weights)
    module_code = import_generated(tmp_path / "t.py", "t_sat")
    t_model = module_code.MnistMlp()
    W.to_torch(t_model, model, weights)
    x = np.random.default_rng(0).random((16, 28, 28), dtype=np.float32)
    y = np.arange(16) % 10

    training = Training.model_validate({"dataset": "mnist"})
    expected = float(keras_loss_object(training)(y, k_model(x, training=False)))
    tap = LogitsTap(t_model)
    with torch.no_grad(), tap:
        outputs = t_model(torch.from_numpy(x))
    ours = float(
        keras_loss(outputs, torch.from_numpy(y), "sparse_categorical_crossentropy", False, tap)
    )
    clipped = float(
        keras_loss(outputs, torch.from_numpy(y), "sparse_categorical_crossentropy", False)
    )
    assert expected > 20  # far beyond what clipping at 1e-7 (16.1) can give
    assert ours == pytest.approx(expected, rel=1e-5)
    assert clipped < 16.2
    # the tap leaves the generated module's names as they were
    assert module_code.F is torch.nn.functional and module_code.torch is torch
