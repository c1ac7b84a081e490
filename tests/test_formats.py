"""`specc validate --format sarif|github`: SARIF 2.1.0 checked against the official OASIS
schema (tests/data/sarif-schema-2.1.0.json), and GitHub workflow annotation lines."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from specc.cli import app
from specc.diagnostics import Diagnostic
from specc.formats import github_annotation, sarif_log

from .conftest import ROOT, SPECS

jsonschema = pytest.importorskip("jsonschema")

runner = CliRunner()
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())

BAD = (
    "version: 1\n"
    "name: m\n"
    "inputs: [{name: x, shape: [28, 28, 1]}]\n"
    "layers:\n"
    "  - {type: Conv2D, name: c1, filters: 8, kernel_size: 3}\n"
    "  - {type: Dense, name: d1}\n"
    "  - {type: Conv2D, name: c2, filters: 8, kernel_size: 40}\n"
)


def _validate(instance: dict) -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    errors = sorted(jsonschema.Draft4Validator(SCHEMA).iter_errors(instance), key=str)
    assert not errors, "\n".join(e.message for e in errors)


def test_schema_file_is_the_official_sarif_2_1_0_schema():
    assert SCHEMA["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert SCHEMA["properties"]["version"]["enum"] == ["2.1.0"]


def test_sarif_output_validates_one_result_per_diagnostic(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = runner.invoke(app, ["validate", str(bad), "--format", "sarif"])
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    _validate(log)
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "specc"
    results = run["results"]
    # Dense without units (line 6) is the one error pydantic reports for this spec
    assert [r["level"] for r in results] == ["error"]
    (res,) = results
    region = res["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (6, 5)
    assert res["ruleId"] == "missing-field"
    assert run["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == "missing-field"
    assert "units" in res["message"]["text"]


def test_sarif_for_shape_errors_and_several_files(tmp_path):
    shape = tmp_path / "shape.yaml"
    shape.write_text(BAD.replace("  - {type: Dense, name: d1}\n", ""))
    ok = ROOT / "specs" / "mnist_cnn.yaml"
    result = runner.invoke(app, ["validate", str(shape), str(ok), "-f", "sarif"])
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    _validate(log)
    (res,) = log["runs"][0]["results"]
    assert res["ruleId"] == "shape"
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("shape.yaml")
    # the kernel_size value of layer c2 (line 6: '  - {type: Conv2D, name: c2, ..., kernel_size: 40}')
    line6 = shape.read_text().splitlines()[5]
    assert loc["region"] == {"startLine": 6, "startColumn": line6.index("40") + 1}


def test_sarif_of_valid_specs_is_an_empty_run():
    result = runner.invoke(app, ["validate", *map(str, SPECS), "-f", "sarif"])
    assert result.exit_code == 0
    log = json.loads(result.stdout)
    _validate(log)
    assert log["runs"][0]["results"] == []


def test_sarif_escapes_and_relative_uris():
    diag = Diagnostic(
        'bad "thing"\nsecond line', file="specs/a b#c.yaml", line=3, column=7, code="shape"
    )
    log = sarif_log([diag, Diagnostic("w", severity="warning", code="unused")])
    _validate(log)
    results = log["runs"][0]["results"]
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "specs/a%20b%23c.yaml"
    )
    assert results[1]["level"] == "warning"


GITHUB_LINE = re.compile(
    r"^::(error|warning) file=(?P<file>[^,:]+),line=(?P<line>\d+),col=(?P<col>\d+),"
    r"title=(?P<title>[^,:]+)::(?P<msg>.+)$"
)


def test_github_annotations_have_the_documented_format(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(BAD)
    result = runner.invoke(app, ["validate", "bad.yaml", "--format", "github"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    m = GITHUB_LINE.match(lines[0])
    assert m, lines[0]
    assert (m["file"], m["line"], m["col"], m["title"]) == (
        "bad.yaml",
        "6",
        "5",
        "specc missing-field",
    )
    assert "units" in m["msg"]


def test_github_annotation_escaping():
    diag = Diagnostic(
        "100% wrong\nnext", file="a,b:c.yaml", line=2, column=3, code="x", severity="warning"
    )
    line = github_annotation(diag)
    assert line == "::warning file=a%2Cb%3Ac.yaml,line=2,col=3,title=specc x::100%25 wrong%0Anext"


def test_github_format_prints_nothing_for_valid_specs():
    result = runner.invoke(app, ["validate", str(SPECS[0]), "-f", "github"])
    assert result.exit_code == 0
    assert result.stdout == ""
