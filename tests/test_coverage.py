"""The coverage matrix: every registered layer x every target lowers or says why not."""

from __future__ import annotations

from typing import ClassVar, Literal

from specc import targets
from specc.layers import LAYER_TYPES
from specc.layers.base import Layer
from specc.targets.coverage import decision, missing_decisions


def test_every_layer_has_a_decision_for_every_target():
    problems = missing_decisions()
    assert not problems, "\n".join(problems)


def test_a_new_layer_without_decisions_fails_with_what_to_add():
    class Fancy(Layer):
        type: Literal["Fancy"]
        keras_class: ClassVar[str] = "Fancy"

    problems = missing_decisions({"Fancy": Fancy})
    assert [p.split(":")[0] for p in problems] == [
        "Fancy has no decision for target 'pytorch'",
        "Fancy has no decision for target 'onnx'",
    ]
    assert "define Fancy.torch_lowering()" in problems[0]
    assert "refusals = {'onnx': " in problems[1]


def test_a_declared_refusal_is_a_decision():
    class Partial(Layer):
        type: Literal["Partial"]
        keras_class: ClassVar[str] = "Partial"
        refusals: ClassVar[dict[str, str]] = {
            "pytorch": "no exact torch operator",
            "onnx": "no exact ONNX operator",
        }

    assert missing_decisions({"Partial": Partial}) == []
    assert decision(Partial, targets.get("onnx")) == "refuses: no exact ONNX operator"
    assert decision(Partial, targets.get("keras")) == "lowers"


def test_the_registry_names_every_target():
    assert targets.names() == ("keras", "pytorch", "onnx")
    assert [t.name for t in targets.all_targets()] == list(targets.names())
    assert len(LAYER_TYPES) >= 33
