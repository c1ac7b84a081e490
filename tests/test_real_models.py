"""Real architectures no issue names (specs/models/): a U-Net, a convolutional autoencoder,
a Transformer text classifier, a ViT patch classifier, a 1D-CNN and a stacked-GRU
sequence model, a wide & deep two-input two-output model, a DCGAN generator.

The fast tests check specc's static answers against the numbers Keras gives (each written
beside it, from ``build_model().count_params()`` of the generated Keras code with
TensorFlow 2.21 / Keras 3) and the fixes these models needed; the slow tests build each
model with Keras and run ``specc crosscheck`` (Keras, PyTorch and ONNX agree).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specc.codegen import generate
from specc.crosscheck import _inputs
from specc.pipeline import check_data

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "specs" / "models"


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
