"""One CLI grammar: the same option names on every command, several specs and directories
for validate and summary, --strict, and a line for every file written."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from specc.cli import app


def invoke(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_validate_a_directory_recursively(tmp_path):
    (tmp_path / "sub").mkdir()
    good = (
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers: [{type: Dense, units: 2}]\n"
    )
    (tmp_path / "a.yaml").write_text(good)
    (tmp_path / "sub" / "b.yml").write_text(good)
    (tmp_path / "sub" / "c.json").write_text("{")
    (tmp_path / "notes.txt").write_text("not a spec")
    result = invoke("validate", str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path / 'a.yaml'}: ok" in result.stdout
    assert f"{tmp_path / 'sub' / 'b.yml'}: ok" in result.stdout
    assert f"{tmp_path / 'sub' / 'c.json'}:1:2: error: invalid JSON" in result.stderr
    assert "notes.txt" not in result.stdout + result.stderr


def test_empty_directory_is_a_usage_error(tmp_path):
    result = invoke("validate", str(tmp_path))
    assert result.exit_code == 2
    assert "no *.yaml, *.yml or *.json spec files" in result.stderr


def test_strict_makes_warnings_fail():
    case = "tests/cases/warning_unused_layer/spec.yaml"
    assert invoke("validate", case).exit_code == 0
    strict = invoke("validate", "--strict", case)
    assert strict.exit_code == 1
    assert "failed: 1 warning with --strict" in strict.stdout
    payload = json.loads(invoke("validate", "--strict", "-f", "json", case).stdout)
    assert payload[0]["ok"] is False


def test_summary_of_several_specs():
    result = invoke("summary", "specs/mnist_mlp.json", "specs/digits_cnn.yaml")
    assert result.exit_code == 0
    assert 'Model: "mnist_mlp"' in result.stdout and 'Model: "digits_cnn"' in result.stdout
    data = json.loads(
        invoke("summary", "-f", "json", "specs/mnist_mlp.json", "specs/digits_cnn.yaml").stdout
    )
    assert [d["name"] for d in data] == ["mnist_mlp", "digits_cnn"]
    single = json.loads(invoke("summary", "-f", "json", "specs/mnist_mlp.json").stdout)
    assert single["name"] == "mnist_mlp"  # one spec: the object itself, as before


def test_every_write_says_what_it_wrote(tmp_path):
    out = tmp_path / "m.py"
    result = invoke("compile", "specs/mnist_mlp.json", "-t", "keras", "--out", str(out))
    assert result.exit_code == 0
    assert result.stderr == f"wrote {out} (keras code, {out.stat().st_size:,} bytes)\n"
    alias = tmp_path / "s.json"
    result = invoke("schema", "--output", str(alias))
    assert result.exit_code == 0 and alias.is_file()
    assert result.stderr.startswith(f"wrote {alias} (JSON Schema, ")
    quiet = invoke("compile", "specs/mnist_mlp.json", "-t", "pytorch", "-o", str(out), "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    graph = tmp_path / "g.mmd"
    result = invoke("plot", "specs/mnist_mlp.json", "--out", str(graph))
    assert result.exit_code == 0 and graph.read_text().startswith("---")
    assert result.stderr == f"wrote {graph} (mermaid graph, {graph.stat().st_size:,} bytes)\n"


def test_same_option_names_on_every_command():
    helps = {
        cmd: invoke(cmd, "--help").stdout
        for cmd in ("validate", "summary", "compile", "train", "crosscheck", "schema")
    }
    for cmd in ("validate", "summary", "crosscheck"):
        assert "--format" in helps[cmd], cmd
    for cmd in ("compile", "train", "schema"):
        assert "--out" in helps[cmd], cmd
    # the commands added since (plot, import, predict, report) speak the same grammar
    for cmd in ("plot", "import", "predict", "report"):
        text = invoke(cmd, "--help").stdout
        assert "--out" in text and "-o" in text, cmd
    for cmd in ("plot", "import", "predict"):
        assert "--quiet" in invoke(cmd, "--help").stdout, cmd
    assert "sarif" in helps["validate"] and "github" in helps["validate"]
    for cmd in ("train", "crosscheck"):
        assert "--batch-size" in helps[cmd] and "--seed" in helps[cmd], cmd
    for cmd in ("validate", "train", "compile", "schema"):
        assert "--quiet" in helps[cmd], cmd


def test_top_level_help_does_not_truncate():
    text = invoke("--help").stdout
    commands = text.split("Commands:")[1]
    assert "..." not in commands
    assert "Check specs: syntax, fields, graph, shapes and training section." in text
