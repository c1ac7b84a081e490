"""Real architectures no issue names (specs/models/): a U-Net, a convolutional autoencoder,
a Transformer text classifier, a ViT patch classifier, a 1D-CNN and a stacked-GRU
sequence model, a wide & deep two-input two-output model, a DCGAN generator.

The fast tests check specc's static answers against the numbers Keras gives (each written
beside it, from ``build_model().count_params()`` of the generated Keras code with
TensorFlow 2.21 / Keras 3) and the fixes these models needed; the slow tests build each
model with Keras and run ``specc crosscheck`` (Keras, PyTorch and ONNX agree).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specc.codegen import generate
from specc.crosscheck import _inputs, _training_batch, crosscheck
from specc.importers import ImportRefused
from specc.pipeline import check_data, check_file

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "specs" / "models"
RUFF = Path(sys.executable).parent / "ruff"


def _tokens_model(vocab: int, steps: int) -> dict:
    return {
        "version": 1,
        "name": "tok",
        "inputs": [{"name": "ids", "shape": [steps], "dtype": "int32"}],
        "layers": [
            {"type": "Embedding", "input_dim": vocab, "output_dim": 4},
            {"type": "GlobalAveragePooling1D"},
            {"type": "Dense", "units": 1},
        ],
    }


def test_crosscheck_token_ids_are_distinct_when_the_vocabulary_allows():
    # Keras's Adam squares an Embedding's sparse gradient per occurrence of an id, torch's
    # the summed gradient: the training-step check needs each id once. 8 x 64 = 512 ids fit
    # a 5,000-word vocabulary; they used to be drawn with repeats (only 256 values tried).
    model = check_data(_tokens_model(5000, 64)).model
    (ids,) = _inputs(model, 8, 0)
    assert ids.shape == (8, 64)
    assert len(np.unique(ids)) == ids.size
    assert ids.min() >= 0 and ids.max() < 5000
    # a vocabulary too small for distinct ids: ids below it, repeats unavoidable
    model = check_data(_tokens_model(100, 64)).model
    (ids,) = _inputs(model, 8, 0)
    assert ids.min() >= 0 and ids.max() < 100


def test_crosscheck_training_step_batch_keeps_token_ids_distinct():
    # vocabulary 100, 40 ids a sample: 2 samples hold 80 distinct ids, 8 would repeat ids
    # and Keras's sparse Adam step would differ from torch's (a FAIL before: 1.85 relative
    # on the embeddings' updated weights)
    batch, note = _training_batch(check_data(_tokens_model(100, 40)).model, 8)
    assert batch == 2 and "batch of 2, not 8" in note
    assert _training_batch(check_data(_tokens_model(5000, 64)).model, 8) == (8, None)
    # fewer ids than one sample's steps: repeats cannot be avoided, the note says why
    batch, note = _training_batch(check_data(_tokens_model(30, 40)).model, 8)
    assert batch == 8 and "vocabulary is smaller than one sample" in note
    # float inputs are not ids
    spec = {
        "version": 1,
        "name": "f",
        "inputs": [{"name": "x", "shape": [4]}],
        "layers": [{"type": "Dense", "units": 2}],
    }
    assert _training_batch(check_data(spec).model, 8) == (8, None)


def _block_attention_spec() -> dict:
    return {
        "version": 1,
        "name": "blk",
        "inputs": [{"name": "x", "shape": [8, 16]}],
        "blocks": {
            "enc": {
                "params": {"heads": "int"},
                "layers": [
                    {"type": "PositionEmbedding", "name": "$(name)_pos", "sequence_length": 8},
                    {"type": "Add", "name": "$(name)_add", "inputs": ["x", "$(name)_pos"]},
                    {
                        "type": "MultiHeadAttention",
                        "name": "$(name)_mha",
                        "inputs": ["$(name)_add", "$(name)_add"],
                        "num_heads": "$heads",
                        "key_dim": 4,
                        "use_causal_mask": True,
                    },
                ],
            }
        },
        "layers": [{"type": "enc", "name": "e$(i + 1)", "repeat": 2, "heads": 2}],
    }


def test_keras_block_function_calls_attention_and_helpers_as_the_flat_code():
    # a block's function called MultiHeadAttention with one list ([x, x]: Keras raises
    # "missing a required argument: 'value'"), dropped use_causal_mask, and wrote
    # keras.layers.PositionEmbedding (no such Keras layer; the file defines the class)
    code = generate(check_data(_block_attention_spec()).model, "keras")
    function = code[code.index("def enc(") : code.index("def build_model(")]
    assert ")(add, add, use_causal_mask=True)" in function
    assert "([add, add])" not in function
    assert "keras.layers.PositionEmbedding" not in code
    assert 'pos = PositionEmbedding(sequence_length=8, initializer="glorot_uniform"' in function
    assert "class PositionEmbedding(" in code
    compile(code, "blk.py", "exec")


# --------------------------------------------------------------------------- the models

#: spec -> (total, trainable, non-trainable) parameters as Keras 3 counts them: each from
#: the generated Keras code's build_model().count_params() and its trainable_weights
#: (TensorFlow 2.21 CPU), checked again by the slow test below
KERAS_COUNTS = {
    "unet_small.yaml": (117_713, 117_073, 640),  # keras: 117713 / 117073 / 640
    "mnist_conv_autoencoder.yaml": (278_369, 278_369, 0),  # keras: 278369
    "transformer_classifier.yaml": (393_153, 393_153, 0),  # keras: 393153
    "vit_cifar10.yaml": (141_898, 141_898, 0),  # keras: 141898
    "timeseries_cnn1d.yaml": (34_050, 33_666, 384),  # keras: 34050 / 33666 / 384
    "seq2seq_gru.yaml": (52_773, 52_773, 0),  # keras: 52773
    "wide_and_deep.yaml": (5_958, 5_830, 128),  # keras: 5958 / 5830 / 128
    "dcgan_generator.yaml": (2_330_944, 2_305_472, 25_472),  # keras: 2330944 / 2305472 / 25472
    "tcn_classifier.yaml": (22_275, 22_275, 0),  # keras: 22275
    # 2*4*(32*(4+32)+32) + 4*(64*(64+64)+64) + 4*(32*(64+32)+32) + 32*2+2
    "lstm_encoder_decoder.yaml": (54_978, 54_978, 0),  # keras: 54978
}
MODEL_FILES = sorted(MODELS.glob("*.yaml"))


def test_every_model_spec_has_keras_counts():
    assert sorted(p.name for p in MODEL_FILES) == sorted(KERAS_COUNTS)


def _model(path: Path):
    result = check_file(path)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_model_validates_with_keras_counts(path):
    model = _model(path)
    total, trainable, frozen = KERAS_COUNTS[path.name]
    assert (model.total_params, model.trainable_params, model.non_trainable_params) == (
        total,
        trainable,
        frozen,
    )


def test_unet_counts_by_hand():
    # enc1: conv 3*3*1*16 = 144 (no bias), BN 4*16 = 64; conv 3*3*16*16 = 2,304, BN 64
    # dec1_upconv (Conv2DTranspose 2x2, 32 -> 16, bias): 2*2*32*16 + 16 = 2,064
    # mask (1x1, 16 -> 1, bias): 17; non-trainable: BN moving mean+variance,
    # 2 * 2 * (16 + 32 + 64 + 32 + 16) = 640
    model = _model(MODELS / "unet_small.yaml")
    params = {layer.name: layer.params for layer in model.layers}
    assert params["enc1_conv1"] == 144 and params["enc1_bn1"] == 64
    assert params["enc1_conv2"] == 2_304 and params["dec1_upconv"] == 2_064
    assert params["mask"] == 17 and model.non_trainable_params == 640
    assert model.shape_of("dec2_concat") == (32, 32, 64)
    assert model.shape_of("mask") == (64, 64, 1)


def test_generated_code_of_every_model_passes_ruff(tmp_path):
    files = []
    for path in MODEL_FILES:
        model = _model(path)
        for target in ("keras", "pytorch"):
            out = tmp_path / f"{path.stem}_{target}.py"
            out.write_text(generate(model, target))
            files.append(str(out))
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    check = subprocess.run([RUFF, "check", *config, *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [RUFF, "format", "--check", *config, *files], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_block_functions_are_written_for_the_block_models():
    # the models with blocks get one Keras function per block (not the flat fallback)
    code = generate(_model(MODELS / "transformer_classifier.yaml"), "keras")
    assert "def encoder(x, heads, key_dim, ff_dim, model_dim, dropout, name):" in code
    assert ")(x, x, use_causal_mask=False)" in code
    code = generate(_model(MODELS / "vit_cifar10.yaml"), "keras")
    assert "def vit_block(x, heads, dim, mlp_dim, dropout, name):" in code
    assert "key_dim=dim // heads," in code


@pytest.mark.slow
@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_keras_counts_equal_specc(path, tmp_path):
    pytest.importorskip("keras")
    model = _model(path)
    source = tmp_path / "model.py"
    source.write_text(generate(model, "keras"))
    module_spec = importlib.util.spec_from_file_location(f"real_{path.stem}", source)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    net = module.build_model()
    trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
    assert net.count_params() == model.total_params == KERAS_COUNTS[path.name][0]
    assert trainable == model.trainable_params
    assert net.count_params() - trainable == model.non_trainable_params


@pytest.mark.slow
@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_crosscheck_passes(path):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    report = crosscheck(_model(path), spec_path=str(path), batch=4)
    failed = [(r.check, r.what, r.max_abs, r.max_rel) for r in report.rows if not r.passed]
    assert report.ok, failed
    assert set(report.backends) == {"keras", "pytorch", "onnx"}
    assert any(r.check == "train adam" for r in report.rows)


@pytest.mark.slow
def test_crosscheck_small_vocabulary_adam_step_agrees():
    # 8 samples of 40 ids from a vocabulary of 100 repeat ids: Keras's sparse Adam and
    # torch's dense one disagreed on the embeddings (FAIL); the step now uses 2 samples
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    report = crosscheck(check_data(_tokens_model(100, 40)).model, backends=["keras", "pytorch"])
    assert report.ok, [(r.check, r.what, r.max_rel) for r in report.rows if not r.passed]
    assert any("batch of 2, not 8" in note for note in report.notes)


# --------------------------------------------------------------------------- causal Conv1D


def _causal_spec(strides: int = 1, dilation: int = 2) -> dict:
    conv = {"type": "Conv1D", "name": "c", "filters": 4, "kernel_size": 3, "padding": "causal"}
    conv.update(strides=strides, dilation_rate=dilation)
    return {
        "version": 1,
        "name": "causal",
        "inputs": [{"name": "x", "shape": [10, 2]}],
        "layers": [conv],
    }


def test_causal_conv1d_shapes_counts_and_targets():
    # Keras: Conv1D(4, 3, padding="causal", dilation_rate=2) on (10, 2) -> (None, 10, 4),
    # 3 * 2 * 4 + 4 = 28 params; it pads (3 - 1) * 2 = 4 steps before the sequence only
    # (refused as "'causal' is not one of: valid, same" before)
    model = _model_data(_causal_spec())
    assert model.shape_of("c") == (10, 4) and model.total_params == 28
    assert model.layers[0].macs == 10 * 4 * 3 * 2
    torch_code = generate(model, "pytorch")
    assert "F.pad(x, (4, 0))" in torch_code
    assert "padding=(0,)" in torch_code
    assert 'padding="causal"' in generate(model, "keras")
    # strides 2 (no dilation): ceil(10 / 2) = 5 steps, as Keras's causal output length
    strided = _model_data(_causal_spec(strides=2, dilation=1))
    assert strided.shape_of("c") == (5, 4)


def test_causal_conv1d_onnx_pads_before_only():
    pytest.importorskip("onnx")
    from specc.targets.onnx.graph import build_onnx

    graph = build_onnx(_model_data(_causal_spec())).graph
    (conv,) = [node for node in graph.node if node.op_type == "Conv"]
    pads = [list(a.ints) for a in conv.attribute if a.name == "pads"]
    assert pads == [[4, 0]]


def test_causal_is_conv1d_only():
    spec = {
        "version": 1,
        "name": "c2",
        "inputs": [{"name": "x", "shape": [8, 8, 1]}],
        "layers": [{"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "causal"}],
    }
    result = check_data(spec)
    assert not result.ok
    (diag,) = [d for d in result.diagnostics if d.severity == "error"]
    assert "'causal' is not one of: valid, same" in diag.message


def _model_data(spec: dict):
    result = check_data(spec)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def test_keras_block_functions_for_conv1d_and_call_arguments():
    # Conv1D's kernel_size / dilation_rate are 1-tuples: an expression there made the whole
    # Keras model fall back to the flat code (no block function); so did a call argument
    # (use_causal_mask) that differs between instances
    code = generate(_model(MODELS / "timeseries_cnn1d.yaml"), "keras")
    assert "def conv_bn_relu(x, filters, kernel, name):" in code
    assert "kernel_size=(kernel,)," in code
    code = generate(_model(MODELS / "tcn_classifier.yaml"), "keras")
    assert "def tcn_block(x, filters, dilation, project, name):" in code
    assert "dilation_rate=(dilation,)," in code
    spec = _block_attention_spec()
    spec["blocks"]["enc"]["params"]["causal"] = "bool"
    spec["blocks"]["enc"]["layers"][2]["use_causal_mask"] = "$causal"
    spec["layers"] = [
        {"type": "enc", "name": "e1", "heads": 2, "causal": True},
        {"type": "enc", "name": "e2", "heads": 1, "causal": False},
    ]
    code = generate(check_data(spec).model, "keras")
    function = code[code.index("def enc(") : code.index("def build_model(")]
    assert ")(add, add, use_causal_mask=causal)" in function
    assert 'e2 = enc(e1, heads=1, causal=False, name="e2")' in code


# --------------------------------------------------------------------------- Keras import


def _keras_tensor(layer: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [layer, 0, 0]}}


def _keras_layer(cls: str, name: str, inbound=None, **config) -> dict:
    entry = {"class_name": cls, "config": {"name": name, "trainable": True, **config}}
    if inbound is not None:
        args = [_keras_tensor(i) for i in inbound]
        entry["inbound_nodes"] = [{"args": args, "kwargs": {}}]
    return entry


def test_keras_import_of_conv1d_and_attention_configs():
    # what Keras 3.15 saves for Conv1D (groups=1) and for a built MultiHeadAttention
    # (output_shape=None, attention_axes=[1], sliding_window=None): each was refused as
    # "option ... cannot be expressed", so no saved Conv1D or Transformer model imported
    from specc.importers.keras import config_to_spec

    config = {
        "class_name": "Functional",
        "config": {
            "name": "seq",
            "layers": [
                _keras_layer("InputLayer", "x", batch_shape=[None, 12, 8], dtype="float32"),
                _keras_layer(
                    "Conv1D",
                    "conv",
                    ["x"],
                    filters=8,
                    kernel_size=[3],
                    strides=[1],
                    padding="causal",
                    data_format="channels_last",
                    dilation_rate=[2],
                    groups=1,
                    activation="relu",
                    use_bias=True,
                ),  # fmt: skip
                _keras_layer(
                    "MultiHeadAttention",
                    "mha",
                    ["conv", "conv"],
                    num_heads=2,
                    key_dim=4,
                    value_dim=None,
                    dropout=0.0,
                    use_bias=True,
                    output_shape=None,
                    attention_axes=[1],
                    sliding_window=None,
                    use_gate=False,
                ),  # fmt: skip
                _keras_layer(
                    "MultiHeadAttention",
                    "mha_out",
                    ["mha", "mha"],
                    num_heads=1,
                    key_dim=2,
                    output_shape=6,
                    attention_axes=[1],
                ),  # fmt: skip
            ],
            "input_layers": [["x", 0, 0]],
            "output_layers": [["mha_out", 0, 0]],
        },
    }
    spec, notes = config_to_spec(config)
    conv, mha, out = spec["layers"]
    assert conv == {
        "type": "Conv1D",
        "name": "conv",
        "filters": 8,
        "kernel_size": 3,
        "padding": "causal",
        "dilation_rate": 2,
        "activation": "relu",
    }
    assert "output_shape" not in mha and "attention_axes" not in mha
    assert out["output_shape"] == 6
    model = check_data(spec).model
    assert model.shape_of("mha_out") == (12, 6)
    # a grouped Conv1D or another attention axis stays refused
    config["config"]["layers"][1]["config"]["groups"] = 2
    config["config"]["layers"][2]["config"]["sliding_window"] = 4
    with pytest.raises(ImportRefused) as caught:
        config_to_spec(config)
    assert any("groups=2" in item for item in caught.value.items)
    assert any("sliding_window=4" in item for item in caught.value.items)


def test_keras_import_of_layer_norm_axis_list_and_a_masked_sequential(tmp_path):
    # Keras 3 saves LayerNormalization(axis=-1) as axis [-1]: "axis must be an integer";
    # a Sequential text model (Embedding(mask_zero) -> GRU) records no mask= (Keras hands
    # masks on implicitly there): "Keras's mask reaches it differently than specc's"
    from specc.importers.keras import import_keras

    def layer(cls, name, **config):
        return {"class_name": cls, "config": {"name": name, "trainable": True, **config}}

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "text",
            "layers": [
                layer("InputLayer", "ids", batch_shape=[None, 20], dtype="int32"),
                layer("Embedding", "emb", input_dim=100, output_dim=8, mask_zero=True),
                layer("GRU", "gru", units=4, return_sequences=True),
                layer("LayerNormalization", "ln", axis=[-1], epsilon=0.001),
                layer("GlobalAveragePooling1D", "gap"),
                layer("Dense", "out", units=2, activation="softmax"),
            ],
        },
    }
    path = tmp_path / "text.json"
    path.write_text(json.dumps(config))
    result = import_keras(path, with_weights=False)
    ln = next(e for e in result.spec["layers"] if e["name"] == "ln")
    assert "axis" not in ln  # -1, the default
    model = check_data(result.spec).model
    # Embedding 100*8, GRU 3*(8*4 + 4*4 + 2*4) (reset_after), LayerNormalization 2*4, Dense 4*2+2
    assert model.total_params == 800 + 168 + 8 + 10
    # axis [1, 2] has no integer form: refused at the field, as before
    config["config"]["layers"][3]["config"]["axis"] = [1, 2]
    path.write_text(json.dumps(config))
    with pytest.raises(ImportRefused) as caught:
        import_keras(path, with_weights=False)
    assert "axis" in caught.value.items[0]


def _keras_model(path: Path, tmp_path: Path):
    """The Keras model the generated code of ``path`` builds."""
    source = tmp_path / f"{path.stem}_keras.py"
    source.write_text(generate(_model(path), "keras"))
    module_spec = importlib.util.spec_from_file_location(f"real_{path.stem}", source)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.build_model()


@pytest.mark.slow
@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_saved_keras_model_imports_back(path, tmp_path):
    # each model saved by Keras (.keras) imports to a spec with Keras's counts; the
    # Transformer (MultiHeadAttention, LayerNormalization) and the Conv1D models were
    # refused before (groups=1, attention_axes=[1], axis=[-1], ...)
    pytest.importorskip("keras")
    from specc.importers import import_model

    net = _keras_model(path, tmp_path)
    saved = tmp_path / f"{path.stem}.keras"
    net.save(saved)
    result = import_model(saved)
    model = check_data(result.spec).model
    assert model.total_params == net.count_params() == KERAS_COUNTS[path.name][0]
    assert sorted(layer.name for layer in model.layers) == sorted(
        layer.name for layer in _model(path).layers
    )


@pytest.mark.slow
def test_imported_transformer_gives_the_original_outputs(tmp_path):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from specc.cli import app

    net = _keras_model(MODELS / "transformer_classifier.yaml", tmp_path)
    saved = tmp_path / "transformer.keras"
    net.save(saved)
    out = CliRunner().invoke(app, ["import", str(saved), "--check", "-o", str(tmp_path / "t.yaml")])
    assert out.exit_code == 0, out.output
    rows = [line for line in out.output.splitlines() if "max abs" in line]
    assert any(line.strip().startswith("pytorch") for line in rows), out.output
    for line in rows:
        assert float(line.split("max abs ")[1].split(",")[0]) <= 1e-5, line


def test_keras_import_of_position_embedding_initializer():
    # PositionEmbedding's option is called `initializer` (not *_initializer): the saved
    # Keras config ({"class_name": "GlorotUniform", ...}) was copied as is, and the
    # imported spec was invalid ("missing required field 'type'")
    from specc.importers.keras import config_to_spec

    glorot = {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None},
        "registered_name": None,
    }
    normal = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}
    config = {
        "class_name": "Functional",
        "config": {
            "name": "pos",
            "layers": [
                _keras_layer("InputLayer", "x", batch_shape=[None, 6, 4], dtype="float32"),
                _keras_layer(
                    "PositionEmbedding", "p1", ["x"], sequence_length=6, initializer=glorot
                ),
                _keras_layer(
                    "PositionEmbedding", "p2", ["x"], sequence_length=6, initializer=normal
                ),
                _keras_layer("Add", "add", ["p1", "p2"]),
            ],
            "input_layers": [["x", 0, 0]],
            "output_layers": [["add", 0, 0]],
        },
    }
    spec, _ = config_to_spec(config)
    p1, p2, _ = spec["layers"]
    assert "initializer" not in p1  # glorot_uniform, the default
    assert p2["initializer"] == {"type": "RandomNormal", "stddev": 0.02}
    assert check_data(spec).model.total_params == 2 * 6 * 4


@pytest.mark.slow
def test_causal_conv1d_strided_agrees_across_backends():
    # kernel 4 stride 2 (17 -> 9 steps), kernel 1 (no padding), kernel 2 stride 3 (9 -> 3)
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    conv = {"type": "Conv1D", "padding": "causal"}
    spec = {
        "version": 1,
        "name": "causal_stride",
        "inputs": [{"name": "x", "shape": [17, 3]}],
        "layers": [
            {**conv, "name": "c1", "filters": 4, "kernel_size": 4, "strides": 2},
            {**conv, "name": "c2", "filters": 4, "kernel_size": 1},
            {**conv, "name": "c3", "filters": 5, "kernel_size": 2, "strides": 3},
        ],
    }
    model = _model_data(spec)
    assert [model.shape_of(n) for n in ("c1", "c2", "c3")] == [(9, 4), (9, 4), (3, 5)]
    report = crosscheck(model, batch=4)
    assert report.ok, [(r.check, r.what, r.max_rel) for r in report.rows if not r.passed]


def test_causal_conv1d_round_trips_through_onnx(tmp_path):
    # an ONNX Conv with pads [(k - 1) * d, 0] was refused on import ("explicit 1-D pads")
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from specc import targets
    from specc import weights as W
    from specc.importers import import_model

    spec = _causal_spec()
    spec["layers"].append(
        {"type": "Conv1D", "name": "d", "filters": 3, "kernel_size": 4, "strides": 2,
         "padding": "causal", "use_bias": False}
    )  # fmt: skip
    model = _model_data(spec)
    weights = W.random_weights(model, 1)
    first = tmp_path / "first.onnx"
    first.write_bytes(targets.get("onnx").emit(model, weights=weights))
    result = import_model(first)
    c, d = result.spec["layers"]
    assert (c["padding"], c["dilation_rate"], c["kernel_size"]) == ("causal", 2, 3)
    assert (d["padding"], d["strides"], d["use_bias"]) == ("causal", 2, False)
    again = _model_data(result.spec)
    assert again.shape_of("d") == model.shape_of("d") == (5, 3)
    second = tmp_path / "second.onnx"
    second.write_bytes(targets.get("onnx").emit(again, weights=result.weights))
    x = np.random.default_rng(0).normal(size=(2, 10, 2)).astype(np.float32)
    outs = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        for p in (first, second)
    ]
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


def _assert_ruff_clean(model, tmp_path) -> None:
    """The Keras and PyTorch code of ``model`` passes ruff check."""
    files = []
    for target in ("keras", "pytorch"):
        out = tmp_path / f"{target}.py"
        out.write_text(generate(model, target))
        files.append(str(out))
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    check = subprocess.run([RUFF, "check", *config, *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_layers_named_l_o_i_give_ruff_clean_code(tmp_path):
    # a layer named 'l' (an LSTM, say) became the variable `l`: ruff E741 (ambiguous name)
    # in the Keras and the PyTorch code
    spec = {
        "version": 1,
        "name": "names",
        "inputs": [{"name": "I", "shape": [5, 3]}],
        "layers": [
            {"type": "LSTM", "name": "l", "units": 4, "return_sequences": True},
            {"type": "Dense", "name": "O", "units": 2},
            {"type": "Add", "name": "sum", "inputs": ["l", "l"]},
            {"type": "Concatenate", "name": "out", "inputs": ["O", "sum"]},
        ],
    }
    _assert_ruff_clean(_model_data(spec), tmp_path)


def test_blocks_with_names_l_o_i_give_ruff_clean_code(tmp_path):
    # in a block: a parameter `l`, an input `I`, a layer `$(name)_l` (the local `l`)
    spec = {
        "version": 1,
        "name": "names",
        "inputs": [{"name": "x", "shape": [5, 3]}],
        "blocks": {
            "b": {
                "params": {"l": "int", "O": {"type": "int", "default": 2}},
                "inputs": ["I"],
                "layers": [
                    {"type": "Dense", "name": "$(name)_l", "units": "$l"},
                    {"type": "Dense", "name": "$(name)_o", "units": "$O"},
                ],
            }
        },
        "layers": [{"type": "b", "name": "b1", "l": 4}, {"type": "b", "name": "b2", "l": 3}],
    }
    _assert_ruff_clean(_model_data(spec), tmp_path)
