"""The generated docs (make docs) are up to date, and every layer documents its lowerings."""

from __future__ import annotations

from specc import targets
from specc.layers import LAYER_TYPES
from specc.reference import rendered_docs, stale_docs
from tests.conftest import ROOT


def test_generated_docs_are_current():
    stale = stale_docs(ROOT)
    assert not stale, f"stale generated docs: {stale} (run make docs)"


def test_every_lowering_is_documented_and_every_weight_layer_has_an_example():
    for name, cls in LAYER_TYPES.items():
        if cls.arity == 0:
            continue
        for target, attribute in (("pytorch", "torch_doc"), ("onnx", "onnx_doc")):
            if targets.get(target).lowers(cls):
                assert getattr(cls, attribute), f"{name}.{attribute} is empty"
        overrides_weights = "weights" in cls.__dict__ or any(
            "weights" in base.__dict__ for base in cls.__mro__[1:-1] if base.__name__ != "Layer"
        )
        if overrides_weights:
            assert cls.doc_example is not None, f"{name} declares weights but no doc_example"


def test_the_weights_table_comes_from_the_declarations():
    text = rendered_docs(ROOT)["docs/weights.md"]
    row = next(line for line in text.splitlines() if line.startswith("| Dense | `kernel`"))
    assert "(in, units)" in row and "glorot_uniform" in row and "(dense)" in row
    bn = [line for line in text.splitlines() if line.startswith("| BatchNormalization |")]
    assert [line.split("|")[2].strip() for line in bn] == [
        "`gamma`",
        "`beta`",
        "`moving_mean`",
        "`moving_variance`",
    ]
