"""The wheel ships every subpackage and the code templates."""

from __future__ import annotations

import zipfile

import pytest
import tomllib

from .conftest import ROOT


def test_every_subpackage_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "specc").rglob("__init__.py")
    }
    assert found | {"specc.templates"} == listed


@pytest.mark.slow
def test_wheel_contains_templates(tmp_path):
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("specc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"specc/templates/keras/model.py.j2", "specc/templates/pytorch/model.py.j2"} <= names
    assert "specc/runner/run.py" in names and "specc/data/loaders.py" in names


def test_framework_extras_are_enough_to_train():
    """`pip install 'specc[torch]'` (or [keras]) brings what a run's report needs: every
    module `specc.extras` maps to the 'train' extra is installed by each framework extra."""
    from specc.extras import PACKAGES

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = config["project"]["optional-dependencies"]
    train = {dep.split(">")[0].split("=")[0].split(";")[0].strip() for dep in extras["train"]}
    needed = {dist for dist, extra in PACKAGES.values() if extra == "train"}
    assert needed <= train
    for framework in ("torch", "keras"):
        assert "specc[train]" in extras[framework], framework
    meta = config["project"]
    assert meta["urls"] and meta["classifiers"]
