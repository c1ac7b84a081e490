"""Write a Keras Applications model (built with ``weights=None``) as a flat specc spec.

    python -m tests.keras_app_to_spec EfficientNetB0 specs/efficientnet_b0.yaml
    python -m tests.keras_app_to_spec InceptionV3 specs/inception_v3.yaml

Every layer becomes one spec line: Keras's class name, its name, its inputs, and each
constructor argument specc knows whose value differs from specc's default (which is
Keras's). tests/test_keras_applications.py checks that the committed specs are what this
script writes, and that specc counts them exactly as Keras does.
"""

from __future__ import annotations

import sys

import yaml

from specc.layers import LAYER_TYPES

#: Keras initializer classes that are specc's initializer names
_NAMED = {
    "Zeros": "zeros",
    "Ones": "ones",
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
}


def _value(value):
    if isinstance(value, dict) and "class_name" in value:  # a serialized initializer
        name = value["class_name"]
        if name in _NAMED:
            return _NAMED[name]
        config = {k: v for k, v in value["config"].items() if v is not None}
        config.pop("input_axes", None)
        config.pop("output_axes", None)
        return {"type": name, **config}
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def layer_spec(layer, inputs: list[str]) -> dict:
    kind = type(layer).__name__
    cls = LAYER_TYPES[kind]
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"{layer.name}: channels-first layers are not written")
    out = {"type": kind, "name": layer.name}
    for field, info in cls.model_fields.items():
        if field in ("type", "name", "inputs") or field not in config:
            continue
        value = _value(config[field])
        if kind == "Normalization" and field == "axis" and isinstance(value, list):
            value = value[0] if len(value) == 1 else value
        default = info.get_default()
        if isinstance(default, tuple):
            default = _value(default)
        if value == default:
            continue
        out[field] = value
    out["inputs"] = inputs
    return out


def model_spec(model, name: str, description: str) -> dict:
    inputs = [
        {"name": layer.name, "shape": list(layer.batch_shape[1:])}
        for layer in model.layers
        if type(layer).__name__ == "InputLayer"
    ]
    layers = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        node = layer._inbound_nodes[0]
        sources = [t._keras_history.operation.name for t in node.input_tensors]
        layers.append(layer_spec(layer, sources))
    return {
        "version": 1,
        "name": name,
        "description": description,
        "inputs": inputs,
        "layers": layers,
        "outputs": [model.layers[-1].name],
    }


def dump(spec: dict) -> str:
    """YAML with one line per layer (flow style inside the layer list)."""
    head = {k: v for k, v in spec.items() if k not in ("inputs", "layers")}
    text = yaml.safe_dump(head, sort_keys=False, width=100)
    lines = ["inputs:"]
    for tensor in spec["inputs"]:
        flow = yaml.safe_dump(tensor, sort_keys=False, default_flow_style=True, width=10_000)
        lines.append("  - " + flow.strip())
    lines.append("layers:")
    for layer in spec["layers"]:
        flow = yaml.safe_dump(layer, sort_keys=False, default_flow_style=True, width=10_000)
        lines.append("  - " + flow.strip())
    return text + "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    app, path = argv
    import keras

    model = getattr(keras.applications, app)(weights=None)
    spec = model_spec(
        model,
        model.name,
        f"keras.applications.{app}(weights=None), written layer by layer by "
        "tests/keras_app_to_spec.py.",
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(dump(spec))


if __name__ == "__main__":
    main(sys.argv[1:])
