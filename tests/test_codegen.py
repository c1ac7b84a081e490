"""Code generation without frameworks: goldens, determinism, formatting (ruff), injection
safety, name clashes, refusals and the `specc compile` command."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specc.cli import app
from specc.codegen import CodegenError, generate
from specc.codegen.pyformat import NN_MODULE_ATTRIBUTES, RESERVED, docstring
from specc.pipeline import check_data, check_file, check_text

from .conftest import CASE_SPECS, TORCH_REFUSED

ROOT = Path(__file__).resolve().parent.parent

SPECS = sorted(p for p in (ROOT / "specs").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
CASES = ROOT / "tests" / "cases"
TARGETS = {"keras": "keras.py", "pytorch": "pytorch.py"}
RUFF = Path(sys.executable).parent / "ruff"

HOSTILE = (
    'He said "hi" \'there\' """triple""" \'\'\'single\'\'\' \\ back\\slash \\n \\x00 end"\n'
    "line two\r\nline three\twith tab \x00 nul \x0b\x0c \u2028 sep \u0085 nel é ✓\n"
    "__import__('os').system('x') {{ 7*7 }} {% for i in x %}{% endfor %} {# c #}\n"
    '    indented"""; import os; os.system("x"); """\n'
    '"'
)


def _load(path: Path):
    result = check_file(path)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def _spec(layers, inputs=None, name="zoo", description="", outputs=None):
    data = {"version": 1, "name": name, "description": description, "layers": layers}
    data["inputs"] = inputs or [{"name": "image", "shape": [8, 8, 3]}]
    if outputs:
        data["outputs"] = outputs
    result = check_data(data, file="zoo.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.model


def test_same_spec_same_bytes_and_no_paths_or_versions(tmp_path):
    spec = SPECS[0]
    copy = tmp_path / "deep" / "dir"
    copy.mkdir(parents=True)
    (copy / spec.name).write_text(spec.read_text())
    for target in TARGETS:
        a = generate(_load(spec), target)
        b = generate(_load(copy / spec.name), target)
        assert a == b
        assert str(tmp_path) not in a and str(ROOT) not in a
        assert "0.1.0" not in a and "20" + "2" not in a.split("\n", 1)[0]


# --------------------------------------------------------------------------- formatting


def _zoo_long_names():
    """A graph exercising every lowering with 64-character names (long lines)."""
    n = lambda tag: (tag + "_" + "n" * 64)[:64]  # noqa: E731
    layers = [
        {"type": "ZeroPadding2D", "name": n("pad"), "padding": [[0, 1], [1, 0]]},
        {"type": "Conv2D", "name": n("conv"), "filters": 4, "kernel_size": 2, "padding": "same"},
        {
            "type": "AveragePooling2D",
            "name": n("avg"),
            "pool_size": 2,
            "strides": 1,
            "padding": "same",
        },
        {"type": "MaxPooling2D", "name": n("max"), "pool_size": 2, "strides": 1, "padding": "same"},
        {"type": "Add", "name": n("add"), "inputs": [n("avg"), n("max"), n("conv")]},
        {"type": "Average", "name": n("mean"), "inputs": [n("avg"), n("max"), n("add")]},
        {"type": "Maximum", "name": n("maximum"), "inputs": [n("avg"), n("max"), n("mean")]},
        {"type": "Concatenate", "name": n("cat"), "inputs": [n("avg"), n("max"), n("maximum")]},
        {
            "type": "ReLU",
            "name": n("relu"),
            "max_value": 2.0,
            "negative_slope": 0.1,
            "threshold": 0.5,
        },
        {
            "type": "Conv2DTranspose",
            "name": n("up"),
            "filters": 2,
            "kernel_size": 3,
            "strides": 2,
            "padding": "same",
        },
        {
            "type": "SeparableConv2D",
            "name": n("sep"),
            "filters": 3,
            "kernel_size": 3,
            "padding": "same",
        },
        {"type": "Flatten", "name": n("flat")},
        {"type": "Dense", "name": n("out"), "units": 2},
    ]
    return _spec(layers, inputs=[{"name": n("image"), "shape": [7, 7, 3]}], name=n("model"))


def test_generated_code_passes_ruff(tmp_path):
    """Every bundled spec, every layer case and the zoo (long names) compile to code that
    ruff check and ruff format --check leave alone (the generator formats as ruff does)."""
    models = [_load(spec) for spec in (*SPECS, *CASE_SPECS)] + [_zoo_long_names()]
    models.append(_spec([{"type": "Dense", "units": 2}], description=HOSTILE, name="hostile"))
    files = []
    for k, model in enumerate(models):
        for target, filename in TARGETS.items():
            if "pytorch" in target and Path(model.file or "").name in TORCH_REFUSED:
                continue  # refused with located diagnostics (tests/test_keras_applications.py)
            path = tmp_path / f"m{k}_{filename}"
            path.write_text(generate(model, target))
            files.append(str(path))
    config = ["--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    check = subprocess.run([RUFF, "check", *config, *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [RUFF, "format", "--check", "--diff", *config, *files], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


# --------------------------------------------------------------------------- injection


def _calls(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            names.add(ast.unparse(node.func).split("(")[0])
    return names


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_hostile_description_and_file_name_stay_inert(target, tmp_path):
    data = {
        "version": 1,
        "name": "hostile",
        "description": HOSTILE,
        "inputs": [{"name": "x", "shape": [3]}],
        "layers": [{"type": "Dense", "units": 2}],
    }
    evil_file = 'evil"""\n__import__("os").system("x")#.json'
    result = check_text(json.dumps(data), format="json", file=evil_file)
    assert result.ok, [d.format() for d in result.diagnostics]
    assert result.model.description == HOSTILE
    code = generate(result.model, target)
    tree = ast.parse(code)
    # only: the docstring, imports, one def/class
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds[0] == "Expr" and set(kinds[1:]) <= {
        "Import",
        "ImportFrom",
        "FunctionDef",
        "ClassDef",
    }
    doc = ast.get_docstring(tree, clean=False)
    assert "__import__('os').system('x')" in doc and "{{ 7*7 }}" in doc
    for line in HOSTILE.replace("\r\n", "\n").split("\n"):
        assert line.strip().replace("\t", "\t") in doc.replace("\n", " ") or not line.strip()
    allowed = {"keras.Sequential", "keras.Input", "keras.layers.Dense", "super", "super().__init__"}
    allowed |= {"nn.Linear", "nn.init.uniform_", "nn.init.zeros_", "self.reset_parameters"}
    allowed |= {"self.dense"}
    assert _calls(tree) <= allowed, _calls(tree) - allowed
    assert not any(isinstance(n, ast.Attribute) and n.attr == "system" for n in ast.walk(tree))


def test_docstring_escapes_every_way_out():
    for text in [HOSTILE, '"', '""', '"""', "\\", "a\\", 'x"', "\x00", "\ud800"]:
        source = docstring(["head", text])
        tree = ast.parse(source)
        assert len(tree.body) == 1
        value = tree.body[0].value.value
        assert value.startswith("head\n")
        assert text.replace("\n", " ").strip()[:1] in value or not text.strip()


def test_names_that_clash_with_python_or_torch_are_renamed():
    clashes = ["class", "None", "self", "forward", "training", "keras", "F", "input", "x", "nn"]
    layers = [{"type": "Dense", "name": name, "units": 2} for name in clashes]
    layers += [{"type": "Concatenate", "name": "torch", "inputs": clashes}]
    for layer in layers[1:-1]:
        layer["inputs"] = ["class"]
    model = _spec(layers, inputs=[{"name": "lambda", "shape": [3]}], name="none")
    for target in TARGETS:
        code = generate(model, target)
        compile(code, target, "exec")  # valid Python
    code = generate(model, "pytorch")
    assert "class NoneModel(nn.Module):" in code
    assert "self.forward_ = nn.Linear(" in code and "self.training_ = nn.Linear(" in code
    assert "def forward(self, lambda_: torch.Tensor)" in code


def test_reserved_names_cover_keywords_and_module_attributes():
    import keyword

    assert set(keyword.kwlist) <= RESERVED
    assert {"forward", "training", "eval", "parameters", "state_dict"} <= NN_MODULE_ATTRIBUTES


# --------------------------------------------------------------------------- refusals


def test_unsupported_combinations_are_refused_with_locations():
    text = """version: 1
name: refused
inputs: [{name: x, shape: [4, 4, 3], dtype: int32}]
layers:
  - {type: BatchNormalization, name: bn, axis: 1}
  - {type: GroupNormalization, name: gn, groups: 1, center: false}
  - {type: LayerNormalization, name: ln, center: true, scale: false}
"""
    result = check_text(text, file="refused.yaml")
    assert result.ok
    generate(result.model, "keras")  # Keras expresses all of it
    with pytest.raises(CodegenError) as info:
        generate(result.model, "pytorch", result.source)
    lines = [d.format() for d in info.value.diagnostics]
    assert len(lines) == 4, lines
    assert lines[0].startswith(
        "refused.yaml:3:45: error: pytorch target: input 'x' has dtype int32"
    )
    assert lines[1].startswith("refused.yaml:5:48: error: layers[0] BatchNormalization 'bn'")
    assert "refused.yaml:6:" in lines[2] and "refused.yaml:7:" in lines[3]


# --------------------------------------------------------------------------- CLI


def test_cli_compile_stdout_file_and_errors(tmp_path):
    runner = CliRunner()
    spec = "specs/mnist_cnn.yaml"
    out = runner.invoke(app, ["compile", spec, "--target", "keras"])
    assert out.exit_code == 0 and out.stdout == generate(_load(ROOT / spec), "keras")
    target = tmp_path / "model.py"
    out = runner.invoke(app, ["compile", spec, "-t", "pytorch", "-o", str(target)])
    assert out.exit_code == 0 and out.stdout == ""
    assert target.read_text() == generate(_load(ROOT / spec), "pytorch")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nname: bad\ninputs: [{name: x, shape: [3, 4]}]\n"
        "layers: [{type: BatchNormalization, axis: 1}]\n"
    )
    refused = tmp_path / "refused.py"
    out = runner.invoke(app, ["compile", str(bad), "-t", "pytorch", "-o", str(refused)])
    assert out.exit_code == 1 and not refused.exists()
    assert "pytorch target" in out.stderr
    out = runner.invoke(app, ["compile", spec, "-t", "onnx"])
    assert out.exit_code == 2
    out = runner.invoke(app, ["compile", "missing.yaml", "-t", "keras"])
    assert out.exit_code == 2


def test_compile_imports_no_framework():
    code = (
        "import sys\n"
        "from specc.cli import main\n"
        "sys.argv = ['specc', 'compile', 'specs/inception_block.yaml', '-t', 'pytorch']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "class InceptionNet(nn.Module)" in done.stdout


@pytest.mark.slow
def test_module_attribute_list_matches_installed_torch():
    nn = pytest.importorskip("torch.nn")
    public = {name for name in dir(nn.Module) if not name.startswith("_")}
    public |= {"training"}
    assert public <= NN_MODULE_ATTRIBUTES, sorted(public - NN_MODULE_ATTRIBUTES)
