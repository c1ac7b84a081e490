"""Shared pytest configuration: the --update-goldens option and common paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
#: the specs of the layer cases in tests/cases/ (a folder with its own spec and summary.txt)
CASE_SPECS = sorted(
    spec
    for case in (ROOT / "tests" / "cases").iterdir()
    if (case / "summary.txt").exists()
    for spec in (case / "spec.yaml", case / "spec.json")
    if spec.exists()
)
#: every valid model spec: bundled specs and layer cases (counts and crosscheck run on each)
MODEL_SPECS = SPECS + CASE_SPECS
#: bundled specs the PyTorch target refuses (with located diagnostics), and why; the tests
#: comparing PyTorch code with the other targets skip them (tests/test_keras_applications.py
#: checks the refusal itself)
TORCH_REFUSED = {
    "inception_v3.yaml": "BatchNormalization scale: false (center != scale) is refused by the "
    "PyTorch target until KerasBatchNorm takes any center/scale combination",
}


def skip_if_torch_refused(spec) -> None:
    reason = TORCH_REFUSED.get(Path(str(spec)).name)
    if reason:
        pytest.skip(reason)


def pytest_addoption(parser):
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite golden files under tests/cases/ instead of comparing",
    )


@pytest.fixture
def update_goldens(request) -> bool:
    return request.config.getoption("--update-goldens")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Real datasets (MNIST, Fashion-MNIST, CIFAR-10 subset) beside the checkout."""
    return Path(os.environ.get("SPECC_DATA_DIR", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    # golden outputs hold repo-relative paths
    monkeypatch.chdir(ROOT)
