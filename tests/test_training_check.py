"""Training compatibility is part of validation: each mismatch between the training section
and the model is one located diagnostic with its own code; fitting specs stay valid."""

from __future__ import annotations

import pytest

from specc import diagcodes as codes
from specc.pipeline import check_text
from tests.conftest import SPECS


def spec(layers: str, training: str, shape: str = "[8, 8, 1]", dtype: str = "") -> str:
    dtype = f", dtype: {dtype}" if dtype else ""
    return (
        f"version: 1\nname: m\ninputs: [{{name: x, shape: {shape}{dtype}}}]\n"
        f"layers:\n{layers}training:\n{training}"
    )


FLAT = "  - {type: Flatten}\n"
SOFTMAX10 = "  - {type: Dense, units: 10, activation: softmax}\n"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_bundled_specs_have_no_training_diagnostics(path):
    result = check_text(path.read_text(), format="json" if path.suffix == ".json" else "yaml")
    assert result.ok and not result.diagnostics


def only(text: str):
    result = check_text(text, file="t.yaml")
    assert not result.ok
    (diag,) = result.errors
    return diag


def test_flatten_forgotten_is_refused_at_the_output_layer():
    diag = only(
        spec("  - {type: Conv2D, filters: 4, kernel_size: 3}\n" + SOFTMAX10, "  dataset: digits\n")
    )
    assert diag.code == codes.LOSS_OUTPUT and diag.path == "layers[1]"
    assert "shape (6, 6, 10)" in diag.message and "Flatten" in diag.hint
    assert diag.line == 6


def test_units_per_class():
    diag = only(
        spec(
            FLAT + "  - {type: Dense, units: 3, activation: softmax}\n",
            "  dataset: digits\n  loss: categorical_crossentropy\n",
        )
    )
    assert diag.code == codes.LOSS_OUTPUT and diag.path == "training.loss"
    assert "10 classes" in diag.message and "3 units" in diag.message


def test_binary_loss_on_ten_classes_needs_ten_units():
    diag = only(
        spec(
            FLAT + "  - {type: Dense, units: 1, activation: sigmoid}\n",
            "  dataset: digits\n  loss: binary_crossentropy\n",
        )
    )
    assert diag.code == codes.LOSS_OUTPUT and "needs 10 units" in diag.message


def test_dataset_size_and_dtype():
    diag = only(spec(FLAT + SOFTMAX10, "  dataset: digits\n", shape="[8, 8, 3]"))
    assert diag.code == codes.DATASET_INPUT and diag.path == "training.dataset"
    diag = only(spec(FLAT + SOFTMAX10, "  dataset: digits\n", dtype="int32"))
    assert diag.code == codes.DATASET_INPUT and diag.path == "inputs[0].dtype"


def test_folder_image_size_and_channels():
    folder = "  dataset: {type: folder, path: imgs, image_size: [16, 16]}\n"
    diag = only(spec(FLAT + SOFTMAX10, folder, shape="[8, 8, 3]"))
    assert diag.code == codes.DATASET_INPUT and diag.path == "training.dataset.image_size"
    assert check_text(spec(FLAT + SOFTMAX10, folder, shape="[16, 16, 3]")).ok


def test_top_k_must_be_below_the_units():
    diag = only(
        spec(FLAT + SOFTMAX10, "  dataset: digits\n  metrics: [top_k_accuracy]\n  top_k: 10\n")
    )
    assert diag.code == codes.METRIC_TASK and diag.path == "training.top_k"


def test_activation_vs_from_logits_is_a_warning():
    result = check_text(spec(FLAT + SOFTMAX10, "  dataset: digits\n  from_logits: true\n"))
    assert result.ok
    (warning,) = result.warnings
    assert warning.code == codes.LOSS_ACTIVATION and warning.path == "training.from_logits"
    result = check_text(spec(FLAT + "  - {type: Dense, units: 10}\n", "  dataset: digits\n"))
    assert result.ok and result.warnings[0].code == codes.LOSS_ACTIVATION
    assert (
        check_text(
            spec(
                FLAT + "  - {type: Dense, units: 10}\n", "  dataset: digits\n  from_logits: true\n"
            )
        ).diagnostics
        == []
    )


def test_mse_on_classes_needs_one_unit_per_class_and_warns_on_accuracy():
    result = check_text(
        spec(FLAT + "  - {type: Dense, units: 4}\n", "  dataset: digits\n  loss: mse\n")
    )
    assert [d.code for d in result.errors] == [codes.LOSS_OUTPUT]
    assert [d.code for d in result.warnings] == [codes.METRIC_TASK]


def test_batch_larger_than_the_training_set_is_a_warning():
    result = check_text(spec(FLAT + SOFTMAX10, "  dataset: digits\n  batch_size: 5000\n"))
    assert result.ok and result.warnings[0].code == codes.TRAINING_SETTING


def test_two_outputs_cannot_be_trained():
    text = (
        "version: 1\nname: m\ninputs: [{name: x, shape: [64]}]\nlayers:\n"
        "  - {type: Dense, name: a, units: 10, activation: softmax}\n"
        "  - {type: Dense, name: b, units: 10, activation: softmax, inputs: [x]}\n"
        "outputs: [a, b]\ntraining: {dataset: digits}\n"
    )
    diag = only(text)
    assert diag.code == codes.DATASET_OUTPUT
