"""Fault injection (issue 19): every case is a row of a table; each asserts that no Python
traceback escapes, the documented exit code, a one-line message naming what went wrong, and
that nothing the user had was deleted or changed.

Exit codes: 0 ok, 1 invalid spec, 2 usage / I/O (cannot write, folder in use, resume refused),
3 the run cannot proceed (dataset refused, run folder damaged). See docs/runs.md.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("torch")
from typer.testing import CliRunner  # noqa: E402

from specc.cli import app  # noqa: E402

SPEC = """
version: 1
name: tiny
inputs: [{name: x, shape: [4, 4, 1]}]
layers:
  - {type: Flatten}
  - {type: Dropout, rate: 0.2}
  - {type: Dense, units: 3, activation: softmax}
training:
  dataset: {type: npz, path: data.npz}
  optimizer: {type: adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  batch_size: 8
  epochs: 2
  validation_split: 0.0
  seed: 0
"""


def write_npz(path: Path, n_train=40, n_test=12, **replace) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 255, (n_train, 4, 4, 1)).astype(np.uint8),
        "y_train": rng.integers(0, 3, n_train).astype(np.int64),
        "x_test": rng.integers(0, 255, (n_test, 4, 4, 1)).astype(np.uint8),
        "y_test": rng.integers(0, 3, n_test).astype(np.int64),
    }
    arrays.update(replace)
    np.savez_compressed(path, **arrays)


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its kind and (for files) bytes, symlinks unresolved."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[p] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[p] = ("file", p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                out[p] = ("dir", None)
            else:
                out[p] = (stat.S_IFMT(st.st_mode), None)
    return out


def run(*args, env=None):
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    return result


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list]  # returns the CLI arguments
    code: int
    message: str  # a substring of stderr
    after: Callable[[Path], None] | None = None


def spec_in(tmp: Path, text: str = SPEC, **npz) -> Path:
    (tmp / "spec.yaml").write_text(text)
    write_npz(tmp / "data.npz", **npz)
    return tmp / "spec.yaml"


def train_args(tmp: Path, *extra) -> list:
    return ["train", tmp / "spec.yaml", "-b", "pytorch", "--out", tmp / "run", "-q", *extra]


# --------------------------------------------------------------------------- the cases


def _dir_output(tmp):
    (tmp / "out").mkdir()
    return ["compile", "specs/digits_cnn.yaml", "-t", "keras", "-o", tmp / "out"]


def _missing_folder(tmp):
    return ["compile", "specs/digits_cnn.yaml", "-t", "keras", "-o", tmp / "nope" / "m.py"]


def _file_as_folder(tmp):
    (tmp / "afile").write_text("mine")
    return ["compile", "specs/digits_cnn.yaml", "-t", "keras", "-o", tmp / "afile" / "m.py"]


def _dev_full(tmp):
    return ["compile", "specs/digits_cnn.yaml", "-t", "onnx", "-o", "/dev/full"]


def _dev_null(tmp):
    return ["compile", "specs/digits_cnn.yaml", "-t", "keras", "-o", "/dev/null"]


def _dev_null_kept(tmp):
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def _symlink(tmp):
    (tmp / "real.py").write_text("old")
    (tmp / "link.py").symlink_to("real.py")
    return ["compile", "specs/digits_cnn.yaml", "-t", "keras", "-o", tmp / "link.py"]


def _symlink_followed(tmp):
    assert (tmp / "link.py").is_symlink() and os.readlink(tmp / "link.py") == "real.py"
    assert "def build_model" in (tmp / "real.py").read_text()


def _weights(content: bytes):
    def setup(tmp):
        (tmp / "w.npz").write_bytes(content)
        return ["compile", "specs/digits_cnn.yaml", "-t", "onnx", "-o", tmp / "m.onnx",
                "--weights", tmp / "w.npz"]  # fmt: skip

    return setup


def _nan_weights(tmp):
    from specc import weights
    from specc.api import load

    w = weights.random_weights(load("specs/digits_cnn.yaml"))
    key = sorted(w)[0]
    w[key] = w[key].copy()
    w[key].flat[5] = np.nan
    np.savez(tmp / "w.npz", **w)
    return ["crosscheck", "specs/digits_cnn.yaml", "--weights", tmp / "w.npz"]


def _truncated_weights(tmp):
    from specc import weights
    from specc.api import load

    weights.save(tmp / "full.npz", weights.random_weights(load("specs/digits_cnn.yaml")))
    data = (tmp / "full.npz").read_bytes()
    return _weights(data[: len(data) // 2])(tmp)


def _out_is_file(tmp):
    spec_in(tmp)
    (tmp / "run").write_text("my notes")
    return train_args(tmp)


def _users_checkpoint_folder(tmp):
    spec_in(tmp)
    (tmp / "run" / "checkpoint-0001").mkdir(parents=True)
    (tmp / "run" / "checkpoint-0001" / "precious.txt").write_text("mine")
    return train_args(tmp)


def _users_best_file(tmp):
    spec_in(tmp)
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.json").write_text('{"mine": 1}')
    return train_args(tmp)


def _locked(tmp):
    from specc.runner.runfolder import RunFolder

    spec_in(tmp)
    holder = RunFolder(tmp / "run")
    holder.lock()  # released when the test's tmp folder goes (the fd closes with the case)
    _locked.holder = holder
    return train_args(tmp)


def _nothing_to_resume(tmp):
    spec_in(tmp)
    return train_args(tmp, "--resume")


def _nan_pixel(tmp):
    x = np.random.default_rng(0).random((40, 4, 4, 1)).astype(np.float32)
    x[7, 2, 1, 0] = np.nan
    spec_in(tmp, x_train=x)
    return train_args(tmp)


def _inf_test(tmp):
    x = np.random.default_rng(0).random((12, 4, 4, 1)).astype(np.float32)
    x[3, 0, 0, 0] = np.inf
    x[5, 0, 0, 0] = -np.inf
    spec_in(tmp, x_train=np.random.default_rng(1).random((40, 4, 4, 1)).astype(np.float32),
            x_test=x)  # fmt: skip
    return train_args(tmp)


def _empty_test(tmp):
    spec_in(tmp, x_test=np.zeros((0, 4, 4, 1), np.uint8), y_test=np.zeros(0, np.int64))
    return train_args(tmp)


def _empty_npz_file(tmp):
    spec_in(tmp)
    (tmp / "data.npz").write_bytes(b"")
    return train_args(tmp)


def _string_npz(tmp):
    spec_in(tmp, x_train=np.array(["a"] * 40))
    return train_args(tmp)


def _mislabelled_npz(tmp):
    spec_in(tmp, y_train=np.zeros(39, np.int64))
    return train_args(tmp)


def _lying_header(tmp):
    """An npz member whose header declares 50 million samples but holds 40."""
    spec_in(tmp)
    buf = (tmp / "data.npz").read_bytes()
    with zipfile.ZipFile(tmp / "data.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    raw = members["x_train.npy"]
    members["x_train.npy"] = raw.replace(b"(40, 4, 4, 1)", b"(50000000, 4, 4, 1)", 1)
    assert members["x_train.npy"] != raw and buf
    with zipfile.ZipFile(tmp / "data.npz", "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)
    return train_args(tmp)


def _bomb(tmp, rows=10_000_000):
    """A real decompression bomb: 160 MB of zeros in x_train, compressed to ~160 KB."""
    spec_in(tmp)
    with zipfile.ZipFile(tmp / "data.npz") as z:
        members = {n: z.read(n) for n in z.namelist() if n != "x_train.npy" and n != "y_train.npy"}
    with zipfile.ZipFile(tmp / "data.npz", "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)
        for name, shape, dtype in (
            ("x_train.npy", (rows, 4, 4, 1), np.uint8),
            ("y_train.npy", (rows,), np.int64),
        ):
            header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), dtype))
            header["shape"] = shape
            with z.open(name, "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, header)
                chunk = bytes(1 << 20)
                left = int(np.prod(shape)) * np.dtype(dtype).itemsize
                while left:
                    f.write(chunk[: min(left, len(chunk))])
                    left -= min(left, len(chunk))
    assert (tmp / "data.npz").stat().st_size < 2_000_000
    return train_args(tmp)


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


FOLDER_SPEC = SPEC.replace(
    "dataset: {type: npz, path: data.npz}",
    "dataset: {type: folder, path: images, image_size: [4, 4]}",
)


def _images(tmp):
    pytest.importorskip("PIL")
    from PIL import Image

    (tmp / "spec.yaml").write_text(FOLDER_SPEC)
    for cls in ("a", "b", "c"):
        (tmp / "images" / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (4, 4), color=i * 20).save(tmp / "images" / cls / f"{i}.png")


def _image_bomb(tmp):
    _images(tmp)
    (tmp / "images" / "a" / "huge.png").write_bytes(_png_header(30000, 30000))
    return train_args(tmp)


def _class_symlink_to_root(tmp):
    _images(tmp)
    (tmp / "images" / "d").symlink_to("/")
    return train_args(tmp)


def _image_symlink_outside(tmp):
    _images(tmp)
    (tmp / "outside.png").write_bytes((tmp / "images" / "a" / "0.png").read_bytes())
    (tmp / "images" / "b" / "9.png").symlink_to(tmp / "outside.png")
    return train_args(tmp)


def _big_yaml(tmp):
    layers = "\n".join("  - {type: Dense, units: 2}" for _ in range(50_000))
    (tmp / "big.yaml").write_text(
        f"version: 1\nname: big\ninputs: [{{name: x, shape: [2]}}]\nlayers:\n{layers}\n"
    )
    return ["validate", tmp / "big.yaml"]


CASES = [
    Case("compile -o a folder", _dir_output, 2, "cannot write"),
    Case("compile -o in a missing folder", _missing_folder, 2, "does not exist"),
    Case("compile -o under a file", _file_as_folder, 2, "cannot write"),
    Case("compile -o /dev/full", _dev_full, 2, "no space left on device"),
    Case("compile -o /dev/null writes through", _dev_null, 0, "", _dev_null_kept),
    Case("compile -o a symlink replaces its target", _symlink, 0, "", _symlink_followed),
    Case("--weights: an empty file", _weights(b""), 2, "empty file"),
    Case("--weights: not an npz", _weights(b"garbage" * 10), 2, "cannot read weights"),
    Case("--weights: truncated", _truncated_weights, 2, "cannot read weights"),
    Case("crosscheck --weights with NaN", _nan_weights, 2, "1 NaN/Inf value, the first at index"),
    Case("train --out is a file", _out_is_file, 2, "cannot write"),
    Case(
        "train --out holds the user's checkpoint-0001/",
        _users_checkpoint_folder,
        2,
        "was not written by specc",
    ),  # fmt: skip
    Case(
        "train --out holds the user's metrics.json", _users_best_file, 2, "was not written by specc"
    ),  # fmt: skip
    Case(
        "train into a folder in use", _locked, 2, f"in use by another specc run (pid {os.getpid()})"
    ),
    Case("--resume with nothing to resume", _nothing_to_resume, 2, "nothing to resume"),
    Case(
        "npz: a NaN pixel",
        _nan_pixel,
        3,
        "x_train holds 1 NaN/Inf value, the first at index [7, 2, 1, 0]",
    ),  # fmt: skip
    Case("npz: Inf in the test split", _inf_test, 3, "x_test holds 2 NaN/Inf values"),
    Case("npz: an empty test split", _empty_test, 3, "the test split is empty"),
    Case("npz: a 0-byte file", _empty_npz_file, 3, "not an npz"),
    Case("npz: strings", _string_npz, 3, "expected numbers"),
    Case("npz: labels do not match", _mislabelled_npz, 3, "40 samples but y_train 39"),
    Case("npz: a header that lies", _lying_header, 3, "truncated or corrupted"),
    Case("image folder: a 30000x30000 PNG", _image_bomb, 3, "refusing the image"),
    Case(
        "image folder: a class symlinked to /",
        _class_symlink_to_root,
        3,
        "outside the dataset folder",
    ),  # fmt: skip
    Case(
        "image folder: an image from outside",
        _image_symlink_outside,
        3,
        "outside the dataset folder",
    ),  # fmt: skip
    Case("a 50,000-layer spec without aliases", _big_yaml, 1, "holds more than 200,000 values"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case, tmp_path):
    args = case.setup(tmp_path)
    before = snapshot(tmp_path)
    result = run(*args)
    holder = getattr(case.setup, "holder", None)
    if holder is not None:
        holder.unlock()
    out = result.output
    assert "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == case.code, out
    assert case.message in out, out
    if case.code:
        problem_lines = [line for line in out.splitlines() if line.strip()]
        assert len(problem_lines) == 1, out  # one line says what and where
    after = snapshot(tmp_path)
    for path, (kind, content) in before.items():  # nothing of the user's deleted or changed
        if case.after is _symlink_followed and path.name == "real.py":
            continue
        assert path in after, f"{path} was deleted"
        assert after[path] == (kind, content), f"{path} was changed"
    if case.after:
        case.after(tmp_path)


def test_npz_bomb_is_refused_before_decompression_and_limit_reads_only_what_it_needs(tmp_path):
    import time

    args = _bomb(tmp_path)
    started = time.perf_counter()
    refused = run(*args, env={"SPECC_MAX_MEMORY": "64M"})
    assert refused.exit_code == 3, refused.output
    assert "needs 152.6 MiB in memory (shape (10000000, 4, 4, 1))" in refused.output
    assert "more than the 64.0 MiB allowed" in refused.output
    assert time.perf_counter() - started < 5
    limited = run(*args, "--limit", "40", "--epochs", "1", env={"SPECC_MAX_MEMORY": "64M"})
    assert limited.exit_code == 0, limited.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["samples"] == 12


def test_fifo_output_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    thread = threading.Thread(target=reader)
    thread.start()
    result = run("compile", "specs/digits_cnn.yaml", "-t", "pytorch", "-o", fifo)
    thread.join(10)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, never replaced by a file
    assert b"class DigitsCnn" in got["data"]


# --------------------------------------------------------------------------- run files


@pytest.fixture
def finished_run(tmp_path):
    spec_in(tmp_path)
    result = run(*train_args(tmp_path, "--epochs", "1"))
    assert result.exit_code == 0, result.output
    return tmp_path


def _pointer(run_dir):
    return run_dir / "checkpoint.json"


def _state(run_dir):
    return run_dir / json.loads(_pointer(run_dir).read_text())["folder"] / "state.pt"


def _loop(run_dir):
    return run_dir / json.loads(_pointer(run_dir).read_text())["folder"] / "loop.json"


@pytest.mark.parametrize(
    "target, content, where",
    [
        (_pointer, b"", "checkpoint.json: empty file"),
        (_pointer, b'{"folder": "../../etc"}', "checkpoint.json: names no checkpoint folder"),
        (_pointer, b"\xff\xfe garbage", "checkpoint.json: not text"),
        (_state, b"", "state.pt: cannot be loaded"),
        (_state, b"PK\x03\x04 truncated", "state.pt: cannot be loaded"),
        (_loop, b"[1, 2]", "loop.json: expected the loop state"),
        (lambda d: d / "run.json", b"{broken", "run.json: not valid JSON"),
        (lambda d: d / ".specc-manifest.json", b"{}", ".specc-manifest.json: not a specc manifest"),
    ],
    ids=["empty pointer", "pointer escapes", "binary pointer", "empty state.pt",
         "truncated state.pt", "loop.json not an object", "broken run.json", "broken manifest"],
)  # fmt: skip
def test_damaged_run_folder_exits_3_naming_the_file(finished_run, target, content, where):
    path = target(finished_run / "run")
    path.write_bytes(content)
    before = snapshot(finished_run)
    result = run(*train_args(finished_run, "--resume", "--epochs", "2"))
    assert "Traceback" not in result.output and result.exit_code == 3, result.output
    assert "the run folder is damaged" in result.output and where in result.output, result.output
    assert "move the run folder" in result.output  # what to do
    assert snapshot(finished_run) == before  # nothing touched


def test_resume_refuses_a_different_run_and_lists_the_differences(finished_run):
    result = run(*train_args(finished_run, "--resume", "--epochs", "2", "--seed", "5",
                             "--batch-size", "4", "--limit", "20"))  # fmt: skip
    assert result.exit_code == 2, result.output
    for text in ("seed: 0 in run.json, now 5", "batch size: 8 in run.json, now 4",
                 "--limit: None in run.json, now 20"):  # fmt: skip
        assert text in result.output
    (finished_run / "spec.yaml").write_text(SPEC.replace("units: 3", "units: 3, use_bias: false"))
    changed = run(*train_args(finished_run, "--resume", "--epochs", "2"))
    assert changed.exit_code == 2 and "spec (model and training section)" in changed.output
    (finished_run / "spec.yaml").write_text(SPEC)
    finished = run(*train_args(finished_run, "--resume"))
    assert finished.exit_code == 2 and "finished all its epochs (1)" in finished.output
    assert "give a larger --epochs" in finished.output
    extended = run(*train_args(finished_run, "--resume", "--epochs", "2"))
    assert extended.exit_code == 0, extended.output
    history = json.loads((finished_run / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_full_disk_at_a_checkpoint_leaves_the_previous_one_usable(tmp_path, monkeypatch):
    """ENOSPC while epoch 2's checkpoint is written: exit 2 with one line, the partial folder
    removed, and --resume continues from epoch 1 to the uninterrupted result."""
    from specc.runner.torch_backend import TorchBackend

    spec_in(tmp_path)
    whole = run("train", tmp_path / "spec.yaml", "-b", "pytorch", "--out", tmp_path / "whole", "-q")
    assert whole.exit_code == 0, whole.output
    real_save = TorchBackend.save
    calls = {"n": 0}

    def full_disk(self, folder):
        calls["n"] += 1
        if calls["n"] == 2:
            (folder / "state.pt").write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, folder)

    monkeypatch.setattr(TorchBackend, "save", full_disk)
    result = run(*train_args(tmp_path))
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.output and "no space left on device" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-0001"]
    monkeypatch.setattr(TorchBackend, "save", real_save)
    resumed = run(*train_args(tmp_path, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    a, b = np.load(tmp_path / "whole" / "weights.npz"), np.load(tmp_path / "run" / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_ctrl_c_saves_prints_the_resume_command_and_resumes_exactly(tmp_path, monkeypatch):
    import signal

    from specc.runner.torch_backend import TorchBackend

    spec_in(tmp_path)
    whole = run("train", tmp_path / "spec.yaml", "-b", "pytorch", "--out", tmp_path / "whole", "-q")
    assert whole.exit_code == 0, whole.output
    real_step = TorchBackend.train_step
    calls = {"n": 0}

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2, step 2 (5 steps an epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, x, y)

    monkeypatch.setattr(TorchBackend, "train_step", step)
    monkeypatch.setattr("sys.argv", ["specc", *map(str, train_args(tmp_path))])
    result = run(*train_args(tmp_path))
    assert result.exit_code == 130, result.output
    assert "interrupted: saved a checkpoint at epoch 2, step 2 in" in result.output
    assert "checkpoint-0001-step000002" in result.output
    assert (
        f"specc train {tmp_path / 'spec.yaml'} -b pytorch --out {tmp_path / 'run'} -q --resume"
        in result.output
    )
    monkeypatch.setattr(TorchBackend, "train_step", real_step)
    resumed = run(*train_args(tmp_path, "--resume"), env=None)
    assert resumed.exit_code == 0, resumed.output
    a, b = np.load(tmp_path / "whole" / "weights.npz"), np.load(tmp_path / "run" / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)  # Dropout masks continued exactly


def test_ctrl_c_while_writing_results_then_resume_writes_them(tmp_path, monkeypatch):
    import specc.runner.run as run_module

    spec_in(tmp_path)
    real = run_module.write_outputs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "write_outputs", interrupted)
    result = run(*train_args(tmp_path, "--epochs", "1"))
    assert result.exit_code == 130, result.output
    assert "interrupted while writing the results; the checkpoint of epoch 1" in result.output
    monkeypatch.setattr(run_module, "write_outputs", real)
    resumed = run(*train_args(tmp_path, "--epochs", "1", "--resume"))
    assert resumed.exit_code == 0, resumed.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "finished" and record["epochs"] == 1
    assert (tmp_path / "run" / "metrics.json").exists()
    again = run(*train_args(tmp_path, "--epochs", "1", "--resume"))
    assert again.exit_code == 2 and "finished all its epochs (1)" in again.output
