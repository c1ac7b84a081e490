"""Every shell example in README.md and docs/*.md that is marked runnable runs, and prints
what the docs show.

The marker: an HTML comment ``<!-- runnable -->`` (or ``<!-- runnable exit=N -->`` for an
example that must exit N) on the line before a ```` ```console ```` block. In the block,
``$ `` starts a command (run from the repository root, ``specc`` being this checkout's);
the lines up to the next command are its expected output (stdout and stderr as printed).
A block without output lines only has to exit as marked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- runnable(?: exit=(\d+))? -->\s*$")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples():
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        for i, line in enumerate(lines):
            match = MARKER.match(line)
            if not match:
                continue
            assert lines[i + 1].strip() == "```console", f"{doc.name}:{i + 2}: expected ```console"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
            body = lines[i + 2 : end]
            commands: list[tuple[str, list[str]]] = []
            for text in body:
                if text.startswith("$ "):
                    commands.append((text[2:], []))
                else:
                    assert commands, f"{doc.name}:{i + 3}: output before the first '$ ' command"
                    commands[-1][1].append(text)
            for command, output in commands:
                yield pytest.param(
                    command,
                    output,
                    int(match.group(1) or 0),
                    id=f"{doc.name}:{i + 3}:{command[:40]}",
                )


def test_the_docs_hold_runnable_examples():
    assert len(list(examples())) >= 3


@pytest.mark.parametrize(("command", "output", "exit_code"), list(examples()))
def test_runnable_example(command: str, output: list[str], exit_code: int, tmp_path):
    argv = shlex.split(command)
    assert argv[0] == "specc", f"runnable examples run specc, not {argv[0]}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    result = subprocess.run(
        [sys.executable, "-m", "specc", *argv[1:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in result.stdout
    assert result.returncode == exit_code, result.stdout
    if output:
        got = [line.rstrip() for line in result.stdout.rstrip("\n").splitlines()]
        assert got == [line.rstrip() for line in output]
