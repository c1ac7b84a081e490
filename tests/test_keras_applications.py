"""Keras Applications models written as specs (tests/keras_app_to_spec.py): exact counts,
every target compiles them (InceptionV3's PyTorch refusal is documented below)."""

from __future__ import annotations

import pytest

from specc import targets
from specc.diagnostics import SpecError
from specc.pipeline import check_file

from .conftest import ROOT

#: Keras's model.summary() of keras.applications.<App>(weights=None), Keras 3.15:
#: (total, trainable, non-trainable)
KERAS_COUNTS = {
    "efficientnet_b0.yaml": ("EfficientNetB0", 5_330_571, 5_288_548, 42_023),
    "inception_v3.yaml": ("InceptionV3", 23_851_784, 23_817_352, 34_432),
}


def _model(name):
    result = check_file(ROOT / "specs" / name)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


@pytest.mark.parametrize("name", sorted(KERAS_COUNTS))
def test_counts_are_keras_counts(name):
    _, total, trainable, non_trainable = KERAS_COUNTS[name]
    model = _model(name)
    assert (model.total_params, model.trainable_params, model.non_trainable_params) == (
        total,
        trainable,
        non_trainable,
    )


@pytest.mark.parametrize("name", sorted(KERAS_COUNTS))
def test_keras_code_compiles(name):
    code = targets.get("keras").emit(_model(name))
    compile(code, name, "exec")


def test_efficientnet_compiles_to_pytorch():
    code = targets.get("pytorch").emit(_model("efficientnet_b0.yaml"))
    compile(code, "efficientnet_b0", "exec")
    assert "torch.movedim" not in code  # the squeeze-and-excite gates broadcast in place


def test_inception_v3_is_refused_by_pytorch_at_each_scale_false_batch_norm():
    """InceptionV3's 94 BatchNormalization layers have scale: false (beta, no gamma), which
    the PyTorch target refuses until its KerasBatchNorm takes any center/scale combination."""
    with pytest.raises(SpecError) as info:
        targets.get("pytorch").emit(_model("inception_v3.yaml"))
    errors = info.value.errors
    assert len(errors) == 94
    assert all("center != scale" in e.message and e.line for e in errors)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERAS_COUNTS))
def test_onnx_graph_builds(name):
    pytest.importorskip("onnx")
    graph = targets.get("onnx").emit(_model(name))
    assert len(graph) > 1_000_000


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERAS_COUNTS))
def test_specs_are_what_the_script_writes(name):
    keras = pytest.importorskip("keras")
    from .keras_app_to_spec import dump, model_spec

    app = KERAS_COUNTS[name][0]
    keras.backend.clear_session()  # Keras's automatic names count from 0 again, as in a new process
    model = getattr(keras.applications, app)(weights=None)
    assert model.count_params() == KERAS_COUNTS[name][1]
    description = (
        f"keras.applications.{app}(weights=None), written layer by layer by "
        "tests/keras_app_to_spec.py."
    )
    written = dump(model_spec(model, model.name, description))
    assert written == (ROOT / "specs" / name).read_text(encoding="utf-8")
