"""`specc import`: Keras models and ONNX graphs become specs with their weights.

Fast tests read hand-written Keras configs (no framework); slow tests save real Keras
models (Sequential, Functional, Keras Applications), export PyTorch modules to ONNX, and
round-trip every bundled spec through ONNX, comparing outputs with the originals.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from specc.cli import app
from specc.importers import ImportRefused, import_model
from specc.importers.keras import config_to_spec
from specc.importers.spec_writer import spec_yaml
from specc.pipeline import check_data

from .conftest import ROOT, SPECS


def _tensor(layer: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [layer, 0, 0]}}


def _layer(cls: str, name: str, inbound=None, **config) -> dict:
    entry = {"class_name": cls, "config": {"name": name, "trainable": True, **config}}
    if inbound is not None:
        args = [_tensor(i) for i in inbound]
        entry["inbound_nodes"] = [{"args": [args if len(args) > 1 else args[0]], "kwargs": {}}]
    return entry


FUNCTIONAL = {
    "class_name": "Functional",
    "config": {
        "name": "branchy",
        "layers": [
            _layer("InputLayer", "img", batch_shape=[None, 8, 8, 3], dtype="float32"),
            _layer("Conv2D", "c1", ["img"], filters=4, kernel_size=[3, 3], strides=[1, 1],
                   padding="same", activation="relu", use_bias=True, dilation_rate=[1, 1],
                   groups=1, data_format="channels_last",
                   kernel_initializer={"class_name": "HeNormal", "config": {"seed": None}},
                   kernel_regularizer=None),
            _layer("Conv2D", "c2", ["img"], filters=4, kernel_size=[1, 1], activation="linear"),
            _layer("Add", "add", ["c1", "c2"]),
            _layer("GlobalAveragePooling2D", "pool", ["add"], keepdims=False),
            _layer("Dense", "out", ["pool"], units=3, activation="softmax",
                   kernel_regularizer={"class_name": "L2", "config": {"l2": 0.01}},
                   bias_regularizer={"class_name": "OrthogonalRegularizer",
                                     "config": {"factor": 0.01, "mode": "rows"}}),
        ],
        "input_layers": [["img", 0, 0]],
        "output_layers": [["out", 0, 0]],
    },
}  # fmt: skip


def test_functional_config_becomes_a_readable_spec():
    spec, notes = config_to_spec(FUNCTIONAL)
    assert spec["inputs"] == [{"name": "img", "shape": [8, 8, 3]}]
    c1, c2, add, pool, out = spec["layers"]
    assert c1 == {
        "type": "Conv2D",
        "name": "c1",
        "filters": 4,
        "kernel_size": 3,
        "padding": "same",
        "activation": "relu",
        "kernel_initializer": "he_normal",
    }
    assert "inputs" not in c1  # reads the previous tensor
    assert c2["inputs"] == ["img"] and add["inputs"] == ["c1", "c2"]
    assert "activation" not in c2  # 'linear' is specc's default
    assert out["kernel_regularizer"] == {"type": "L2", "l2": 0.01}  # kept: it changes training
    assert notes == [
        "layer 'out' (Dense): bias_regularizer OrthogonalRegularizer(factor=0.01, mode='rows') "
        "not kept (not expressible)"
    ]
    result = check_data(spec)
    assert result.ok and result.model.total_params == (27 * 4 + 4) + (3 * 4 + 4) + (4 * 3 + 3)
    # the YAML reads back to the same data
    assert yaml.safe_load(spec_yaml(spec)) == spec


def test_keras2_sequential_config():
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "seq",
            "layers": [
                {"class_name": "Dense", "config": {"name": "d1", "units": 5,
                 "batch_input_shape": [None, 7], "activation": "relu"}},
                {"class_name": "LeakyReLU", "config": {"name": "lr", "alpha": 0.1}},
                {"class_name": "Dense", "config": {"name": "d2", "units": 2}},
            ],
        },
    }  # fmt: skip
    spec, _ = config_to_spec(config)
    assert spec["inputs"] == [{"name": "input", "shape": [7]}]
    assert [layer["name"] for layer in spec["layers"]] == ["d1", "lr", "d2"]
    assert spec["layers"][1]["negative_slope"] == 0.1
    assert "outputs" not in spec


def test_nested_model_configs_are_inlined():
    backbone = _layer("Functional", "backbone", ["img"], trainable=False,
                      layers=[_layer("InputLayer", "inner_in", batch_shape=[None, 8, 8, 3]),
                              _layer("Conv2D", "conv", ["inner_in"], filters=4, kernel_size=3,
                                     trainable=False)],
                      input_layers=[["inner_in", 0, 0]], output_layers=[["conv", 0, 0]])  # fmt: skip
    head = _layer("Sequential", "head", ["add"], layers=[
        _layer("GlobalAveragePooling2D", "pool"),
        _layer("Dense", "dense", units=3, kernel_initializer={
            "class_name": "VarianceScaling",
            "config": {"scale": 2.0, "mode": "fan_out", "distribution": "uniform", "seed": None,
                       "input_axes": None}}),
    ])  # fmt: skip
    config = {"class_name": "Functional", "config": {"name": "outer", "layers": [
        _layer("InputLayer", "img", batch_shape=[None, 8, 8, 3]), backbone,
        _layer("Conv2D", "conv", ["backbone"], filters=4, kernel_size=1),
        _layer("Add", "add", ["conv", "backbone"]), head,
    ], "input_layers": [["img", 0, 0]], "output_layers": [["head", 0, 0]]}}  # fmt: skip
    paths: dict = {}
    spec, notes = config_to_spec(config, paths)
    assert [(e["name"], e.get("inputs")) for e in spec["layers"]] == [
        ("backbone_conv", None), ("conv", None), ("add", ["conv", "backbone_conv"]),
        ("pool", None), ("dense", None),
    ]  # fmt: skip
    assert paths["backbone_conv"] == ["backbone", "conv"] and paths["dense"] == ["head", "dense"]
    assert spec["layers"][-1]["kernel_initializer"] == {
        "type": "VarianceScaling", "scale": 2.0, "mode": "fan_out", "distribution": "uniform"
    }  # fmt: skip
    assert notes == [
        "nested model 'backbone': trainable=false not kept (training only: specc trains every "
        "layer)"
    ]
    assert check_data(spec).model.total_params == (27 * 4 + 4) + (4 * 4 + 4) + (4 * 3 + 3)


def _op(cls: str, name: str, *args) -> dict:
    """A Keras operation as Keras 3 saves ``x + 3.0`` written in model code."""
    args = [_tensor(a) if isinstance(a, str) else a for a in args]
    return {"module": "keras.src.ops.numpy", "class_name": cls, "config": {"name": name},
            "inbound_nodes": [{"args": args, "kwargs": {}}]}  # fmt: skip


def test_keras_operations_become_layers():
    config = {"class_name": "Functional", "config": {"name": "ops", "layers": [
        _layer("InputLayer", "x", batch_shape=[None, 4]),
        _op("Add", "add", "x", 3.0), _op("Subtract", "sub", 3.0, "add"),
        _op("Multiply", "mul", "sub", "x"), _op("Multiply", "sixth", "mul", 1 / 6),
    ], "input_layers": [["x", 0, 0]], "output_layers": [["sixth", 0, 0]]}}  # fmt: skip
    spec, _ = config_to_spec(config)
    assert spec["layers"] == [
        {"type": "Rescaling", "name": "add", "scale": 1.0, "offset": 3.0},
        {"type": "Rescaling", "name": "sub", "scale": -1.0, "offset": 3.0},
        {"type": "Multiply", "name": "mul", "inputs": ["sub", "x"]},
        {"type": "Rescaling", "name": "sixth", "scale": 1 / 6},
    ]
    config["config"]["layers"].append(_op("Sin", "sin", "sixth"))
    config["config"]["output_layers"] = [["sin", 0, 0]]
    with pytest.raises(ImportRefused) as caught:
        config_to_spec(config)
    assert caught.value.items == [
        "Keras layer operation Sin is not supported by specc: 1 layer ('sin')"
    ]


def test_everything_refused_is_listed_at_once():
    config = json.loads(json.dumps(FUNCTIONAL))
    layers = config["config"]["layers"]
    layers.insert(4, _layer("Lambda", "fn", ["add"], function="ZGVm"))
    layers.insert(5, _layer("ConvLSTM2D", "rnn1", ["add"]))
    layers.insert(6, _layer("ConvLSTM2D", "rnn2", ["add"]))
    layers[1]["config"]["padding"] = "causal"
    next(x for x in layers if x["config"]["name"] == "add")["config"]["mystery_option"] = 3
    with pytest.raises(ImportRefused) as caught:
        config_to_spec(config)
    items = caught.value.items
    assert "Keras layer ConvLSTM2D is not supported by specc: 2 layers ('rnn1', 'rnn2')" in items
    assert any(i.startswith("Keras layer Lambda (runs Python code from the file)") for i in items)
    assert any("option mystery_option=3 cannot be expressed" in i for i in items)


def test_cli_refusal_and_damaged_files(tmp_path):
    spec = json.loads(json.dumps(FUNCTIONAL))
    spec["config"]["layers"].insert(4, _layer("Lambda", "fn", ["add"]))
    (tmp_path / "m.json").write_text(json.dumps(spec))
    result = CliRunner().invoke(app, ["import", str(tmp_path / "m.json")])
    assert result.exit_code == 1
    assert "Lambda" in result.stderr and "Traceback" not in result.output
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "model.pt").write_bytes(b"x")
    for name, code in (("broken.keras", 2), ("model.pt", 2), ("missing.keras", 2)):
        result = CliRunner().invoke(app, ["import", str(tmp_path / name)])
        assert result.exit_code == code, (name, result.output)
        assert "Traceback" not in result.output and result.stderr.strip()
    with zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    result = CliRunner().invoke(app, ["import", str(tmp_path / "noconfig.keras")])
    assert result.exit_code == 2 and "no config.json" in result.stderr


def test_config_only_json_imports_without_weights(tmp_path):
    path = tmp_path / "branchy.json"
    path.write_text(json.dumps(FUNCTIONAL))
    out = tmp_path / "branchy.yaml"
    result = CliRunner().invoke(app, ["import", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert check_data(yaml.safe_load(out.read_text())).ok


# --------------------------------------------------------------------------- slow: Keras


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _assert_check_passes(path: Path, tolerance: float = 1e-5):
    result = CliRunner().invoke(app, ["import", str(path), "--check"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if "max abs" in line]
    assert {r[0] for r in rows} >= {"keras", "pytorch", "onnx"}
    for row in rows:
        assert float(row[row.index("abs") + 1].rstrip(",")) <= tolerance, row


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_saved_keras_models_import_with_identical_outputs(keras, tmp_path, suffix):
    inp = keras.Input((10, 10, 3), name="img")
    x = keras.layers.Conv2D(6, 3, padding="same", name="c1")(inp)
    x = keras.layers.BatchNormalization(name="bn", epsilon=0.01)(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(4, activation="softmax", name="out")(x)
    model = keras.Model(inp, out, name="saved")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3 for w in model.weights])
    bn = model.get_layer("bn")
    bn.moving_variance.assign(np.abs(bn.moving_variance.numpy()) + 0.5)
    path = tmp_path / f"saved{suffix}"
    model.save(path)
    result = import_model(path)
    assert check_data(result.spec).model.total_params == model.count_params()
    assert result.weights["bn/moving_variance"].min() >= 0.5
    _assert_check_passes(path)


APPLICATIONS = [
    # (application, kwargs, total params Keras counts)
    ("VGG16", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"}, 14_714_688),
    ("ResNet50", {}, 25_636_712),
    ("MobileNetV2", {"input_shape": (96, 96, 3), "alpha": 0.5}, 1_987_224),
    (
        "DenseNet121",
        {"input_shape": (64, 64, 3), "include_top": False, "pooling": "avg"},
        7_037_504,
    ),
    ("Xception", {"input_shape": (71, 71, 3), "include_top": False, "pooling": "max"}, 20_861_480),
    # Rescaling, Normalization, squeeze-and-excite (broadcasting Multiply), swish
    (
        "EfficientNetB0",
        {"input_shape": (64, 64, 3), "include_top": False, "pooling": "avg"},
        4_049_571,
    ),
    # hard_swish written as Keras operations (x + 3.0, x * (1 / 6)): Rescaling layers
    (
        "MobileNetV3Small",
        {"input_shape": (64, 64, 3), "include_top": False, "pooling": "avg"},
        939_120,
    ),
    # BatchNormalization without scale
    (
        "InceptionV3",
        {"input_shape": (75, 75, 3), "include_top": False, "pooling": "avg"},
        21_802_784,
    ),
]


def _trained_statistics(keras, model, seed: int = 1) -> None:
    """BatchNormalization statistics and affine weights as a trained network has them: with
    Keras's fresh ones (mean 0, variance 1) the deep Applications' features shrink to ~1e-9
    and a comparison of outputs would prove nothing."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(size=n).astype("float32") * 0.1)
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(size=n).astype("float32") * 0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kwargs", "total"), APPLICATIONS, ids=[a[0] for a in APPLICATIONS]
)
def test_keras_applications_import_exactly(keras, tmp_path, name, kwargs, total):
    model = getattr(keras.applications, name)(weights=None, **kwargs)
    assert model.count_params() == total
    _trained_statistics(keras, model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    result = import_model(path)
    imported = check_data(result.spec).model
    assert imported.total_params == total
    assert imported.non_trainable_params == sum(
        int(np.prod(w.shape)) for w in model.non_trainable_weights
    )
    if name != "ResNet50":  # the full 224x224 ResNet50 is checked for counts only (time)
        _assert_check_passes(path, tolerance=1e-5)
    if name in FOLDED:  # --blocks: the MBConv / residual blocks become block definitions
        from specc.importers.fold_blocks import fold_blocks

        folded, notes = fold_blocks(result.spec)  # kept only when it expands to the same
        assert notes == [FOLDED[name]] and check_data(folded).model.total_params == total


FOLDED = {
    "EfficientNetB0": "--blocks: 217 of 237 layers folded into 3 blocks (15 instances)",
    "ResNet50": "--blocks: 156 of 176 layers folded into 2 blocks (15 instances)",
}


def _counts(keras_model) -> tuple[int, int]:
    """Keras's (total, non-trainable) counts with every layer trainable (a frozen nested
    model is a training setting, noted and not kept: its BN statistics stay non-trainable)."""
    frozen = [layer for layer in keras_model.layers if not layer.trainable]
    for layer in frozen:
        layer.trainable = True
    counts = (
        keras_model.count_params(),
        sum(int(np.prod(w.shape)) for w in keras_model.non_trainable_weights),
    )
    for layer in frozen:
        layer.trainable = False
    return counts


@pytest.mark.slow
def test_recurrent_wrapped_and_masked_keras_models_import(keras, tmp_path):
    """keras.io's text models: recurrent layers, TimeDistributed, Bidirectional (its saved
    backward layer the mirror of the forward one), regularizers, and an Embedding's
    mask_zero mask (Keras saves it as a `not_equal` operation passed as `mask=`). Counts are
    Keras's; PyTorch gives the original's outputs on padded inputs; ONNX, which refuses
    mask_zero, says so instead of failing the check."""
    layers = keras.layers
    ids = keras.Input(shape=(12,), dtype="int32")
    x = layers.Embedding(300, 8, mask_zero=True)(ids)
    x = layers.Bidirectional(
        layers.LSTM(6, return_sequences=True, kernel_regularizer=keras.regularizers.L2(1e-4))
    )(x)
    x = layers.TimeDistributed(layers.Dense(5))(x)
    x = layers.Bidirectional(layers.GRU(4), merge_mode="sum")(x)
    probs = layers.Dense(3, activation="softmax")(x)
    original = keras.Model(ids, probs)
    path = tmp_path / "text.keras"
    original.save(path)
    result = import_model(path)
    kinds = [(e["type"], e.get("layer", {}).get("type")) for e in result.spec["layers"]]
    assert kinds == [
        ("Embedding", None),
        ("Bidirectional", "LSTM"),
        ("TimeDistributed", "Dense"),
        ("Bidirectional", "GRU"),
        ("Dense", None),
    ]
    assert result.spec["layers"][0]["mask_zero"] is True
    assert result.spec["layers"][1]["layer"]["kernel_regularizer"] == {"type": "L2", "l2": 1e-4}
    assert not result.notes, result.notes
    model = check_data(result.spec).model
    assert model.total_params == original.count_params()
    check = CliRunner().invoke(app, ["import", str(path), "--check"])
    assert check.exit_code == 0, check.output
    assert "onnx     not compared: onnx target: Bidirectional takes the mask" in check.stdout
    torch_row = next(line for line in check.stdout.splitlines() if "pytorch" in line)
    assert float(torch_row.split("max abs ")[1].split(",")[0]) <= 1e-5, torch_row
    # an unwritable weights file: one line saying where and why, exit 2
    missing = tmp_path / "no_such_folder" / "w.npz"
    out = CliRunner().invoke(app, ["import", str(path), "-o", str(tmp_path / "s.yaml"),
                                   "--weights-out", str(missing)])  # fmt: skip
    assert out.exit_code == 2
    assert f"error: cannot write {missing}: the folder" in out.stderr
    assert "Traceback" not in out.output

    # a Bidirectional whose backward layer is not the forward one mirrored is refused
    other = keras.Model(
        ids,
        layers.Bidirectional(layers.GRU(4), backward_layer=layers.GRU(5, go_backwards=True))(
            layers.Embedding(300, 8)(ids)
        ),
    )
    other.save(tmp_path / "other.keras")
    with pytest.raises(ImportRefused) as caught:
        import_model(tmp_path / "other.keras")
    assert "its backward layer differs from the forward one" in caught.value.items[0]


@pytest.mark.slow
def test_nested_models_are_inlined(keras, tmp_path):
    """A Functional backbone and a Sequential head inside a Functional model: their layers
    inlined, names kept where unique (the backbone's 'conv' meets the outer 'conv')."""
    L = keras.layers
    inner_in = keras.Input((8, 8, 3), name="inner_in")
    y = L.Conv2D(4, 3, padding="same", name="conv")(inner_in)
    y = L.BatchNormalization(name="bn")(y)
    backbone = keras.Model(inner_in, L.ReLU(name="relu")(y), name="backbone")
    backbone.trainable = False
    head = keras.Sequential([L.GlobalAveragePooling2D(name="pool"), L.Dense(5, name="dense")],
                            name="head")  # fmt: skip
    inp = keras.Input((8, 8, 3), name="img")
    features = backbone(inp)
    x = L.Conv2D(4, 1, name="conv")(features)
    x = L.Add(name="add")([x, features])
    model = keras.Model(inp, head(x), name="outer")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3 for w in model.weights])
    bn = backbone.get_layer("bn")
    bn.moving_variance.assign(np.abs(bn.moving_variance.numpy()) + 0.5)
    path = tmp_path / "nested.keras"
    model.save(path)
    result = import_model(path)
    assert [(e["type"], e["name"]) for e in result.spec["layers"]] == [
        ("Conv2D", "backbone_conv"), ("BatchNormalization", "bn"), ("ReLU", "relu"),
        ("Conv2D", "conv"), ("Add", "add"), ("GlobalAveragePooling2D", "pool"),
        ("Dense", "dense"),
    ]  # fmt: skip
    assert "inputs" not in result.spec["layers"][3]  # reads the backbone's output, the previous
    assert result.spec["layers"][4]["inputs"] == ["conv", "relu"]
    assert "nested model 'backbone': trainable=false not kept" in result.notes[0]
    imported = check_data(result.spec).model
    assert (imported.total_params, imported.non_trainable_params) == _counts(model)
    np.testing.assert_array_equal(
        result.weights["backbone_conv/kernel"], backbone.get_layer("conv").kernel.numpy()
    )
    _assert_check_passes(path)


@pytest.mark.slow
def test_application_inside_a_sequential_model(keras, tmp_path):
    """keras.Sequential([MobileNetV2 backbone, pooling, classifier]): the transfer-learning
    model of Keras's guides, its backbone frozen."""
    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(64, 64, 3), alpha=0.35
    )
    base.trainable = False
    _trained_statistics(keras, base)
    model = keras.Sequential(
        [keras.Input((64, 64, 3), name="image"), base, keras.layers.GlobalAveragePooling2D(),
         keras.layers.Dense(10, activation="softmax", name="classes")], name="transfer",
    )  # fmt: skip
    path = tmp_path / "transfer.keras"
    model.save(path)
    result = import_model(path)
    imported = check_data(result.spec).model
    assert (imported.total_params, imported.non_trainable_params) == _counts(model)
    assert imported.layers[0].name == "Conv1" and imported.outputs == ["classes"]
    _assert_check_passes(path)


# --------------------------------------------------------------------------- slow: ONNX


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_bundled_specs_round_trip_through_onnx(spec, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from specc import targets
    from specc import weights as W

    model = check_data(yaml.safe_load(spec.read_text()) if spec.suffix != ".json"
                       else json.loads(spec.read_text())).model  # fmt: skip
    weights = W.random_weights(model, 3)
    first = tmp_path / "first.onnx"
    first.write_bytes(targets.get("onnx").emit(model, weights=weights))
    result = import_model(first)  # every bundled spec's graph imports (ImportRefused fails)
    again = check_data(result.spec).model
    # the same names (an activation layer may fold into the layer before it), same outputs
    assert {layer.name for layer in again.layers} <= {layer.name for layer in model.layers}
    assert again.outputs == model.outputs
    assert (again.total_params, again.trainable_params) == (
        model.total_params,
        model.trainable_params,
    )
    second = targets.get("onnx").emit(again, weights=result.weights)
    rng = np.random.default_rng(0)
    feed = {
        t.name: rng.integers(0, 16, size=(3, *t.shape)).astype(t.dtype)  # token ids
        if t.dtype.startswith("int")
        else rng.normal(size=(3, *t.shape)).astype(np.float32)
        for t in model.inputs
    }
    a = ort.InferenceSession(str(first), providers=["CPUExecutionProvider"]).run(None, feed)
    b = ort.InferenceSession(second, providers=["CPUExecutionProvider"]).run(None, feed)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _export(torch, module, shape, path):
    module.eval()
    torch.onnx.export(
        module, (torch.randn(1, *shape),), str(path), dynamo=False, input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17,
    )  # fmt: skip


@pytest.mark.slow
def test_pytorch_cnn_with_batchnorm_and_residual_imports(torch, tmp_path):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.head = nn.Linear(8 * 4 * 4, 5)

        def forward(self, x):
            y = torch.relu(self.bn(self.stem(x)))
            y = y + self.conv(y)
            y = nn.functional.max_pool2d(y, 2)
            return self.head(torch.flatten(y, 1))  # NCHW order: the importer permutes rows

    net = Net()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    _export(torch, net, (3, 16, 16), tmp_path / "cnn.onnx")
    result = import_model(tmp_path / "cnn.onnx")
    # torch's symmetric padding 1 at stride 2 is not TF's 'same' (0 before, 1 after) here:
    # an explicit ZeroPadding2D then a 'valid' convolution (BN folded in by the exporter)
    assert [layer["type"] for layer in result.spec["layers"]] == [
        "ZeroPadding2D", "Conv2D", "Conv2D", "Add", "MaxPooling2D", "Flatten", "Dense"
    ]  # fmt: skip
    assert result.spec["inputs"] == [{"name": "x", "shape": [16, 16, 3]}]
    _assert_check_passes(tmp_path / "cnn.onnx")


@pytest.mark.slow
def test_pytorch_mlp_imports(torch, tmp_path):
    nn = torch.nn
    net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.Sigmoid(),
                        nn.Linear(16, 3), nn.Softmax(dim=1))  # fmt: skip
    _export(torch, net, (12,), tmp_path / "mlp.onnx")
    result = import_model(tmp_path / "mlp.onnx")
    assert [(layer["type"], layer.get("activation")) for layer in result.spec["layers"]] == [
        ("Dense", "relu"), ("Dense", "sigmoid"), ("Dense", "softmax")
    ]  # fmt: skip
    _assert_check_passes(tmp_path / "mlp.onnx")


@pytest.mark.slow
def test_pytorch_hard_activations_import(torch, tmp_path):
    """HardSwish, HardSigmoid (alpha 1/6: Keras's) and mish (Softplus, Tanh, Mul)."""
    nn = torch.nn
    net = nn.Sequential(nn.Linear(4, 6), nn.Hardswish(), nn.Linear(6, 6), nn.Hardsigmoid(),
                        nn.Linear(6, 3), nn.Mish())  # fmt: skip
    _export(torch, net, (4,), tmp_path / "hard.onnx")
    result = import_model(tmp_path / "hard.onnx")
    assert [layer.get("activation") for layer in result.spec["layers"]] == [
        "hard_silu", "hard_sigmoid", "mish"
    ]  # fmt: skip
    _assert_check_passes(tmp_path / "hard.onnx")


@pytest.mark.slow
def test_pytorch_view_flatten_imports(torch, tmp_path):
    """x.view(x.size(0), -1): the Reshape's target computed from the input's shape (batch
    first, then constants) is a Flatten."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 6 * 6, 5)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            return self.fc(y.view(y.size(0), -1))

    _export(torch, Net(), (3, 8, 8), tmp_path / "view.onnx")
    result = import_model(tmp_path / "view.onnx")
    assert [e["type"] for e in result.spec["layers"]] == ["Conv2D", "Flatten", "Dense"]
    _assert_check_passes(tmp_path / "view.onnx")


@pytest.mark.slow
def test_pytorch_recurrent_modules_import(torch, tmp_path):
    """nn.LSTM / nn.GRU as torch.onnx exports them: zero initial states built from the
    input's shape, both biases, the last output y[:, -1] or the last state h[-1]."""
    nn = torch.nn

    class Last(nn.Module):
        def __init__(self, rnn, pick):
            super().__init__()
            self.rnn, self.pick, self.head = rnn, pick, nn.Linear(5, 3)

        def forward(self, x):
            y, state = self.rnn(x)
            h = state[0] if isinstance(state, tuple) else state
            return self.head(y[:, -1] if self.pick == "y" else h[-1])

    for kind, pick in (("LSTM", "y"), ("GRU", "h")):
        net = Last(getattr(nn, kind)(4, 5, batch_first=True), pick)
        with torch.no_grad():  # biases as trained ones are: not zero
            for p in net.parameters():
                p.uniform_(-0.5, 0.5)
        path = tmp_path / f"{kind}.onnx"
        _export(torch, net, (6, 4), path)
        result = import_model(path)
        assert [(e["type"], e["name"]) for e in result.spec["layers"]] == [
            (kind, "rnn"), ("Dense", "y")
        ]  # fmt: skip
        assert check_data(result.spec).model.total_params == (
            sum(p.numel() for p in net.parameters()) - {"LSTM": 4, "GRU": 0}[kind] * 5
        )  # Keras's LSTM holds one bias (PyTorch's two are added); the GRU both (reset_after)
        _assert_check_passes(path)
    bi = nn.LSTM(4, 5, batch_first=True, bidirectional=True)

    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = bi

        def forward(self, x):
            return self.rnn(x)[1][0].transpose(0, 1).reshape(x.shape[0], -1)

    class Cat(nn.Module):  # the usual bidirectional classifier: both last states
        def __init__(self):
            super().__init__()
            self.rnn = bi

        def forward(self, x):
            h = self.rnn(x)[1][0]
            return torch.cat((h[-2], h[-1]), dim=1)

    _export(torch, Cat(), (6, 4), tmp_path / "cat.onnx")
    result = import_model(tmp_path / "cat.onnx")
    assert result.spec["layers"] == [
        {"type": "Bidirectional", "name": "y", "layer": {"type": "LSTM", "units": 5}}
    ]
    _assert_check_passes(tmp_path / "cat.onnx")
    _export(torch, Both(), (6, 4), tmp_path / "bi.onnx")
    with pytest.raises(ImportRefused) as caught:
        import_model(tmp_path / "bi.onnx")
    assert caught.value.items[0].startswith(
        "node '/rnn/LSTM' (LSTM): its outputs are not read as a Keras layer returns them"
    )


def test_unsupported_onnx_operators_are_listed(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r"),
        helper.make_node("Cos", ["a"], ["b"], name="cos1"),
        helper.make_node("Cos", ["b"], ["c"], name="cos2"),
        helper.make_node("Erf", ["c"], ["y"], name="erf"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )  # fmt: skip
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "g.onnx"
    )
    result = CliRunner().invoke(app, ["import", str(tmp_path / "g.onnx")])
    assert result.exit_code == 1
    assert "ONNX operator Cos is not supported by specc: 2 nodes ('cos1', 'cos2')" in result.stderr
    assert "Traceback" not in result.output


def test_writer_quotes_what_yaml_would_misread():
    spec = {"version": 1, "name": "m", "description": "yes: no # not a comment",
            "inputs": [{"name": "on", "shape": [2]}], "layers": [{"type": "Dense", "units": 1}]}  # fmt: skip
    text = spec_yaml(spec)
    assert yaml.safe_load(text) == spec
    assert (ROOT / "specs").is_dir()


def _seq(layers: list, shape=(6, 4), dtype=None) -> dict:
    inp = {"name": "x", "shape": list(shape)} | ({"dtype": dtype} if dtype else {})
    return {"version": 1, "name": "m", "inputs": [inp], "layers": layers}


def _two(layer: dict, shapes=((6, 4), (5, 4))) -> dict:
    return {
        "version": 1,
        "name": "m",
        "inputs": [{"name": f"in{k}", "shape": list(s)} for k, s in enumerate(shapes)],
        "layers": [{**layer, "name": "att", "inputs": [f"in{k}" for k in range(len(shapes))]}],
    }


#: specs whose ONNX graphs use every variant of the multi-node patterns (fast: no framework)
PATTERNS = {
    "gru_sequences": _seq([{"type": "GRU", "name": "g", "units": 5, "return_sequences": True}]),
    "gru_reset_before": _seq(
        [{"type": "GRU", "name": "g", "units": 5, "reset_after": False, "activation": "relu"}]
    ),  # fmt: skip
    "rnn_backwards": _seq(
        [{"type": "SimpleRNN", "name": "r", "units": 3, "go_backwards": True, "use_bias": False}]
    ),  # fmt: skip
    "lstm_backwards_sequences": _seq(
        [
            {
                "type": "LSTM",
                "name": "l",
                "units": 3,
                "go_backwards": True,
                "return_sequences": True,
                "recurrent_activation": "tanh",
            }
        ]
    ),  # fmt: skip
    "bidirectional_ave": _seq(
        [
            {
                "type": "Bidirectional",
                "name": "b",
                "merge_mode": "ave",
                "layer": {"type": "GRU", "units": 3, "return_sequences": True},
            }
        ]
    ),  # fmt: skip
    "bidirectional_sum": _seq(
        [
            {
                "type": "Bidirectional",
                "name": "b",
                "merge_mode": "sum",
                "layer": {"type": "SimpleRNN", "units": 3},
            }
        ]
    ),  # fmt: skip
    "bidirectional_mul": _seq(
        [
            {
                "type": "Bidirectional",
                "name": "b",
                "merge_mode": "mul",
                "layer": {"type": "LSTM", "units": 3},
            }
        ]
    ),  # fmt: skip
    "mha_causal_cross": {
        "version": 1,
        "name": "m",
        "inputs": [
            {"name": "q", "shape": [6, 4]},
            {"name": "v", "shape": [5, 3]},
            {"name": "k", "shape": [5, 2]},
        ],
        "layers": [
            {
                "type": "MultiHeadAttention",
                "name": "mha",
                "inputs": ["q", "v", "k"],
                "num_heads": 3,
                "key_dim": 2,
                "value_dim": 5,
                "output_shape": 7,
                "use_bias": False,
            }
        ],
    },  # fmt: skip
    "mha_causal": _seq(
        [
            {
                "type": "MultiHeadAttention",
                "name": "mha",
                "inputs": ["x", "x"],
                "num_heads": 2,
                "key_dim": 3,
                "use_causal_mask": True,
            }
        ]
    ),  # fmt: skip
    "attention_dot": _two(
        {"type": "Attention", "use_scale": True, "use_causal_mask": True}, ((6, 4), (6, 4))
    ),  # fmt: skip
    "attention_concat": _two(
        {"type": "Attention", "score_mode": "concat", "use_scale": True}, ((6, 4), (5, 4), (5, 4))
    ),  # fmt: skip
    "additive_attention": _two({"type": "AdditiveAttention"}),
    "additive_attention_unscaled": _two({"type": "AdditiveAttention", "use_scale": False}),
    "normalization_fields": _seq(
        [
            {
                "type": "Normalization",
                "name": "n",
                "mean": [0.5, 1, 2, 3],
                "variance": [4.0, 1, 0.25, 2],
            }
        ]
    ),  # fmt: skip
    "normalization_axes": _seq([{"type": "Normalization", "name": "n", "axis": [1, 2]}]),
    "normalization_scalar_inverted": _seq(
        [
            {
                "type": "Normalization",
                "name": "n",
                "axis": None,
                "mean": 3.0,
                "variance": 2.0,
                "invert": True,
            }
        ]
    ),  # fmt: skip
    "rescaling_offset": _seq([{"type": "Rescaling", "name": "r", "scale": 0.5, "offset": -1.0}]),
    "embedding_float_ids": _seq(
        [{"type": "Embedding", "name": "e", "input_dim": 9, "output_dim": 3}], (5,)
    ),
    "cropping_1d": _seq([{"type": "Cropping1D", "name": "c", "cropping": [1, 2]}], (8, 3)),
    "cropping_2d": {
        "version": 1,
        "name": "m",
        "inputs": [{"name": "x", "shape": [7, 6, 2]}],
        "layers": [
            {"type": "Conv2D", "name": "c", "filters": 3, "kernel_size": 1},
            {"type": "Cropping2D", "name": "crop", "cropping": [[1, 0], [2, 1]]},
            {"type": "Flatten", "name": "f"},
        ],
    },  # fmt: skip
    "zero_padding_1d": _seq([{"type": "ZeroPadding1D", "name": "z", "padding": [2, 1]}]),
    "softmax_axis": _seq([{"type": "Softmax", "name": "s", "axis": 1}]),
    "activations_from_the_table": _seq(
        [
            {"type": "Activation", "name": "a", "activation": "softsign"},
            {"type": "Activation", "name": "b", "activation": "exponential"},
            {"type": "Activation", "name": "c", "activation": "log_softmax"},
        ]
    ),  # fmt: skip
    "activations_in_several_nodes": _seq(
        [
            {"type": "Dense", "name": "a", "units": 4, "activation": "hard_sigmoid"},
            {"type": "Dense", "name": "b", "units": 4, "activation": "hard_silu"},
            {"type": "Dense", "name": "c", "units": 4, "activation": "mish"},
        ],
        (4,),
    ),  # fmt: skip
    "squeeze_excite": {
        "version": 1,
        "name": "m",
        "inputs": [{"name": "x", "shape": [6, 6, 4]}],
        "layers": [
            {"type": "Conv2D", "name": "c", "filters": 4, "kernel_size": 3},
            {"type": "GlobalAveragePooling2D", "name": "p", "keepdims": True},
            {"type": "Multiply", "name": "m", "inputs": ["c", "p"]},
        ],
    },  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_onnx_patterns_round_trip(name, tmp_path):
    """spec -> ONNX -> spec -> ONNX: the same layer types, fields, counts and outputs."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from specc import targets
    from specc import weights as W

    model = check_data(PATTERNS[name]).model
    weights = W.random_weights(model, 1)
    first = tmp_path / "first.onnx"
    first.write_bytes(targets.get("onnx").emit(model, weights=weights))
    result = import_model(first)
    again = check_data(result.spec).model
    assert [(layer.name, layer.type) for layer in again.layers] == [
        (layer.name, layer.type) for layer in model.layers
    ]
    for before, after in zip(model.layers, again.layers):  # every field the spec gave
        assert before.spec.model_dump() == after.spec.model_dump(), before.name
    assert again.total_params == model.total_params
    for key, array in weights.items():
        if not key.endswith("/count"):  # Normalization's count is not in the graph
            np.testing.assert_array_equal(result.weights[key], array.astype(np.float32), key)
    second = targets.get("onnx").emit(again, weights=result.weights)
    rng = np.random.default_rng(0)
    feed = {t.name: rng.normal(size=(2, *t.shape)).astype(np.float32) * 3 for t in model.inputs}
    a = ort.InferenceSession(str(first), providers=["CPUExecutionProvider"]).run(None, feed)
    b = ort.InferenceSession(second, providers=["CPUExecutionProvider"]).run(None, feed)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=1e-5)


def test_onnx_patterns_that_do_not_match_are_refused(tmp_path):
    """A subgraph that is almost one of specc's: refused by node name, never mis-imported."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from specc import targets
    from specc import weights as W

    def graph_of(name):
        model = check_data(PATTERNS[name]).model
        return onnx.load_from_string(
            targets.get("onnx").emit(model, weights=W.random_weights(model, 1))
        )

    proto = graph_of("mha_causal")  # the query scaled by 0.5, not 1/sqrt(key_dim 3)
    for k, tensor in enumerate(proto.graph.initializer):
        if tensor.name == "mha.scale":
            proto.graph.initializer[k].CopyFrom(
                numpy_helper.from_array(np.float32(0.5), "mha.scale")
            )
    onnx.save(proto, tmp_path / "scaled.onnx")
    with pytest.raises(ImportRefused) as caught:
        import_model(tmp_path / "scaled.onnx")
    assert caught.value.items == [
        "node 'mha/query_scaled' (Mul): scores scaled by 0.5, not 1/sqrt(key_dim 3)"
    ]
    proto = graph_of("gru_sequences")  # a clip Keras's GRU has no field for
    proto.graph.node[1].attribute.append(helper.make_attribute("clip", 3.0))
    onnx.save(proto, tmp_path / "clipped.onnx")
    with pytest.raises(ImportRefused) as caught:
        import_model(tmp_path / "clipped.onnx")
    assert caught.value.items == ["node 'g/gru' (GRU): attribute clip cannot be expressed"]
    proto = graph_of("mha_causal")  # an equation written otherwise: not specc's, refused
    for node in proto.graph.node:
        if node.name == "mha/output":
            node.attribute[0].CopyFrom(helper.make_attribute("equation", "wxyz,yzv->wxv"))
    onnx.save(proto, tmp_path / "other.onnx")
    with pytest.raises(ImportRefused) as caught:
        import_model(tmp_path / "other.onnx")
    assert caught.value.items == [
        "ONNX operator Einsum is not supported by specc: 3 nodes ('mha/query', 'mha/key', "
        "'mha/value')"
    ]


def _unit(prefix: str, filters: int, pad: int) -> list[dict]:
    return [
        {"type": "ZeroPadding2D", "name": f"{prefix}_pad", "padding": [[pad, pad], [0, pad]]},
        {"type": "Conv2D", "name": f"{prefix}_conv", "filters": filters, "kernel_size": 3},
        {"type": "BatchNormalization", "name": f"{prefix}_bn", "epsilon": 0.001},
        {"type": "ReLU", "name": f"{prefix}_relu"},
    ]


def test_blocks_fold_repeated_structures(tmp_path):
    from specc.importers.fold_blocks import fold_blocks

    flat = {
        "version": 1, "name": "units", "inputs": [{"name": "img", "shape": [16, 16, 3]}],
        "layers": [*_unit("stage1", 8, 2), *_unit("stage2", 16, 1), *_unit("stage3", 16, 1),
                   {"type": "GlobalAveragePooling2D", "name": "pool"}],
    }  # fmt: skip
    folded, notes = fold_blocks(flat)
    assert notes == ["--blocks: 12 of 13 layers folded into 1 blocks (3 instances)"]
    assert folded["blocks"]["stage"]["params"] == {"padding": "int", "filters": "int"}
    assert folded["blocks"]["stage"]["layers"][0]["padding"] == [
        ["$padding", "$padding"], [0, "$padding"]
    ]  # fmt: skip
    assert folded["layers"] == [
        {"type": "stage", "name": "stage1", "padding": 2, "filters": 8},
        {"type": "stage", "name": "stage2", "padding": 1, "filters": 16},
        {"type": "stage", "name": "stage3", "padding": 1, "filters": 16},
        {"type": "GlobalAveragePooling2D", "name": "pool"},
    ]
    a, b = check_data(flat).model, check_data(yaml.safe_load(spec_yaml(folded))).model
    assert [(x.name, x.inputs, x.output_shape) for x in a.layers] == [
        (x.name, x.inputs, x.output_shape) for x in b.layers
    ]
    # a run read from outside by a layer that is not its last is no instance
    flat["layers"][-1]["inputs"] = ["stage2_bn"]
    folded, notes = fold_blocks(flat)
    assert notes == ["--blocks: 8 of 13 layers folded into 1 blocks (2 instances)"]
    assert [e["name"] for e in folded["layers"]][:6] == [
        "stage1", "stage2_pad", "stage2_conv", "stage2_bn", "stage2_relu", "stage3"
    ]  # fmt: skip
    flat["layers"] = flat["layers"][:4] + flat["layers"][-1:]
    flat["layers"][-1]["inputs"] = ["stage1_relu"]
    assert fold_blocks(flat)[1] == ["--blocks: no repeated structure to fold"]


def test_cli_import_blocks(tmp_path):
    layers = [_layer("InputLayer", "img", batch_shape=[None, 8, 8, 3])]
    previous = "img"
    for k, filters in enumerate((4, 8, 8), start=1):
        layers += [
            _layer("Conv2D", f"b{k}_conv", [previous], filters=filters, kernel_size=[3, 3],
                   padding="same"),
            _layer("ReLU", f"b{k}_relu", [f"b{k}_conv"]),
        ]  # fmt: skip
        previous = f"b{k}_relu"
    config = {"class_name": "Functional", "config": {"name": "m", "layers": layers,
              "input_layers": [["img", 0, 0]], "output_layers": [[previous, 0, 0]]}}  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps(config))
    result = CliRunner().invoke(app, ["import", str(tmp_path / "m.json"), "--blocks"])
    assert result.exit_code == 0, result.output
    assert "6 of 6 layers folded into 1 blocks (3 instances)" in result.stderr
    spec = yaml.safe_load(result.stdout)
    assert list(spec["blocks"]) == ["b"] and [e["name"] for e in spec["layers"]] == [
        "b1",
        "b2",
        "b3",
    ]
    assert check_data(spec).model.total_params == (27 * 4 + 4) + (36 * 8 + 8) + (72 * 8 + 8)


def test_a_transposition_is_refused_not_misread(tmp_path):
    """Permute writes a Transpose that looks like a layout change: the Dense after it (a
    MatMul over the permuted last axis) is refused, never imported over the wrong axis."""
    pytest.importorskip("onnx")
    from specc import targets
    from specc import weights as W

    spec = _seq([{"type": "Permute", "name": "p", "dims": [2, 1]},
                 {"type": "Dense", "name": "d", "units": 4}], (5, 3))  # fmt: skip
    model = check_data(spec).model
    path = tmp_path / "permute.onnx"
    path.write_bytes(targets.get("onnx").emit(model, weights=W.random_weights(model, 1)))
    with pytest.raises(ImportRefused) as caught:
        import_model(path)
    assert caught.value.items == [
        "node 'd/matmul' (MatMul): multiplies a channels-first tensor along its last axis (a "
        "transposition of its axes, which specc does not import)"
    ]
