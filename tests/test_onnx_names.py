"""ONNX internal value names live in a namespace spec names cannot reach (issue 19): a
layer named ``image__cf``, ``conv__conv`` or ``dense__dense`` exports, checks and runs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnx")

from specc.api import loads  # noqa: E402
from specc.targets.onnx.graph import build_onnx  # noqa: E402

LONG = os.environ.get("SPECC_FUZZ") == "long"

# every suffix specc's ONNX lowering has used for internal values, glued to names
SUFFIXES = ["cf", "cl", "conv", "dense", "float", "sigmoid", "pooled", "matmul", "moved",
            "normalized", "below", "negative", "positive", "scaled", "mul0", "depthwise"]  # fmt: skip
# few bases, so that a name and the same name with an internal suffix meet often
BASE = st.one_of(
    st.sampled_from(["a", "b", "x"]), st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,4}", fullmatch=True)
)
NAME = st.one_of(
    BASE,
    st.builds(lambda a, s: f"{a}__{s}", BASE, st.sampled_from(SUFFIXES)),
    st.builds(lambda a, s: f"{a}_{s}", BASE, st.sampled_from(SUFFIXES)),
)


def spec_text(names: list[str]) -> str:
    x, conv, act, pool, dense, bn = names
    return f"""
version: 1
name: names
inputs: [{{name: {x}, shape: [6, 6, 2]}}]
layers:
  - {{type: Conv2D, name: {conv}, inputs: [{x}], filters: 3, kernel_size: 3, padding: same, activation: gelu}}
  - {{type: BatchNormalization, name: {bn}, inputs: [{conv}]}}
  - {{type: ReLU, name: {act}, inputs: [{bn}], max_value: 0.8, negative_slope: 0.1, threshold: 0.05}}
  - {{type: MaxPooling2D, name: {pool}, inputs: [{act}]}}
  - {{type: Dense, name: {dense}, inputs: [{pool}], units: 4, activation: sigmoid}}
outputs: [{act}, {dense}]
"""


def check_unique_values(proto) -> None:
    produced = [o for node in proto.graph.node for o in node.output]
    inits = [t.name for t in proto.graph.initializer]
    inputs = [i.name for i in proto.graph.input]
    everything = produced + inits + inputs
    assert len(everything) == len(set(everything)), "a value name is produced twice"


@settings(max_examples=200 if LONG else 25, deadline=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(st.lists(NAME, min_size=6, max_size=6, unique=True))
def test_any_spec_names_export_a_valid_graph(names):
    import onnx

    model = loads(spec_text(names))
    proto = build_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    check_unique_values(proto)
    assert [o.name for o in proto.graph.output] == [names[2], names[4]]


@pytest.mark.parametrize("names", [
    ["image", "image__cf", "act", "pool", "dense", "bn"],
    ["x", "conv", "act", "pool", "dense", "conv__conv"],
    ["x", "c", "act", "pool", "dense", "dense__dense"],
])  # fmt: skip
def test_the_reported_collisions_run_in_onnxruntime(names):
    ort = pytest.importorskip("onnxruntime")
    model = loads(spec_text(names))
    proto = build_onnx(model)
    check_unique_values(proto)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype(np.float32)
    act, dense = session.run(None, {names[0]: x})
    assert act.shape == (2, 6, 6, 3) and dense.shape == (2, 3, 3, 4)
    assert np.isfinite(dense).all() and ((dense > 0) & (dense < 1)).all()  # a sigmoid
