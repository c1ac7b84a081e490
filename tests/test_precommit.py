"""The pre-commit hook `specc-validate` (.pre-commit-hooks.yaml): its manifest, the files it
selects, and its entry run the way pre-commit runs it (entry + args + file names); and,
in the slow run, `pre-commit try-repo` itself on a scratch repository."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT

MANIFEST = ROOT / ".pre-commit-hooks.yaml"
BAD = "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers: [{type: Dense}]\n"


def _hook() -> dict:
    (hook,) = [h for h in yaml.safe_load(MANIFEST.read_text()) if h["id"] == "specc-validate"]
    return hook


def test_manifest_is_valid_for_pre_commit():
    clientlib = pytest.importorskip("pre_commit.clientlib")
    hooks = clientlib.load_manifest(str(MANIFEST))
    assert [h["id"] for h in hooks] == ["specc-validate"]
    assert hooks[0]["language"] == "python"


def test_files_pattern_selects_specs_only():
    pattern = re.compile(_hook()["files"])
    selected = [
        "specs/mnist_cnn.yaml",
        "models/specs/a.yml",
        "specs/mnist_mlp.json",
        "model.spec.yaml",
        "deep/dir/net.spec.json",
    ]
    ignored = [".github/workflows/ci.yaml", "docker-compose.yml", "package.json", "specs/notes.md"]
    assert all(pattern.search(p) for p in selected)
    assert not any(pattern.search(p) for p in ignored)


def _run_entry(files: list[str], cwd) -> subprocess.CompletedProcess:
    """The hook's entry as pre-commit runs it: `entry args... file...` (the console script
    `specc` is this checkout's `python -m specc`)."""
    hook = _hook()
    argv = shlex.split(hook["entry"]) + list(hook.get("args", []))
    assert argv[0] == "specc"
    argv = [sys.executable, "-m", "specc", *argv[1:]]
    pattern = re.compile(hook["files"])
    chosen = [f for f in files if pattern.search(f)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        argv + chosen, cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def test_hook_entry_fails_a_bad_spec_and_passes_good_ones(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "bad.yaml").write_text(BAD)
    shutil.copy(ROOT / "specs" / "mnist_cnn.yaml", tmp_path / "specs" / "good.yaml")
    (tmp_path / "ci.yaml").write_text("on: push\n")  # not a spec: never passed to the hook
    bad = _run_entry(["ci.yaml", "specs/bad.yaml", "specs/good.yaml"], tmp_path)
    assert bad.returncode == 1
    assert "specs/bad.yaml:4:10: layers[0] Dense: missing required field 'units'" in bad.stderr
    assert "ci.yaml" not in bad.stderr + bad.stdout
    good = _run_entry(["ci.yaml", "specs/good.yaml"], tmp_path)
    assert good.returncode == 0, good.stderr
    assert good.stdout == "" and good.stderr == ""  # --quiet: silent when all is well


@pytest.mark.slow
def test_pre_commit_try_repo_fails_a_bad_spec(tmp_path):
    """The real thing: pre-commit installs this checkout into a hook environment (from the
    package registry) and runs the hook. About 30-60 s."""
    pytest.importorskip("pre_commit")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    repo = tmp_path / "project"
    (repo / "specs").mkdir(parents=True)
    (repo / "specs" / "bad.yaml").write_text(BAD)
    shutil.copy(ROOT / "specs" / "mnist_cnn.yaml", repo / "specs" / "good.yaml")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)  # the hook must run the installed copy
    cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "specc-validate"]
    result = subprocess.run(
        [*cmd, "--all-files"], cwd=repo, capture_output=True, text=True, env=env, timeout=600
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "specc validate" in out and "Failed" in out
    assert "specs/bad.yaml:4:10: layers[0] Dense: missing required field 'units'" in out
    assert "good.yaml" not in out  # valid specs pass silently (--quiet)
