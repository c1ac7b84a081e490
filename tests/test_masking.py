"""Keras masks (Embedding mask_zero) in the PyTorch target: each layer type's declared
handling equals Keras's own ``supports_masking``; recurrent layers, Bidirectional and
GlobalAveragePooling1D take the mask into account as Keras does (crosscheck), a layer that
drops it in Keras drops it here, and one that would use it otherwise is refused at its line."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from specc import check_data
from specc.codegen import CodegenError, generate
from specc.layers import LAYER_TYPES
from specc.pipeline import check_file

ROOT = Path(__file__).resolve().parent.parent


def _spec(layers, steps=7, vocabulary=100):
    return {
        "version": 1,
        "name": "m",
        "inputs": [{"name": "ids", "shape": [steps], "dtype": "int32"}],
        "layers": [
            {"type": "Embedding", "name": "embed", "input_dim": vocabulary, "output_dim": 4,
             "mask_zero": True},
            *layers,
        ],
    }  # fmt: skip


def test_layers_that_use_the_mask_get_it():
    model = check_data(
        _spec(
            [
                {"type": "GRU", "name": "gru", "units": 3, "return_sequences": True},
                {"type": "Dense", "name": "dense", "units": 3},
                {"type": "GlobalAveragePooling1D", "name": "pool"},
            ]
        )
    ).model
    code = generate(model, "pytorch")
    assert "embed_mask = x != 0  # Keras's mask_zero" in code
    assert "x = self.gru(x, embed_mask)" in code
    assert "x = x * embed_mask.unsqueeze(1).to(x.dtype)" in code
    assert "x.sum(dim=2, keepdim=False) / embed_mask.sum(dim=1, keepdim=True).to(x.dtype)" in code


@pytest.mark.parametrize("merge", ["Maximum", "Minimum", "Multiply"])
def test_a_layer_that_would_use_the_mask_otherwise_is_refused_at_its_line(merge):
    """Keras's Multiply takes masked values as 1 and zeroes the masked output steps (a 8e-4
    difference measured with crosscheck before this refusal); Maximum and Minimum replace
    masked values by the other input's."""
    model = check_data(
        _spec([{"type": "Dense", "name": "other", "inputs": ["embed"], "units": 4},
               {"type": merge, "name": "most", "inputs": ["embed", "other"]}])
    ).model  # fmt: skip
    with pytest.raises(CodegenError) as err:
        generate(model, "pytorch")
    text = str(err.value)
    assert f"{merge} receives the mask of Embedding 'embed'" in text
    assert "set mask_zero: false" in text


def test_attention_and_merges_carry_the_mask():
    """MultiHeadAttention takes the query's and the value's masks and hands the query's on;
    Add hands on the mask all its inputs carry; GlobalAveragePooling1D then uses it."""
    model = check_data(
        _spec([{"type": "MultiHeadAttention", "name": "attend", "inputs": ["embed", "embed"],
                "num_heads": 2, "key_dim": 2},
               {"type": "Add", "name": "res", "inputs": ["embed", "attend"]},
               {"type": "GlobalAveragePooling1D", "name": "pool"}])
    ).model  # fmt: skip
    code = generate(model, "pytorch")
    assert "attend = self.attend(embed, embed, query_mask=embed_mask, value_mask=embed_mask)" in (
        code
    )
    assert "/ embed_mask.sum(dim=1, keepdim=True)" in code


def test_a_merge_with_an_unmasked_input_hands_no_mask_on():
    """Keras's Add returns no mask unless every input has one: the pooling after it
    averages every step."""
    spec = _spec([{"type": "GlobalAveragePooling1D", "name": "pool", "inputs": ["total"]}])
    spec["inputs"].append({"name": "extra", "shape": [7, 4]})
    spec["layers"][0]["inputs"] = ["ids"]
    spec["layers"].insert(1, {"type": "Add", "name": "total", "inputs": ["embed", "extra"]})
    code = generate(check_data(spec).model, "pytorch")
    assert "pool = total.mean(dim=(2,), keepdim=False)" in code
    assert "embed_mask.sum" not in code


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [{"type": "Concatenate", "name": "join", "inputs": ["embed", "embed"], "axis": 1}],
            "Concatenate along axis 1 joins the steps of masked sequences",
        ),
        (
            [{"type": "Embedding", "name": "embed2", "inputs": ["ids"], "input_dim": 9,
              "output_dim": 4, "mask_zero": True},
             {"type": "Add", "name": "both", "inputs": ["embed", "embed2"]}],
            "Add combines the masks of two Embeddings with mask_zero: true",
        ),
    ],
)  # fmt: skip
def test_mask_combinations_the_target_cannot_reproduce_are_refused(layers, message):
    with pytest.raises(CodegenError) as err:
        generate(check_data(_spec(layers)).model, "pytorch")
    assert message in str(err.value)


def test_a_mask_dropped_by_keras_is_dropped_here():
    """Conv1D has supports_masking False: Keras drops the mask there (with a warning), so
    the LSTM after it sees every step in Keras and in the PyTorch code."""
    model = check_data(
        _spec([{"type": "Conv1D", "name": "conv", "filters": 3, "kernel_size": 1},
               {"type": "LSTM", "name": "lstm", "units": 2}])
    ).model  # fmt: skip
    code = generate(model, "pytorch")
    assert "x = self.lstm(x)" in code
    # ... and validation says so, as Keras warns
    warning = check_data(_spec([{"type": "Conv1D", "name": "conv", "filters": 3,
                                 "kernel_size": 1}])).warnings  # fmt: skip
    assert [d.code for d in warning] == ["mask-dropped"]
    assert "Conv1D 'conv': drops the mask of Embedding 'embed'" in warning[0].format()


@pytest.mark.slow
def test_declared_masking_equals_keras_supports_masking():
    """keras_masking 'drop' exactly where Keras's layer has supports_masking False, for every
    layer type (an instance from the bundled specs and cases, else the type's defaults)."""
    keras = pytest.importorskip("keras")
    from specc.targets.keras.codegen import keras_layer

    instances = {}
    paths = glob.glob(str(ROOT / "specs" / "**" / "*.yaml"), recursive=True)
    paths += glob.glob(str(ROOT / "tests" / "cases" / "*" / "spec.yaml"))
    for path in sorted(paths):
        result = check_file(path)
        if result.ok:
            for layer in result.model.layers:
                instances.setdefault(layer.type, layer.spec)
    wrong = []
    for name, cls in sorted(LAYER_TYPES.items()):
        if name == "Input":
            continue
        spec = instances.get(name) or cls.model_validate({"type": name})
        supports = keras_layer(keras, spec).supports_masking
        if supports != (cls.keras_masking != "drop"):
            wrong.append(f"{name}: keras_masking {cls.keras_masking!r}, Keras {supports}")
    assert not wrong, wrong


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "cls", "first"),
    [("mask_attention", "MultiHeadAttention", "mha"), ("mask_score_attention", "_ScoreAttention", "att")],
)  # fmt: skip
def test_attention_ignoring_the_mask_would_be_caught(monkeypatch, case, cls, first):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    from specc.crosscheck import crosscheck
    from specc.layers import attention

    pytest.importorskip("onnxruntime")
    model = check_file(ROOT / "tests" / "cases" / case / "spec.yaml").model
    report = crosscheck(model, backends=["keras", "pytorch", "onnx"], batch=8)
    assert report.ok, report.format_text()
    assert not report.notes, report.notes  # every target compared
    monkeypatch.setattr(getattr(attention, cls), "keras_masking", "pass")  # computed unmasked
    report = crosscheck(model, backends=["keras", "pytorch"], batch=8, train_step=False)
    assert not report.ok
    assert report.divergences[0].layer == first, report.format_text()


@pytest.mark.slow
def test_ignoring_the_mask_would_be_caught(monkeypatch):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    from specc.crosscheck import crosscheck
    from specc.layers.pooling import GlobalAveragePooling1D

    model = check_file(ROOT / "tests" / "cases" / "mask_zero" / "spec.yaml").model
    report = crosscheck(model, backends=["keras", "pytorch"], batch=8, train_step=False)
    assert report.ok, report.format_text()
    monkeypatch.setattr(GlobalAveragePooling1D, "keras_masking", "drop")
    report = crosscheck(model, backends=["keras", "pytorch"], batch=8, train_step=False)
    assert not report.ok
    assert report.divergences[0].layer == "pool", report.format_text()


@pytest.mark.parametrize(
    ("layers", "refused"),
    [
        (  # MultiHeadAttention then Attention: Keras's MHA cleared the mask Attention reads
            [{"type": "MultiHeadAttention", "name": "mha", "inputs": ["embed", "embed"],
              "num_heads": 2, "key_dim": 2},
             {"type": "Add", "name": "res", "inputs": ["embed", "mha"]},
             {"type": "Attention", "name": "att", "inputs": ["res", "res"]}],
            "layers[3] Attention 'att'",
        ),
        (  # two Transformer blocks: the second MultiHeadAttention
            [{"type": "MultiHeadAttention", "name": "mha1", "inputs": ["embed", "embed"],
              "num_heads": 2, "key_dim": 2},
             {"type": "Add", "name": "res1", "inputs": ["embed", "mha1"]},
             {"type": "MultiHeadAttention", "name": "mha2", "inputs": ["res1", "res1"],
              "num_heads": 2, "key_dim": 2}],
            "layers[3] MultiHeadAttention 'mha2'",
        ),
    ],
)  # fmt: skip
def test_attention_after_a_masked_multi_head_attention_is_refused(layers, refused):
    """Keras's MultiHeadAttention clears the masks of the tensors it reads at run time
    (measured: a later Attention on the residual sum computes unmasked in Keras), so an
    attention layer that can run after it is refused rather than computed otherwise."""
    with pytest.raises(CodegenError) as err:
        generate(check_data(_spec(layers)).model, "pytorch")
    text = str(err.value)
    assert refused in text and "clears the masks of the tensors it reads" in text
    assert text.count("error:") == 1, text


@pytest.mark.slow
def test_keras_transformer_block_with_a_padding_mask_imports_and_agrees(tmp_path):
    """A saved Keras model whose Add records its mask as logical_or of the Embedding's
    masks imports (the mask operations are Keras's plumbing) and its Keras and PyTorch
    builds give the original's outputs."""
    import subprocess
    import sys

    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")
    from keras import layers

    ids = keras.Input((10,), dtype="int32", name="ids")
    embed = layers.Embedding(1000, 8, mask_zero=True, name="embed")(ids)
    attended = layers.MultiHeadAttention(2, 4, name="mha")(embed, embed)
    total = layers.Add(name="res")([embed, attended])
    pooled = layers.GlobalAveragePooling1D(name="pool")(layers.LayerNormalization(name="ln")(total))
    out = layers.Dense(3, activation="softmax", name="out")(pooled)
    keras.Model(ids, out).save(tmp_path / "block.keras")
    done = subprocess.run(
        [sys.executable, "-m", "specc", "import", str(tmp_path / "block.keras"),
         "-o", str(tmp_path / "block.yaml"), "--check"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pytorch  out: max abs" in done.stdout, done.stdout


def test_validation_warns_where_keras_may_give_attention_no_mask():
    spec = _spec(
        [{"type": "MultiHeadAttention", "name": "mha1", "inputs": ["embed", "embed"],
          "num_heads": 2, "key_dim": 2},
         {"type": "Add", "name": "res1", "inputs": ["embed", "mha1"]},
         {"type": "MultiHeadAttention", "name": "mha2", "inputs": ["res1", "res1"],
          "num_heads": 2, "key_dim": 2}]
    )  # fmt: skip
    result = check_data(spec)
    assert result.ok
    warned = [d for d in result.diagnostics if d.code == "mask-cleared"]
    assert [d.message for d in warned] == [
        "may not get the mask of Embedding 'embed' (mask_zero) in Keras: the "
        "MultiHeadAttention 'mha1', which can run before it, clears the masks of the tensors "
        "it reads"
    ]
    assert "layers[3] MultiHeadAttention 'mha2'" in warned[0].format()


@pytest.mark.slow
def test_crosscheck_of_a_dropped_mask_trains_on_sequences_without_padding():
    """Embedding(mask_zero) -> Conv1D (Keras drops the mask): the padding id's embedding row
    gets gradients from many steps, a repeated id, which Keras's Adam updates differently
    from PyTorch (the updated embeddings differed by 0.35 relative); the training step
    draws sequences without padding and says so, the forward rows keep the padding."""
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    from specc.crosscheck import crosscheck

    spec = _spec(
        [{"type": "Conv1D", "name": "conv", "filters": 4, "kernel_size": 3, "padding": "same"},
         {"type": "GlobalAveragePooling1D", "name": "pool"}],
        steps=8, vocabulary=500,
    )  # fmt: skip
    report = crosscheck(check_data(spec).model, backends=["keras", "pytorch"], batch=4)
    assert report.ok, report.format_text()
    assert any("sequences without padding" in note for note in report.notes), report.notes
