"""Golden-file tests: every folder in tests/cases/ holds a spec and the expected output of
specc commands on it. Run `pytest tests/test_goldens.py --update-goldens` to rewrite them.

A folder holds `spec.yaml` / `spec.json` (or `spec.ref`: a repo-relative path to a spec in
specs/) and any of the expected files named in COMMANDS.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specc.cli import app

CASES = Path(__file__).parent / "cases"

COMMANDS = {
    "validate.txt": ["validate"],
    "validate.json": ["validate", "--format", "json"],
    "summary.txt": ["summary"],
    "summary.json": ["summary", "--format", "json"],
    "summary.md": ["summary", "--format", "markdown"],
}


def spec_path(case: Path) -> str:
    ref = case / "spec.ref"
    if ref.exists():
        return ref.read_text().strip()
    for name in ("spec.yaml", "spec.yml", "spec.json"):
        if (case / name).exists():
            return str((case / name).relative_to(Path(__file__).parent.parent))
    raise FileNotFoundError(f"{case} has no spec.yaml, spec.json or spec.ref")


def run_cli(args: list[str]) -> str:
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    return f"exit: {result.exit_code}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"


def _cases():
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        for expected, args in COMMANDS.items():
            if (case / expected).exists():
                yield pytest.param(case, expected, args, id=f"{case.name}/{expected}")


@pytest.mark.parametrize(("case", "expected", "args"), list(_cases()))
def test_golden(case: Path, expected: str, args: list[str], update_goldens: bool):
    actual = run_cli([*args, spec_path(case)])
    assert "Traceback" not in actual
    golden = case / expected
    if update_goldens:
        golden.write_text(actual)
        return
    want = golden.read_text()
    if actual != want:
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(golden),
                tofile="actual",
            )
        )
        pytest.fail(
            f"output differs from {golden} (rerun with --update-goldens if intended):\n{diff}"
        )


def test_every_bundled_spec_has_a_golden_summary():
    refs = {
        (c / "spec.ref").read_text().strip() for c in CASES.iterdir() if (c / "spec.ref").exists()
    }
    specs = {
        f"specs/{p.name}"
        for p in (CASES.parent.parent / "specs").iterdir()
        if p.suffix in (".yaml", ".json")
    }
    assert specs <= refs, f"add golden cases for: {sorted(specs - refs)}"
