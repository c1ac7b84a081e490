"""Diagnostics as a registry: every code is declared once in specc/diagcodes.py, program
logic never uses a free-text code, and docs/diagnostics.md is generated from the registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from specc import diagcodes as codes
from specc.diagnostics import Diagnostic, json_path
from specc.pipeline import check_data, check_text

ROOT = Path(__file__).resolve().parent.parent


def test_unregistered_code_is_refused():
    with pytest.raises(ValueError, match="unregistered diagnostic code 'no-such-code'"):
        Diagnostic("x", code="no-such-code")


def test_code_carries_severity_and_documentation():
    assert Diagnostic("x", code=codes.UNUSED).severity == "warning"
    assert Diagnostic("x", code=codes.SHAPE).severity == "error"
    for code in codes.REGISTRY.values():
        assert code.doc and code.doc.endswith("."), code
        assert code.severity in ("error", "warning")


def _string_codes(tree: ast.AST):
    """``code="..."`` keywords and ``.code == "..."`` comparisons with a string literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                yield node.lineno, node.value.value
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "code" for s in sides):
                for s in sides:
                    if isinstance(s, ast.Constant) and isinstance(s.value, str):
                        yield node.lineno, s.value


def test_no_free_text_codes_in_the_package():
    found = []
    for path in sorted((ROOT / "specc").rglob("*.py")):
        if path.name == "diagcodes.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        found += [
            f"{path.relative_to(ROOT)}:{line}: {text!r}" for line, text in _string_codes(tree)
        ]
    assert not found, "use a constant of specc.diagcodes instead of a string:\n" + "\n".join(found)


def test_codes_used_in_the_package_are_registered():
    used = set()
    for path in sorted((ROOT / "specc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "codes"
                and node.attr.isupper()
                and node.attr not in ("ERROR", "WARNING", "REGISTRY", "STAGES")
            ):
                used.add(node.attr)
    missing = sorted(
        name for name in used if not isinstance(getattr(codes, name, None), codes.Code)
    )
    assert not missing, f"not declared in specc/diagcodes.py: {missing}"


def test_docs_are_generated_from_the_registry():
    committed = (ROOT / "docs" / "diagnostics.md").read_text()
    assert committed == codes.markdown() + "\n", "docs/diagnostics.md is stale: run `make docs`"
    for code in codes.REGISTRY:
        assert f"| `{code}` |" in committed


def test_json_path():
    assert json_path(("layers", 3, "filters")) == "layers[3].filters"
    assert json_path(("training", "optimizer")) == "training.optimizer"
    assert json_path(()) == ""


def test_check_data_locates_by_json_path():
    data = {
        "version": 1,
        "name": "m",
        "inputs": [{"name": "x", "shape": [4]}],
        "layers": [{"type": "Dense", "units": 0}],
        "training": {"dataset": "mnist", "optimiser": "adam"},
    }
    result = check_data(data)
    paths = sorted(d.path for d in result.diagnostics)
    assert paths == ["layers[0].units", "training.optimiser"]
    assert all(d.file == "<dict>" for d in result.diagnostics)


def test_every_diagnostic_has_a_path_in_json():
    result = check_text(
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers:\n  - {type: Dense, units: -1}\n"
    )
    (diag,) = result.diagnostics
    assert diag.to_dict()["path"] == "layers[0].units"
    assert diag.to_dict()["code"] == "invalid-value"
    assert "^" in diag.format() and "error:" in diag.format()


def test_diagnostics_inside_blocks_carry_the_path_as_written():
    """A problem in an expanded block instance points into the block definition, by line and
    by JSON path (not at the expanded layer list, which the user never wrote)."""
    result = check_text(
        "version: 1\nname: b\ninputs: [{name: x, shape: [4]}]\n"
        "blocks:\n  mlp:\n    params: {units: int}\n    layers:\n"
        "      - {type: Dense, units: $(units / 3)}\n"
        "layers:\n  - {type: mlp, units: 8}\n",
        file="b.yaml",
    )
    (diag,) = result.diagnostics
    assert diag.code == codes.EXPRESSION
    assert (diag.line, diag.path) == (8, "blocks.mlp.layers[0].units")
    assert diag.format().splitlines()[1] == "   8 |       - {type: Dense, units: $(units / 3)}"
