"""The layer registry imports a layer family when one of its types is first used."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_index_is_up_to_date():
    from specc.layers import index_source

    written = (ROOT / "specc" / "layers" / "_index.py").read_text(encoding="utf-8")
    assert written == index_source(), "the layer index is stale: run `make docs`"


def test_checking_a_spec_imports_only_the_families_it_uses():
    out = _run(
        "import sys, json\n"
        "from specc import api\n"
        "api.load('specs/mnist_cnn.yaml')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('specc.layers.'))))\n"
    )
    families = {m.rsplit(".", 1)[1] for m in json.loads(out)}
    # Conv2D, MaxPooling2D, Flatten/Dense/Dropout; base modules the families build on
    assert {"conv", "pooling", "core"} <= families
    assert not families & {"recurrent", "attention", "preprocessing", "sequence", "merge"}


def test_a_type_missing_from_the_index_is_still_found():
    out = _run(
        "import specc.layers._index as ix\n"
        "ix.INDEX.clear()\n"
        "ix.INDEX['LSTM'] = 'core'  # wrong module: the registry must look everywhere\n"
        "from specc.layers import LAYER_TYPES\n"
        "print(LAYER_TYPES['LSTM'].__name__, LAYER_TYPES['Dense'].__name__,\n"
        "      'Nope' in LAYER_TYPES, len(LAYER_TYPES) > 50)\n"
    )
    assert out.split() == ["LSTM", "Dense", "False", "True"]


def test_an_invalid_spec_still_gets_the_full_union_errors():
    # the error path validates against the union of every layer type (built on first use)
    from specc.pipeline import check_text

    result = check_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\n"
        "layers:\n  - {type: LSTM, units: 0}\n  - {type: Dnse, units: 3}\n"
    )
    messages = [d.message for d in result.diagnostics]
    assert any("units must be >= 1" in m for m in messages), messages
    assert any("unknown layer type 'Dnse'" in m for m in messages), messages
