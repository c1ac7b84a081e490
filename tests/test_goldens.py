"""The one golden driver: every folder in tests/cases/ is a case holding a spec and the
expected output of every specc command on it. `make goldens` (or `pytest
tests/test_goldens.py --update-goldens`) rewrites them; a mismatch prints a unified diff.

A folder holds `spec.yaml` / `spec.json` (or `spec.ref`: a repo-relative path to a spec in
specs/) and any of the expected files named in COMMANDS: diagnostics, summaries, the Keras
and PyTorch code, the training scripts and the ONNX text view. A bundled spec's case holds
all of them; `--update-goldens` also writes the missing ones of a case that has a
`summary.txt` (a bundled or layer case).
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
    "summary_depth.txt": ["summary", "--depth", "1"],
    "keras.py": ["compile", "--target", "keras"],
    "pytorch.py": ["compile", "--target", "pytorch"],
    "keras_train.py": ["compile", "--target", "keras", "--with-training"],
    "pytorch_train.py": ["compile", "--target", "pytorch", "--with-training"],
    "onnx.txt": ["compile", "--target", "onnx-text"],
    # a case the ONNX target refuses records the refusal instead (exit code and message)
    "onnx_refused.txt": ["compile", "--target", "onnx-text"],
}
#: outputs compared as the command's stdout alone (the file a user would write with -o)
PLAIN = {"keras.py", "pytorch.py", "keras_train.py", "pytorch_train.py", "onnx.txt"}
#: outputs every full case (one with a summary.txt) must have, and what each needs
FULL = ("summary.txt", "summary.json", "summary.md", "keras.py", "pytorch.py", "onnx.txt")
NEEDS = {"onnx.txt": "onnx", "onnx_refused.txt": "onnx"}
#: FULL outputs a case may record as a refusal instead
REFUSED = {"onnx.txt": "onnx_refused.txt"}


def spec_path(case: Path) -> str:
    ref = case / "spec.ref"
    if ref.exists():
        return ref.read_text().strip()
    for name in ("spec.yaml", "spec.yml", "spec.json"):
        if (case / name).exists():
            return str((case / name).relative_to(Path(__file__).parent.parent))
    raise FileNotFoundError(f"{case} has no spec.yaml, spec.json or spec.ref")


def run_cli(args: list[str], plain: bool = False) -> str:
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    if plain:
        assert result.exit_code == 0, result.stderr
        return result.stdout
    return f"exit: {result.exit_code}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"


def _wanted(case: Path, update: bool) -> list[str]:
    present = [name for name in COMMANDS if (case / name).exists()]
    if update and (case / "summary.txt").exists():
        full = [REFUSED[n] if (case / REFUSED.get(n, "-")).exists() else n for n in FULL]
        present = list(dict.fromkeys([*present, *full]))
        if "training:" in Path(spec_path(case)).read_text(encoding="utf-8"):
            present += [n for n in ("keras_train.py", "pytorch_train.py") if n not in present]
    return [name for name in COMMANDS if name in present]


def _cases(update: bool = False):
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        for expected in _wanted(case, update):
            yield pytest.param(case, expected, COMMANDS[expected], id=f"{case.name}/{expected}")


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        update = metafunc.config.getoption("--update-goldens")
        metafunc.parametrize(("case", "expected", "args"), list(_cases(update)))


def test_golden(case: Path, expected: str, args: list[str], update_goldens: bool):
    need = NEEDS.get(expected)
    if need:
        pytest.importorskip(need)
    actual = run_cli([*args, spec_path(case)], plain=expected in PLAIN)
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


def test_every_full_case_has_every_output():
    for case in sorted(p for p in CASES.iterdir() if (p / "summary.txt").exists()):
        missing = [
            name
            for name in FULL
            if not (case / name).exists() and not (case / REFUSED.get(name, "-")).exists()
        ]
        assert not missing, f"{case.name} lacks {missing} (run make goldens)"


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


def test_golden_code_is_formatted_and_lint_clean():
    """The generator formats as ruff does: every golden Keras/PyTorch file (models and
    training scripts) passes ruff check and ruff format --check unchanged."""
    import subprocess
    import sys

    ruff = Path(sys.executable).parent / "ruff"
    files = sorted(str(p) for p in CASES.glob("*/*.py"))
    config = ["--config", str(CASES.parent.parent / "pyproject.toml"), "--no-cache"]
    for args in (["check", *config], ["format", "--check", "--diff", *config]):
        result = subprocess.run([ruff, *args, *files], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
