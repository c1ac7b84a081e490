"""ONNX export at memory speed and above 2 GB: the large initializers are built without data,
checked as graph inputs, then get their raw bytes once (the same bytes as before); above
EXTERNAL_DATA_THRESHOLD bytes of weights the model is written in ONNX's external-data format
(``<file>.data`` beside it) and checks with the path-based checker."""

from __future__ import annotations

import os

import numpy as np
import pytest

from specc.pipeline import check_data, check_file
from specc.targets.onnx import graph as O

onnx = pytest.importorskip("onnx")


def _mlp():
    return check_file("specs/mnist_mlp.json").model


def test_placeholders_become_plain_raw_data():
    """build_onnx returns every initializer with its data inline, as numpy_helper makes it."""
    from onnx import numpy_helper

    proto = O.build_onnx(_mlp())
    big = [t for t in proto.graph.initializer if np.prod(t.dims) >= O._PAYLOAD_MIN_ELEMENTS]
    assert big, "the MLP has kernels above the placeholder size"
    arrays = O._weights_for(_mlp(), None, 0)
    for tensor in big:
        assert tensor.data_location == onnx.TensorProto.DEFAULT
        assert not tensor.external_data
        array = numpy_helper.to_array(tensor)
        assert array.dtype == np.float32 and array.shape == tuple(tensor.dims)
        rebuilt = numpy_helper.from_array(array, tensor.name)
        assert rebuilt.SerializeToString() == tensor.SerializeToString()
    layer, param = big[0].name.split(".")
    want = arrays[f"{layer}/{param}"]
    got = numpy_helper.to_array(big[0])
    assert np.array_equal(got, want.T if got.shape != want.shape else want)


def test_external_data_above_threshold(tmp_path, monkeypatch):
    """With the threshold lowered, the MLP is written with external data; the path-based
    checker accepts it and onnxruntime gives the same outputs as the single-file model."""
    model = _mlp()
    single = tmp_path / "single.onnx"
    O.write_onnx(model, single)
    assert not (tmp_path / "single.onnx.data").exists()
    monkeypatch.setattr(O, "EXTERNAL_DATA_THRESHOLD", 0)
    target = tmp_path / "mlp.onnx"
    O.write_onnx(model, target)
    data = tmp_path / "mlp.onnx.data"
    assert data.exists() and target.stat().st_size < 100_000
    assert data.stat().st_size >= 4 * 784 * 128  # the first kernel alone
    onnx.checker.check_model(str(target), full_check=True)
    stored = onnx.load(str(target), load_external_data=False)
    external = [t for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all(
        {e.key: e.value for e in t.external_data}["location"] == "mlp.onnx.data" for t in external
    )
    assert all(
        int({e.key: e.value for e in t.external_data}["offset"]) % 4096 == 0 for t in external
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).random((3, *model.inputs[0].shape), dtype=np.float32)
    outs = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
        for p in (single, target)
    ]
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("SPECC_HEAVY") != "1",
    reason="heavy (2.4 GB written, several GB of memory, minutes): set SPECC_HEAVY=1",
)
def test_model_above_2gb_is_written_with_external_data(tmp_path):
    """603 M parameters (2.4 GB of float32): one protobuf could not hold it."""
    layers = [
        {"type": "Dense", "name": "d1", "units": 16384},
        {"type": "Dense", "name": "d2", "units": 16384},
        {"type": "Dense", "name": "d3", "units": 4096},
    ]
    data = {
        "version": 1,
        "name": "huge",
        "inputs": [{"name": "x", "shape": [16384]}],
        "layers": layers,
    }
    result = check_data(data)
    assert result.ok
    model = result.model
    assert model.total_params > 600_000_000
    target = tmp_path / "huge.onnx"
    O.write_onnx(model, target)
    assert (tmp_path / "huge.onnx.data").stat().st_size >= 4 * model.total_params
    onnx.checker.check_model(str(target), full_check=True)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    x = np.ones((1, 16384), np.float32)
    (out,) = session.run(None, {"x": x})
    assert out.shape == (1, 4096) and np.isfinite(out).all()


@pytest.mark.parametrize(
    "spec",
    ["specs/mnist_cnn.yaml", "specs/residual_block.yaml", "specs/two_inputs_two_outputs.yaml"],
)
def test_streamed_file_has_the_bytes_of_the_attached_model(spec, tmp_path):
    """write_onnx writes the weights straight from the arrays: byte for byte what
    onnx_bytes(build_onnx(...)) gives."""
    model = check_file(spec).model
    target = tmp_path / "m.onnx"
    O.write_onnx(model, target)
    assert target.read_bytes() == O.onnx_bytes(O.build_onnx(model))


def test_cli_compile_writes_external_data_above_the_threshold(tmp_path, monkeypatch):
    """`specc compile --target onnx` goes through the target's writer: below the threshold
    the single file `emit` gives, byte for byte; above it (lowered here) the model plus
    <file>.data, which the path-based checker accepts and the CLI reports."""
    from typer.testing import CliRunner

    from specc.cli import app

    def no_copy(*args):  # the CLI streams the weights from the arrays (as write_onnx)
        raise AssertionError("the weights were copied into the protobuf before writing")

    runner = CliRunner()
    single = tmp_path / "single.onnx"
    with monkeypatch.context() as patch:
        patch.setattr(O, "_attach", no_copy)
        result = runner.invoke(
            app, ["compile", "specs/mnist_mlp.json", "--target", "onnx", "-o", str(single)]
        )
    assert result.exit_code == 0, result.stderr
    assert single.read_bytes() == O.onnx_bytes(O.build_onnx(_mlp()))
    assert not (tmp_path / "single.onnx.data").exists()
    monkeypatch.setattr(O, "EXTERNAL_DATA_THRESHOLD", 0)
    target = tmp_path / "mlp.onnx"
    result = runner.invoke(
        app, ["compile", "specs/mnist_mlp.json", "--target", "onnx", "-o", str(target)]
    )
    assert result.exit_code == 0, result.stderr
    data = tmp_path / "mlp.onnx.data"
    assert data.stat().st_size >= 4 * 784 * 128
    assert f"wrote {data} (ONNX external data, {data.stat().st_size:,} bytes)" in result.stderr
    onnx.checker.check_model(str(target), full_check=True)
    missing = tmp_path / "no" / "such" / "m.onnx"
    result = runner.invoke(
        app, ["compile", "specs/mnist_mlp.json", "--target", "onnx", "-o", str(missing)]
    )
    assert result.exit_code == 2 and result.stderr.startswith(f"error: cannot write {missing}")


def test_external_data_beside_a_name_near_the_255_byte_limit(tmp_path, monkeypatch):
    """The data file's temporary name is cut short (it was '.<name>.data.<random>.tmp': too
    long for a model named with 230 bytes, 'file name too long')."""
    monkeypatch.setattr(O, "EXTERNAL_DATA_THRESHOLD", 0)
    target = tmp_path / ("m" * 240 + ".onnx")  # the data file: 250 bytes
    O.write_onnx(_mlp(), target)
    assert (tmp_path / (target.name + ".data")).stat().st_size >= 4 * 784 * 128
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
