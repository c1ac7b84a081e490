"""The console entry's fast path (specc.entry): plain `specc validate` / `specc summary`
command lines run without typer, and print exactly what the full command line prints."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from specc import entry
from specc.cli import app

from .conftest import ROOT, SPECS

runner = CliRunner()

BAD = "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers:\n  - {type: Dense}\n"


def _fast(args: list[str]) -> tuple[int | None, str, str]:
    """entry.fast with stdout and stderr as real text streams (an encoding, no terminal)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = entry.fast(args)
    finally:
        sys.stdout, sys.stderr = saved
    out.flush()
    err.flush()
    return status, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()


def _full(args: list[str]) -> tuple[int, str, str]:
    result = runner.invoke(app, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bad(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return str(path)


@pytest.mark.parametrize(
    "args",
    [
        ["validate", *map(str, SPECS)],
        ["validate", "-q", *map(str, SPECS[:3])],
        ["validate", "--strict", "specs/mnist_cnn.yaml"],
        ["validate", "specs/mnist_cnn.yaml", "--format", "json"],
        ["validate", "--format=sarif", "specs/mnist_cnn.yaml", "BAD"],
        ["validate", "-f", "github", "BAD"],
        ["validate", "BAD", "specs/mnist_mlp.json"],
        ["validate", "specs"],
        ["validate", "does/not/exist.yaml"],
        ["summary", "specs/mnist_cnn.yaml"],
        ["summary", "specs/residual_block.yaml", "specs/mnist_mlp.json", "-f", "json"],
        ["summary", "specs/mnist_cnn.yaml", "--format", "json"],
        ["summary", "--format", "markdown", "specs/inception_block.yaml"],
        ["summary", "specs/efficientnet_b0.yaml", "--depth", "0"],
        ["summary", "BAD", "specs/mnist_cnn.yaml"],
        ["summary", "--strict", "does/not/exist.yaml"],
    ],
)
def test_fast_path_prints_what_the_full_command_line_prints(args, bad, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = [bad if a == "BAD" else a for a in args]
    status, out, err = _fast(args)
    assert status is not None, "the fast path should take this command line"
    assert (status, out, err) == _full(args)


def test_empty_directory_is_the_same_usage_error(tmp_path):
    status, out, err = _fast(["validate", str(tmp_path)])
    assert (status, out, err) == _full(["validate", str(tmp_path)])
    assert status == 2 and "no *.yaml, *.yml or *.json spec files" in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["validate"],  # missing argument: typer's usage message
        ["validate", "--help"],
        ["compile", "specs/mnist_cnn.yaml"],
        ["summary", "specs/mnist_cnn.yaml", "--format", "xml"],
        ["summary", "specs/mnist_cnn.yaml", "--depth", "-1"],
        ["summary", "specs/mnist_cnn.yaml", "--depth", "x"],
        ["summary", "specs/mnist_cnn.yaml", "--quiet"],  # validate's option
        ["validate", "-q", "-q", "specs/mnist_cnn.yaml"],
        ["validate", "--quiet=1", "specs/mnist_cnn.yaml"],
        ["validate", "-f=json", "specs/mnist_cnn.yaml"],
        ["validate", "--", "specs/mnist_cnn.yaml"],
        ["validate", "-", "specs/mnist_cnn.yaml"],
        ["validate", ""],
        ["validate", "specs/mnist_cnn.yaml", "--format"],
    ],
)
def test_anything_else_goes_to_the_full_command_line(args):
    assert entry.parse(args) is None


def test_parse_reads_options_anywhere():
    assert entry.parse(["summary", "-f", "json", "a.yaml", "--depth", "2", "b.yaml"]) == (
        "summary",
        {"specs": ["a.yaml", "b.yaml"], "format": "json", "strict": False, "depth": 2},
    )
    assert entry.parse(["validate", "a.yaml", "--format=github", "--strict", "-q"]) == (
        "validate",
        {"specs": ["a.yaml"], "format": "github", "strict": True, "quiet": True},
    )


def test_console_entry_in_a_fresh_process(bad):
    """`python -m specc` goes through specc.entry.main: the same output and exit status as
    the full command line (SPECC_NO_FAST_PATH=1), and no typer imported on the way."""
    code = (
        "import sys, runpy; sys.argv[0] = 'specc'\n"
        "try:\n    runpy.run_module('specc', run_name='__main__')\n"
        "finally:\n    print('TYPER', 'typer' in sys.modules, file=sys.stderr)\n"
    )
    runs = {}
    for mode, env in (("fast", {}), ("full", {"SPECC_NO_FAST_PATH": "1"})):
        proc = subprocess.run(
            [sys.executable, "-c", code, "validate", "specs/mnist_cnn.yaml", bad],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**__import__("os").environ, **env},
        )
        runs[mode] = proc
    fast, full = runs["fast"], runs["full"]
    assert fast.returncode == full.returncode == 1
    assert fast.stdout == full.stdout and "specs/mnist_cnn.yaml: ok (" in fast.stdout
    assert fast.stderr.replace("TYPER False", "TYPER True") == full.stderr
    assert "TYPER False" in fast.stderr and "missing required field 'units'" in fast.stderr
