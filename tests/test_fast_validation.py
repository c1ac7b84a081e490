"""specc.spec.validate_spec: the fast path (each layer by its own class, built on first use)
gives exactly what the full model gives, and every invalid spec goes through the full model
(so diagnostics are unchanged: tests/test_goldens.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from specc.spec import Spec, validate_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").iterdir() if p.suffix in (".yaml", ".json"))


def _data(path: Path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_same_result_as_full_model(path):
    data = _data(path)
    fast = validate_spec(data)
    full = Spec.model_validate(data)
    assert fast == full
    assert fast.model_fields_set == full.model_fields_set
    assert [type(a) for a in fast.layers] == [type(b) for b in full.layers]
    assert [a.model_fields_set for a in fast.layers] == [b.model_fields_set for b in full.layers]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["layers"][0].update(filters=-1),
        lambda d: d["layers"][0].update(type="Conv3D"),
        lambda d: d["layers"][0].pop("type"),
        lambda d: d["layers"].append("Dense"),
        lambda d: d.update(version=2),
        lambda d: d.update(layers=[]),
        lambda d: d.update(extra=1),
    ],
)
def test_errors_are_the_full_models(mutate):
    from pydantic import ValidationError

    data = _data(ROOT / "specs" / "mnist_cnn.yaml")
    mutate(data)
    with pytest.raises(ValidationError) as fast:
        validate_spec(data)
    with pytest.raises(ValidationError) as full:
        Spec.model_validate(data)
    assert fast.value.errors() == full.value.errors()


def test_check_builds_only_the_layer_classes_it_uses():
    code = (
        "from specc.pipeline import check_file\n"
        "from specc.layers import LAYER_TYPES\n"
        "assert check_file('specs/mnist_mlp.json').ok\n"
        "print(sorted(n for n, c in LAYER_TYPES.items() if c.__pydantic_complete__))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    built = ast.literal_eval(out)
    assert set(built) <= {"Dense", "Dropout", "Flatten", "Input"}, built
    assert len(built) < 6
