"""Faults found by hunting as a hostile or unlucky user would (no issue named them).

Each test is the reproducer of one fault, failing before its fix: no Python traceback, the
documented exit code (0 ok, 1 invalid spec, 2 usage / I/O, 3 the run cannot proceed), a
one-line message saying where and what, and nothing of the user's lost or half-written.
"""

from __future__ import annotations

import re
import shutil
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specc.cli import app

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "specs" / "mnist_cnn.yaml"


def cli(*args):
    """Run the CLI in process; a Python exception escaping it fails the test with its trace."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"specc {' '.join(map(str, args))} raised:\n{trace}")
    return result


def located(result, path: Path, line: int) -> str:
    """The first error line of ``result`` (asserting it is located at ``path:line:``)."""
    first = result.stderr.splitlines()[0]
    assert re.match(rf"{re.escape(str(path))}:{line}:\d+: error: ", first), result.stderr
    return first


# ------------------------------------------------------------ blocks: values that are null

BLOCK = """version: 1
name: m
inputs: [{{name: x, shape: [8, 8, 3]}}]
blocks:
  b:
    params: {{f: int}}
    layers:
      - {{type: Conv2D, name: $(name)_c, filters: $f, kernel_size: 1{inner}}}
      - {{type: Conv2D, name: $(name)_d, filters: 2, kernel_size: 1}}
layers:
  - {{type: b, name: blk, f: {f}{outer}}}
  - {{type: Flatten}}
  - {{type: Dense, units: 2}}
"""


def test_null_block_argument_is_an_error_not_a_vanished_instance(tmp_path):
    # was: exit 0 and the instance (both its layers) silently missing from the model
    spec = tmp_path / "spec.yaml"
    spec.write_text(BLOCK.format(f="null", inner="", outer=""))
    result = cli("summary", spec)
    assert result.exit_code == 1
    first = located(result, spec, 11)
    assert "parameter 'f' of block 'b' is int, got 'null'" in first
    assert "blk_c" not in result.stdout


@pytest.mark.parametrize(
    ("inner", "outer", "line", "shown"),
    [
        (", if: null", "", 8, "null"),  # was: the whole instance silently dropped
        ("", ", if: null", 11, "null"),  # was: the instance silently dropped
        (", if: maybe", "", 8, "maybe"),  # was: a string taken as true
        ("", ", if: 0.5", 11, "0.5"),  # was: a float taken as true
        (", if: [0]", "", 8, "[0]"),  # was: a list taken as true
    ],
)
def test_if_must_be_a_bool_or_an_integer(tmp_path, inner, outer, line, shown):
    spec = tmp_path / "spec.yaml"
    spec.write_text(BLOCK.format(f="3", inner=inner, outer=outer))
    result = cli("validate", spec)
    assert result.exit_code == 1
    first = located(result, spec, line)
    assert f"'if' must be a bool or an integer, got '{shown}'" in first


@pytest.mark.parametrize(("inner", "outer"), [(", if: $(f - 3)", ""), ("", ", if: false")])
def test_if_still_skips_on_zero_and_false(tmp_path, inner, outer):
    spec = tmp_path / "spec.yaml"
    spec.write_text(BLOCK.format(f="3", inner=inner, outer=outer))
    result = cli("summary", spec, "--format", "json")
    assert result.exit_code == 0, result.stderr
    names = [row["name"] for row in __import__("json").loads(result.stdout)["layers"]]
    # if: $(f - 3) with f=3 skips blk_c only; if: false on the instance skips both its layers
    assert names == (["blk_d", "flatten", "dense"] if inner else ["flatten", "dense"])


# ------------------------------------------------------------ -o naming an input file


@pytest.mark.parametrize(
    "command",
    [
        ["compile", "{spec}", "-t", "keras", "-o", "{out}"],
        ["compile", "{spec}", "-t", "pytorch", "-o", "{out}"],
        ["compile", "{spec}", "-t", "onnx-text", "-o", "{out}"],
        ["plot", "{spec}", "-f", "dot", "-o", "{out}"],
        ["plot", "{spec}", "-f", "mermaid", "-o", "{out}"],
    ],
    ids=lambda c: "-".join(c[:1] + c[2:4]),
)
@pytest.mark.parametrize("how", ["same", "symlink", "dotdot"])
def test_output_that_is_the_input_spec_is_refused(tmp_path, command, how):
    # was: exit 0, the spec replaced by the generated code (the user's spec lost)
    spec = tmp_path / "spec.yaml"
    shutil.copy(MNIST, spec)
    out = {
        "same": spec,
        "symlink": tmp_path / "model.py",
        "dotdot": tmp_path / "sub" / ".." / "spec.yaml",
    }[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        out.symlink_to(spec)
    result = cli(*[a.format(spec=spec, out=out) for a in command])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: refusing to write {out}: it is the spec being "
        f"{'compiled' if command[0] == 'compile' else 'drawn'}; write somewhere else"
    )
    assert spec.read_bytes() == MNIST.read_bytes()


def test_compile_output_that_is_the_weights_file_is_refused(tmp_path):
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"mine")
    result = cli("compile", MNIST, "-t", "onnx", "--weights", weights, "-o", weights)
    assert result.exit_code == 2
    assert "it is the --weights file" in result.stderr
    assert weights.read_bytes() == b"mine"


def test_import_output_that_is_the_source_is_refused(tmp_path):
    # was: exit 0, the Keras config replaced by the spec
    config = (
        '{"class_name": "Sequential", "config": {"name": "m", "layers": ['
        '{"class_name": "InputLayer", "config": {"batch_shape": [null, 4]}}, '
        '{"class_name": "Dense", "config": {"units": 3}}]}}'
    )
    source = tmp_path / "model.json"
    source.write_text(config)
    assert cli("import", source).exit_code == 0  # an importable model
    result = cli("import", source, "-o", source)
    assert result.exit_code == 2
    assert "it is the model being imported" in result.stderr
    assert source.read_text() == config
    result = cli("import", source, "-o", tmp_path / "s.yaml", "--weights-out", tmp_path / "s.yaml")
    assert result.exit_code == 2
    assert "it is also the -o spec file" in result.stderr


# ------------------------------------------------------------ non-finite numbers

FLOATS = """version: 1
name: m
inputs: [{{name: x, shape: [8, 8, 3]}}]
layers:
  - {layer}
  - {{type: Flatten}}
  - {{type: Dense, units: 2}}
training:
  dataset: {{type: npz, path: d.npz}}
  optimizer: {{type: adam, learning_rate: {lr}}}
"""


@pytest.mark.parametrize(
    ("layer", "lr", "field"),
    [
        ("{type: LeakyReLU, negative_slope: .inf}", "0.01", "layers[0] LeakyReLU: negative_slope"),
        ("{type: ReLU, max_value: .inf}", "0.01", "layers[0] ReLU: max_value"),
        ("{type: Rescaling, scale: .nan}", "0.01", "layers[0] Rescaling: scale"),
        ("{type: Rescaling, scale: 1.0, offset: -.inf}", "0.01", "layers[0] Rescaling: offset"),
        (
            "{type: Dense, units: 3, kernel_initializer: {type: RandomNormal, stddev: .inf}}",
            "0.01",
            "layers[0] Dense: kernel_initializer.stddev",
        ),
        (
            "{type: Dense, units: 3, bias_initializer: {type: Constant, value: .nan}}",
            "0.01",
            "layers[0] Dense: bias_initializer.value",
        ),
        ("{type: ReLU}", ".inf", "training.optimizer.learning_rate"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "keras", "pytorch"])
def test_non_finite_numbers_are_refused_where_written(tmp_path, layer, lr, field, command):
    # was: validate said ok, then compile died in pyformat.py with
    # "ValueError: cannot write a non-finite number: inf" (a traceback, exit 1)
    spec = tmp_path / "spec.yaml"
    spec.write_text(FLOATS.format(layer=layer, lr=lr))
    args = ["validate", spec] if command == "validate" else ["compile", spec, "-t", command]
    if command != "validate" and "training" in field:
        args.append("--with-training")
    result = cli(*args)
    assert result.exit_code == 1
    first = located(result, spec, 10 if "training" in field else 5)
    assert f"{field} must be a finite number, got " in first


# ------------------------------------------------------------ seeds NumPy cannot take

DIGITS = ROOT / "specs" / "digits_cnn.yaml"


@pytest.mark.parametrize("seed", ["-5", "4294967296", "100000000000000000000"])
def test_spec_seed_outside_numpy_range_is_an_error_at_the_value(tmp_path, seed):
    # was: validate ok, then train died in NumPy ("expected non-negative integer") or torch
    # ("Overflow when unpacking long long") with a traceback
    spec = tmp_path / "spec.yaml"
    spec.write_text(DIGITS.read_text().replace("seed: 0", f"seed: {seed}"))
    result = cli("validate", spec)
    assert result.exit_code == 1
    first = located(result, spec, 23)
    assert (
        f"training.seed must be {'>= 0' if seed == '-5' else '<= 4294967295'}, got {seed}" in first
    )


@pytest.mark.parametrize(
    "command",
    [
        ["compile", DIGITS, "-t", "onnx", "-o", "{tmp}/m.onnx", "--seed", "-1"],
        ["crosscheck", DIGITS, "--backends", "pytorch,onnx", "--seed", "-1"],
        ["train", DIGITS, "-b", "pytorch", "-o", "{tmp}/run", "--seed", "4294967296"],
    ],
    ids=["compile", "crosscheck", "train"],
)
def test_cli_seed_outside_numpy_range_is_a_usage_error(tmp_path, command):
    # was: a NumPy ValueError traceback after the model was built
    result = cli(*[str(a).format(tmp=tmp_path) for a in command])
    assert result.exit_code == 2
    assert "Invalid value for '--seed'" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_keras_training_with_a_seed_above_4_million(tmp_path):
    # the loop reseeds Keras with seed * 1000 + epoch: above 2**32 for seed 5,000,000, which
    # NumPy's legacy seeding refused ("Seed must be between 0 and 2**32 - 1", a traceback)
    pytest.importorskip("keras")
    result = cli(
        "train", DIGITS, "-b", "keras", "--epochs", "1", "--limit", "64", "--seed", "5000000",
        "-o", tmp_path / "run", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run" / "metrics.json").is_file()


# ------------------------------------------------------------ crosscheck --batch-size


def test_crosscheck_batch_that_cannot_fit_is_refused_before_allocating(tmp_path):
    # was: numpy._core._exceptions._ArrayMemoryError (477 GiB of inputs), a traceback
    result = cli("crosscheck", DIGITS, "--backends", "pytorch,onnx", "--batch", "1000000000")
    assert result.exit_code == 2
    # digits_cnn, one sample: 8x8x1 = 64 input values and 8x8x16 + 4x4x16 + 4x4x32 + 32 + 32
    # + 10 = 1,866 layer outputs; 1e9 samples x 1,930 values x 8 bytes x 2 backends
    # = 3.088e13 bytes = 28.09 TB (binary units, as the summary's sizes)
    assert result.stderr.startswith("error: --batch-size 1,000,000,000 needs about 28.09 TB ")
    assert "above the 16.00 GB limit; use a smaller --batch-size" in result.stderr


# ------------------------------------------------------------ import of malformed files

DENSE = {"class_name": "Dense", "config": {"units": 3}}
INPUT4 = {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}}


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"class_name": "Sequential", "config": {"layers": 5}}, "TypeError"),
        ({"class_name": "Sequential", "config": {"layers": [5]}}, "AttributeError"),
        (
            {
                "class_name": "Sequential",
                "config": {"layers": [{**INPUT4, "config": {"batch_shape": 5}}, DENSE]},
            },
            "TypeError",
        ),
        (
            {"class_name": "Functional", "config": {"layers": [DENSE], "input_layers": 3}},
            "TypeError",
        ),
        (
            {
                "class_name": "Functional",
                "config": {
                    "layers": [
                        {**INPUT4, "name": "x", "inbound_nodes": []},
                        {**DENSE, "name": "d", "inbound_nodes": 7},
                    ],
                    "input_layers": [["x", 0, 0]],
                    "output_layers": [["d", 0, 0]],
                },
            },
            "TypeError",
        ),
    ],
    ids=["layers-int", "layer-int", "batch_shape-int", "input_layers-int", "inbound_nodes-int"],
)
def test_import_of_a_keras_config_with_a_wrong_structure(tmp_path, config, reason):
    # was: a TypeError/AttributeError traceback from the importer's walk (exit 1)
    source = tmp_path / "model.json"
    source.write_text(__import__("json").dumps(config))
    result = cli("import", source)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{source}: cannot import:",
        result.stderr.splitlines()[1],
    ]
    assert result.stderr.splitlines()[1].startswith(
        f"  - {source}: not a Keras model config: unexpected structure ({reason}: "
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "deep.json",
            "[" * 100_000 + "]" * 100_000,
            "cannot read the model: JSON nested too deeply",
        ),
        ("empty.onnx", "", "empty file"),  # was: exit 1 "the imported spec is invalid" x2
        ("empty.json", "", "empty file"),
        ("folder.keras", None, "is a folder, not a model file"),  # was: "no such file"
    ],
)
def test_import_of_files_that_are_no_model(tmp_path, name, content, message):
    source = tmp_path / name
    if content is None:
        source.mkdir()
    else:
        source.write_text(content)
    result = cli("import", source)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"{source}: cannot import:", f"  - {source}: {message}"]


# ------------------------------------------------------------ train: a dataset refused


def _mnist_with_truncated_test_images(tmp_path, data_dir) -> Path:
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for item in (data_dir / "mnist").iterdir():
        shutil.copy(item, root / "mnist" / item.name)
    target = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:100_000])
    return root


def test_train_refused_by_its_dataset_leaves_no_run_folder(tmp_path, data_dir):
    # was: exit 3 but runs/<name> left behind with run.json saying "status": "running"
    pytest.importorskip("torch")
    data = _mnist_with_truncated_test_images(tmp_path, data_dir)
    out = tmp_path / "run"
    result = cli(
        "train", ROOT / "specs" / "mnist_mlp.json", "-b", "pytorch", "--epochs", "1",
        "--offline", "--data-dir", data, "-o", out, "-q",
    )  # fmt: skip
    assert result.exit_code == 3
    assert result.stderr.startswith(
        f"error: checksum mismatch for {data}/mnist/t10k-images-idx3-ubyte.gz: "
    )
    assert "(100,000 bytes); the file is truncated or corrupted" in result.stderr
    assert not out.exists()


# ------------------------------------------------------------ predict / evaluate: run folders

RUN_JSON = {
    "spec": "specs/mnist_mlp.json",
    "model": "mnist_mlp",
    "backend": "pytorch",
    "dataset": "mnist",
    "status": "finished",
    "data": {
        "limit": 200,
        "input_shape": [28, 28],
        "sample_shape": [28, 28, 1],
        "class_names": [str(i) for i in range(10)],
        "training": {"dataset": "mnist", "loss": "sparse_categorical_crossentropy"},
    },
}
NORMALIZATION = {"mode": "unit", "scale": 255.0, "validation": "test"}


def _run_folder(tmp_path, run=RUN_JSON, normalization=NORMALIZATION, metrics=None) -> Path:
    """A run folder as `specc train` writes its records (no model: every case below is
    refused before one is loaded, so no framework is needed)."""
    import json

    folder = tmp_path / "run"
    folder.mkdir()
    for name, data in (("run.json", run), ("normalization.json", normalization)):
        (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))
    (folder / "metrics.json").write_text(metrics or '{"test": {"loss": 1.0, "accuracy": 0.5}}')
    manifest = {
        "files": [".specc.lock", "run.json", "normalization.json", "metrics.json", "model.pt"]
    }
    (folder / ".specc-manifest.json").write_text(json.dumps(manifest))
    return folder


def _inputs(tmp_path, x=None, **arrays) -> Path:
    np = pytest.importorskip("numpy")
    path = tmp_path / "inputs.npz"
    np.savez(path, x=np.zeros((3, 784), np.float32) if x is None else x, **arrays)
    return path


def _with(**data):
    return {**RUN_JSON, "data": {**RUN_JSON["data"], **data}}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        # was: AttributeError: 'list' object has no attribute 'get'
        ({"run": "[1]"}, "run.json: expected a JSON object, got list"),
        # was: pydantic ValidationError traceback (predict); evaluate blamed metrics.json
        ({"run": _with(training=5)}, "run.json: not as specc writes it (Input should be"),
        # was: TypeError from pathlib (evaluate)
        ({"run": {**RUN_JSON, "spec": 5}}, "run.json: not as specc writes it ('model' and 'spec'"),
        ({"run": _with(input_shape=[0, "a"])}, "a shape must be positive integers"),
        # was: exit 0, every input divided by NaN (or 1.0 for '{}'): predictions that mean nothing
        ({"normalization": {**NORMALIZATION, "scale": float("nan")}}, "scale must be finite"),
        ({"normalization": {}}, "normalization.json: no normalization 'mode'"),
        ({"normalization": {"mode": "unit", "scale": 0}}, "scale must be > 0, got 0"),
        ({"normalization": {"mode": "standardize", "scale": 1.0}}, "'standardize' has no 'mean'"),
    ],
    ids=[
        "run-list",
        "training-int",
        "spec-int",
        "shape",
        "scale-nan",
        "norm-empty",
        "scale-0",
        "std",
    ],
)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_damaged_run_record_is_one_line_naming_the_file(tmp_path, files, message, command):
    run = _run_folder(tmp_path, **files)
    args = [command, run] + ([_inputs(tmp_path)] if command == "predict" else [])
    result = cli(*args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {run}/") and message in result.stderr


def test_evaluate_refuses_a_metrics_json_that_is_no_record(tmp_path):
    # was: AttributeError: 'list' object has no attribute 'get', after the whole evaluation
    run = _run_folder(tmp_path, metrics="[]")
    result = cli("evaluate", run)
    assert result.exit_code == 2
    assert result.stderr == f"error: {run}/metrics.json: expected a JSON object, got list\n"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        # was: IndexError: list index out of range (label 99 of 10 classes)
        ({"y": [3, 99, 0]}, "'y' holds the class index 99; the run's classes are 0 to 9"),
        ({"y": [3, -1, 0]}, "'y' holds the class index -1"),
        ({"y": [3, 0.5, 0]}, "'y' must hold class indices (whole numbers)"),  # was: 0.5 -> 0
        # was: exit 0 with "nan" confidences (3 samples x 784 values)
        ({"x": [[float("nan")] * 784] * 3}, "holds 2,352 NaN/Inf values"),
    ],
    ids=["label-99", "label-negative", "label-fraction", "nan-inputs"],
)
def test_predict_refuses_inputs_that_mean_nothing(tmp_path, arrays, message):
    np = pytest.importorskip("numpy")
    run = _run_folder(tmp_path)
    x = np.asarray(arrays.pop("x"), np.float32) if "x" in arrays else None
    inputs = _inputs(tmp_path, x, **{k: np.asarray(v) for k, v in arrays.items()})
    result = cli("predict", run, inputs)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {inputs}: ") and message in result.stderr


@pytest.mark.parametrize("name", ["run.json", "metrics.json", "model.pt"])
def test_predict_output_into_the_runs_own_files_is_refused(tmp_path, name):
    # was: `predict RUN x.npy -o RUN/run.json` wrote the predictions over the run's record;
    # every later predict/evaluate said the run "was written by an older specc"
    run = _run_folder(tmp_path)
    target = run / name
    target.write_bytes(b"the run's") if name == "model.pt" else None
    before = target.read_bytes()
    result = cli("predict", run, _inputs(tmp_path), "-o", target)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: refusing to write {target}: it is a file of the run predict uses ({run}); "
        "write somewhere else\n"
    )
    assert target.read_bytes() == before


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("trained") / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(DIGITS),
            "-b",
            "pytorch",
            "--epochs",
            "1",
            "--limit",
            "64",
            "-o",
            str(folder),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "content", "engine", "reason"),
    [
        # was: _pickle.UnpicklingError traceback (a paragraph from torch.load)
        ("model.pt", b"garbage", "backend", "cannot be loaded (Weights only load failed."),
        # was: SyntaxError / AttributeError tracebacks
        ("model_pytorch.py", b"garbage(\n", "backend", "cannot be loaded ('(' was never closed"),
        ("model_pytorch.py", b"x = 1\n", "backend", "has no attribute 'DigitsCnn'"),
        # was: onnxruntime's InvalidProtobuf traceback
        ("model.onnx", b"garbage", "onnx", "cannot be loaded ([ONNXRuntimeError]"),
    ],
    ids=["model.pt", "code-syntax", "code-no-class", "model.onnx"],
)
def test_damaged_model_file_of_a_run(tmp_path, trained_run, name, content, engine, reason):
    if engine == "onnx":
        pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / name).write_bytes(content)
    inputs = tmp_path / "x.npy"
    np = pytest.importorskip("numpy")
    np.save(inputs, np.zeros((2, 8, 8, 1), np.float32))
    result = cli("predict", run, inputs, "--engine", engine)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {run / name}: ") and reason in result.stderr
    assert result.stderr.rstrip().endswith("; the run folder is damaged")


# ------------------------------------------------------------ a closed stdout


def _closed_stdout(*args):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "specc", *map(str, args)],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),  # `specc ... >&-`: Python starts with sys.stdout None
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "args",
    [("summary", MNIST), ("validate", MNIST), ("compile", MNIST, "-t", "pytorch"), ("schema",)],
    ids=["summary", "validate", "compile", "schema"],
)
def test_closed_stdout_is_one_line_and_exit_2(args):
    # was: exit 1 with "AttributeError: 'NoneType' object has no attribute 'flush'"
    result = _closed_stdout(*args)
    assert result.returncode == 2
    assert result.stderr == "error: cannot write stdout: bad file descriptor\n"


def test_closed_stdout_does_not_matter_when_writing_to_a_file(tmp_path):
    result = _closed_stdout("compile", MNIST, "-t", "keras", "-o", tmp_path / "m.py")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"wrote {tmp_path / 'm.py'} (keras code, ")
    assert (tmp_path / "m.py").read_text().startswith('"""Keras model')


# ------------------------------------------------------------ the language server's exit


def test_language_server_exits_0_when_the_client_says_exit():
    # was: exit 1 with "ValueError: I/O operation on closed file" (the final flush of a
    # stdout the server had closed) after every editor session
    import json
    import subprocess
    import sys

    pytest.importorskip("pygls")
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    stream = b"".join(
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in (json.dumps(m).encode() for m in messages)
    )
    result = subprocess.run(
        [sys.executable, "-m", "specc", "lsp"], input=stream, capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"Traceback" not in result.stderr
    assert b'"id": 2' in result.stdout or b'"id":2' in result.stdout  # shutdown answered


# ------------------------------------------------------------ endless inputs


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_an_endless_spec_file_is_refused_after_the_size_limit(device):
    # was: read until memory ran out (a hang, then the OOM killer)
    result = cli("validate", device)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"{device}:1:1: error: file is more than 4,194,304 bytes; specs larger than "
        "4,194,304 bytes are refused"
    )


def test_a_spec_from_a_pipe_still_validates():
    import subprocess
    import sys

    command = f'{sys.executable} -m specc validate <(cat "{MNIST}")'
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(": ok (mnist_cnn: 7 layers, 104,202 params)\n")


def test_import_of_a_device_says_what_it_is(tmp_path):
    link = tmp_path / "model.onnx"
    link.symlink_to("/dev/zero")
    result = cli("import", link)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"  - {link}: not a regular file"  # was: no such file


# ------------------------------------------------------------ report of damaged runs


@pytest.mark.parametrize(
    ("files", "message"),
    [
        # was: AttributeError: 'list' object has no attribute 'get'
        ({"run.json": "[1]"}, "run.json: expected a JSON object, got list"),
        # was: TypeError: 'int' object is not iterable (in the overlay / the curves)
        (
            {"history.json": "[1, 2]"},
            "history.json: expected a list of epoch records, got a list of int",
        ),
        ({"metrics.json": '"x"'}, "metrics.json: expected a JSON object, got str"),
        ({"metrics.json": "{broken"}, "metrics.json: not valid JSON"),
    ],
    ids=["run.json", "history.json", "metrics.json", "metrics-broken"],
)
def test_report_of_a_damaged_run_is_one_line(tmp_path, files, message):
    run = _run_folder(tmp_path)
    for name, text in files.items():
        (run / name).write_text(text)
    result = cli("report", run, "-o", tmp_path / "plots")
    assert result.exit_code == 2
    assert result.stderr == f"error: {run}/{message}" + result.stderr.split(message, 1)[1]
    assert len(result.stderr.splitlines()) == 1


def test_report_of_metrics_that_cannot_be_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    run = _run_folder(tmp_path, metrics='{"confusion_matrix": "x", "test": 5}')
    result = cli("report", run, "-o", tmp_path / "plots")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {run}: cannot draw the plots from its files (")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        # was: AttributeError: 'list' object has no attribute 'get'
        ("run.json", "[1]", "run.json: expected a JSON object, got list"),
        # was: json.decoder.JSONDecodeError traceback
        ("run.json", "{broken", "run.json: cannot read: Expecting property name"),
        # was: exit 0, the test set scaled by NaN (or not at all for '{}') before predicting
        ("normalization.json", "{}", "normalization.json: no normalization 'mode'"),
    ],
    ids=["run.json-list", "run.json-broken", "normalization-empty"],
)
def test_crosscheck_run_with_damaged_records(tmp_path, name, content, message):
    for module in ("numpy", "torch", "onnx", "onnxruntime"):  # what the backends need
        pytest.importorskip(module)
    from specc import weights as W
    from specc.pipeline import check_file

    run = _run_folder(tmp_path)
    W.save(run / "weights.npz", W.random_weights(check_file(DIGITS).model, 0))
    (run / name).write_text(content)
    result = cli("crosscheck", DIGITS, "--backends", "pytorch,onnx", "--run", run)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: {run}/{message}")
    assert len(result.stderr.splitlines()) == 1


# ------------------------------------------------------------ blocks nested very deep


def _nested_blocks(levels: int) -> str:
    lines = ["version: 1", "name: m", "inputs: [{name: x, shape: [4]}]", "blocks:"]
    for i in range(levels):
        inner = f"{{type: b{i + 1}}}" if i < levels - 1 else "{type: Dense, units: 2}"
        lines += [f"  b{i}:", "    layers:", f"      - {inner}"]
    return "\n".join([*lines, "layers:", "  - {type: b0}", ""])


def test_blocks_nested_too_deep_are_an_error_not_a_recursion_error(tmp_path):
    # was: RecursionError: maximum recursion depth exceeded (1,500 levels), a traceback
    spec = tmp_path / "spec.yaml"
    spec.write_text(_nested_blocks(1500))
    result = cli("validate", spec)
    assert result.exit_code == 1
    first = located(result, spec, 7 + 3 * 99)  # the entry {type: b100} of block b99
    assert "blocks nested more than 100 deep (b0 -> b1 -> b2 -> ... -> b100)" in first


def test_blocks_nested_100_deep_still_validate(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(_nested_blocks(100))
    result = cli("validate", spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{spec}: ok (m: 1 layers, 10 params)\n"  # Dense 4 -> 2: 4*2 + 2


# ------------------------------------------------------------ train's counts


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        # was: pydantic ValidationError traceback from run.py (the override validated late)
        ("--batch-size", "1000000000000000", "Invalid value for '--batch-size'"),
        ("--epochs", "100000000000000000000", "Invalid value for '--epochs'"),
        # was: a fork of 100,000 Python processes, each importing torch
        ("--nproc", "100000", "error: --nproc 100,000 would start 100,000 processes"),
    ],
    ids=["batch-size", "epochs", "nproc"],
)
def test_train_counts_beyond_reason_are_usage_errors(tmp_path, option, value, message):
    result = cli("train", DIGITS, "-b", "pytorch", option, value, "-o", tmp_path / "run", "-q")
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        # PIL's own limit (178,956,970 pixels): was a DecompressionBombError traceback
        (b"P5\n20000 20000\n255\n", "refusing the image: Image size (400000000 pixels) exceeds"),
        # above specc's 8192x8192 for images (as the image-folder dataset): was decoded in full
        (b"P5\n9000 9000\n255\n", "refusing the image: 9000x9000 pixels is more than 67,108,864"),
    ],
    ids=["pil-limit", "specc-limit"],
)
def test_predict_refuses_an_image_bomb_from_its_header(tmp_path, header, message):
    pytest.importorskip("PIL")
    run = _run_folder(tmp_path)
    image = tmp_path / "bomb.pgm"
    image.write_bytes(header)  # no pixels at all: refused before any are read
    result = cli("predict", run, image)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {image}: {message}")


# ------------------------------------------------------------ view


def test_view_of_an_invalid_spec_prints_its_diagnostics_once(tmp_path):
    # was: "error: SPEC:1:1: error: no such file" (the prefix twice)
    pytest.importorskip("netron")  # checked first
    result = cli("view", tmp_path / "nope.yaml", "--no-browse")
    assert result.exit_code == 2
    assert result.stderr == f"{tmp_path / 'nope.yaml'}:1:1: error: no such file\n"


def test_view_of_a_device_is_refused_not_read_forever(tmp_path):
    pytest.importorskip("netron")  # checked first
    link = tmp_path / "model.onnx"
    link.symlink_to("/dev/zero")
    result = cli("view", link, "--no-browse")  # was: read /dev/zero until memory ran out
    assert result.exit_code == 2
    assert result.stderr == f"error: {link}: not a regular file\n"


def test_import_of_an_onnx_node_no_exporter_writes_is_listed(tmp_path):
    # was: pydantic ValidationError traceback (a Conv whose weight is 1-d)
    onnx = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weight = numpy_helper.from_array(np.ones((5,), np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])
    graph = helper.make_graph([conv], "g", [x], [y], initializer=[weight])
    source = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), source)
    result = cli("import", source)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{source}: cannot import:",
        "  - node 'conv' (Conv): cannot be converted (kernel_size: Tuple should have at most 1 "
        "item after validation, not 2)",
    ]


def test_dash_for_stdin_says_how_to_read_stdin():
    result = cli("validate", "-")
    assert result.exit_code == 2
    assert (
        result.stderr
        == "-:1:1: error: no such file\n  hint: to read a spec from stdin, give /dev/stdin\n"
    )


# ------------------------------------------------------------ NaN in JSON outputs


def _strict_json(text: str):
    import json

    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_run_records_never_hold_nan(tmp_path):
    # was: metrics.json of a diverged run held NaN (json.dumps's default= never sees floats)
    from specc.runner.predict import compare_metrics
    from specc.runner.report import run_title, write_json

    nan = float("nan")
    write_json(
        tmp_path / "metrics.json", {"test": {"loss": nan, "accuracy": 0.1}, "x": [float("inf")]}
    )
    recorded = _strict_json((tmp_path / "metrics.json").read_text())
    assert recorded == {"test": {"loss": None, "accuracy": 0.1}, "x": [None]}
    # what reads it back: evaluate's comparison and report's title
    assert compare_metrics({"test": {"loss": nan, "accuracy": 0.1}}, recorded) == []
    assert compare_metrics({"test": {"loss": 0.5, "accuracy": 0.1}}, recorded) == ["loss"]
    assert run_title({"model": "m"}, {"test": {"loss": None}}) == "m · ? · ? · test loss nan"


@pytest.mark.slow
def test_predict_json_of_a_diverged_model_is_valid_json(tmp_path, trained_run):
    # was: "confidence": NaN in --format json (strict JSON readers refuse it), no warning
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    state = torch.load(run / "model.pt", weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) for k, v in state.items()}, run / "model.pt")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((2, 8, 8, 1), np.float32))
    result = cli("predict", run, inputs, "-f", "json")
    assert result.exit_code == 0, result.stderr
    data = _strict_json(result.stdout)
    assert [row["confidence"] for row in data["predictions"]] == [None, None]
    assert data["nonfinite_outputs"] == 2
    assert result.stderr.startswith("warning: the run's model gave NaN/Inf outputs for 2 of 2")


# ------------------------------------------------------------ weights files that lie


def _lying_weights(path: Path) -> None:
    """An .npz whose member header claims 200000 x 200000 float32 (149 GiB), 1,000 bytes held."""
    import io
    import zipfile

    np = pytest.importorskip("numpy")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (200000, 200000)}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conv2d/kernel.npy", header.getvalue() + b"\0" * 1000)


def test_weights_whose_header_lies_are_refused_before_allocating(tmp_path):
    # was: numpy's _ArrayMemoryError traceback ("Unable to allocate 149. GiB"), or with a
    # smaller lie an allocation that fits and thrashes
    pytest.importorskip("onnx")
    weights = tmp_path / "w.npz"
    _lying_weights(weights)
    result = cli("compile", DIGITS, "-t", "onnx", "-o", tmp_path / "m.onnx", "--weights", weights)
    assert result.exit_code == 2
    assert result.stderr == (
        f"{weights}: cannot read weights: {weights}: conv2d/kernel declares shape "
        "(200000, 200000) (149.0 GiB) but holds 1,000 bytes: truncated or corrupted\n"
    )
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_predict_inputs_whose_header_lies_are_refused(tmp_path, suffix):
    # was: numpy's _ArrayMemoryError traceback ("Unable to allocate 149. GiB")
    import io
    import zipfile

    np = pytest.importorskip("numpy")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (200000, 200000)}
    )
    data = header.getvalue() + b"\0" * 1000
    inputs = tmp_path / f"x{suffix}"
    if suffix == ".npz":
        with zipfile.ZipFile(inputs, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("x.npy", data)
    else:
        inputs.write_bytes(data)
    result = cli("predict", _run_folder(tmp_path), inputs)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {inputs}: ")
    assert "declares shape (200000, 200000)" in result.stderr
    assert "truncated or corrupted" in result.stderr


def test_predict_of_no_samples_says_so(tmp_path):
    np = pytest.importorskip("numpy")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((0, 784), np.float32))
    result = cli("predict", _run_folder(tmp_path), inputs)  # was: exit 0 and an empty table
    assert result.exit_code == 2
    assert result.stderr == f"error: {inputs}: holds no samples\n"


def test_report_of_a_truncated_test_predictions_file(tmp_path):
    # was: zipfile.BadZipFile traceback
    pytest.importorskip("numpy")
    run = _run_folder(tmp_path)
    (run / "test_predictions.npz").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    result = cli("report", run, "-o", tmp_path / "plots")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {run}: cannot draw the plots from its files (ValueError: "
        f"{run}/test_predictions.npz: cannot read ("
    )


# ------------------------------------------------------------ long file names


@pytest.mark.parametrize("stem", ["a" * 250, "日" * 83], ids=["ascii-253", "utf8-252-bytes"])
def test_output_with_a_name_near_the_255_byte_limit_is_written(tmp_path, stem):
    # was: "cannot write ...: file name too long": the temporary file beside it is named
    # ".<name>.<random>.tmp", 15 bytes more than the name the user gave (which fits)
    out = tmp_path / f"{stem}.py"
    assert len(out.name.encode()) <= 255
    result = cli("compile", MNIST, "-t", "keras", "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    assert out.read_text().startswith('"""Keras model')
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def _onnx_with_external_weight(path: Path, location: str) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    weight = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "48")):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], initializer=[weight]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path, save_as_external_data=False)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("/dev/zero", "should be a relative path, but it is an absolute path: /dev/zero"),
        ("../../../../etc/hostname", "points outside the directory"),
        ("nope.bin", "it is not regular file"),
    ],
    ids=["absolute", "outside", "missing"],
)
def test_import_of_onnx_external_data_that_cannot_be_read(tmp_path, location, reason):
    # was: onnx's checker ValidationError traceback
    source = tmp_path / "model.onnx"
    _onnx_with_external_weight(source, location)
    result = cli("import", source, "--weights-out", tmp_path / "w.npz")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"{source}: cannot import:"
    assert lines[1].startswith(f"  - {source}: initializer 'w': cannot read its data (")
    assert reason in lines[1]


def test_import_reads_external_data_beside_the_model_from_any_folder(tmp_path, monkeypatch):
    # was: read relative to the current folder, so a model with external data (as specc
    # writes above 2 GB) imported only from its own folder
    np = pytest.importorskip("numpy")
    source = tmp_path / "models" / "model.onnx"
    source.parent.mkdir()
    _onnx_with_external_weight(source, "w.bin")
    np.arange(12, dtype=np.float32).tofile(source.parent / "w.bin")
    monkeypatch.chdir(tmp_path)  # not the model's folder
    result = cli("import", source, "--weights-out", tmp_path / "w.npz", "-q")
    assert result.exit_code == 0, result.stderr
    from specc import weights as W

    (kernel,) = W.load(tmp_path / "w.npz").values()
    assert kernel.tolist() == np.arange(12, dtype=np.float32).reshape(4, 3).tolist()


def test_the_command_line_limits_are_the_spec_language_limits():
    """specc.cli keeps its own copies (importing the spec models would slow every start)."""
    import typing

    from specc import cli, spec
    from specc.layers.base import PositiveInt

    assert cli.MAX_SEED == spec.MAX_SEED
    limits = [m for m in typing.get_args(PositiveInt) if hasattr(m, "metadata")]
    upper = [getattr(c, "le", None) for m in limits for c in m.metadata]
    assert cli.MAX_COUNT in upper, upper
