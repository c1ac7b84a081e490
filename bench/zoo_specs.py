"""Write the benchmark zoo as flat specc specs (bench/specs/*.yaml), layer for layer as
keras.applications builds them: VGG16, ResNet50 (v1, with conv biases and BN epsilon 1.001e-5
as Keras has), MobileNetV2 (alpha 1.0), and a 400-layer flat MLP-style chain for the
cold-check benchmark. Run: python bench/zoo_specs.py (idempotent; the files are committed).

Parameter counts are checked against Keras's published ones by ``specc summary`` in
tests/test_bench_smoke.py (VGG16 138,357,544; ResNet50 25,636,712; MobileNetV2 3,538,984).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent / "specs"


def _spec(name, description, shape, layers, classes=1000):
    return {
        "version": 1,
        "name": name,
        "description": description,
        "inputs": [{"name": "image", "shape": list(shape)}],
        "layers": layers,
    }


def vgg16():
    layers = []
    blocks = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
    for b, (convs, filters) in enumerate(blocks, start=1):
        for c in range(1, convs + 1):
            layers.append(
                {"type": "Conv2D", "name": f"block{b}_conv{c}", "filters": filters,
                 "kernel_size": 3, "padding": "same", "activation": "relu"}
            )  # fmt: skip
        layers.append(
            {"type": "MaxPooling2D", "name": f"block{b}_pool", "pool_size": 2, "strides": 2}
        )
    layers += [
        {"type": "Flatten", "name": "flatten"},
        {"type": "Dense", "name": "fc1", "units": 4096, "activation": "relu"},
        {"type": "Dense", "name": "fc2", "units": 4096, "activation": "relu"},
        {"type": "Dense", "name": "predictions", "units": 1000, "activation": "softmax"},
    ]
    return _spec(
        "vgg16", "keras.applications.VGG16 (include_top, 1000 classes).", (224, 224, 3), layers
    )


def resnet50():
    eps = 1.001e-5
    layers = [
        {"type": "ZeroPadding2D", "name": "conv1_pad", "padding": 3},
        {"type": "Conv2D", "name": "conv1_conv", "filters": 64, "kernel_size": 7, "strides": 2},
        {"type": "BatchNormalization", "name": "conv1_bn", "epsilon": eps},
        {"type": "Activation", "name": "conv1_relu", "activation": "relu"},
        {"type": "ZeroPadding2D", "name": "pool1_pad", "padding": 1},
        {"type": "MaxPooling2D", "name": "pool1_pool", "pool_size": 3, "strides": 2},
    ]
    x = "pool1_pool"

    def block(x, filters, name, stride=1, shortcut=True):
        out = []
        if shortcut:
            out += [
                {"type": "Conv2D", "name": f"{name}_0_conv", "inputs": [x], "filters": 4 * filters,
                 "kernel_size": 1, "strides": stride},
                {"type": "BatchNormalization", "name": f"{name}_0_bn", "epsilon": eps},
            ]  # fmt: skip
            short = f"{name}_0_bn"
        else:
            short = x
        out += [
            {"type": "Conv2D", "name": f"{name}_1_conv", "inputs": [x], "filters": filters,
             "kernel_size": 1, "strides": stride},
            {"type": "BatchNormalization", "name": f"{name}_1_bn", "epsilon": eps},
            {"type": "Activation", "name": f"{name}_1_relu", "activation": "relu"},
            {"type": "Conv2D", "name": f"{name}_2_conv", "filters": filters, "kernel_size": 3,
             "padding": "same"},
            {"type": "BatchNormalization", "name": f"{name}_2_bn", "epsilon": eps},
            {"type": "Activation", "name": f"{name}_2_relu", "activation": "relu"},
            {"type": "Conv2D", "name": f"{name}_3_conv", "filters": 4 * filters, "kernel_size": 1},
            {"type": "BatchNormalization", "name": f"{name}_3_bn", "epsilon": eps},
            {"type": "Add", "name": f"{name}_add", "inputs": [short, f"{name}_3_bn"]},
            {"type": "Activation", "name": f"{name}_out", "activation": "relu"},
        ]  # fmt: skip
        return out, f"{name}_out"

    for stage, (filters, blocks, stride) in enumerate(
        [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=2
    ):
        for k in range(1, blocks + 1):
            new, x = block(x, filters, f"conv{stage}_block{k}", stride if k == 1 else 1, k == 1)
            layers += new
    layers += [
        {"type": "GlobalAveragePooling2D", "name": "avg_pool"},
        {"type": "Dense", "name": "predictions", "units": 1000, "activation": "softmax"},
    ]
    return _spec(
        "resnet50",
        "keras.applications.ResNet50 (include_top, 1000 classes).",
        (224, 224, 3),
        layers,
    )


def mobilenet_v2():
    def divisible(v, d=8):
        new = max(d, int(v + d / 2) // d * d)
        return new + d if new < 0.9 * v else new

    eps, mom = 1e-3, 0.999
    first = divisible(32)
    layers = [
        {"type": "Conv2D", "name": "Conv1", "filters": first, "kernel_size": 3, "strides": 2,
         "padding": "same", "use_bias": False},
        {"type": "BatchNormalization", "name": "bn_Conv1", "epsilon": eps, "momentum": mom},
        {"type": "ReLU", "name": "Conv1_relu", "max_value": 6.0},
    ]  # fmt: skip
    x, channels, block_id = "Conv1_relu", first, 0
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip
    for expansion, filters, repeats, stride in settings:
        for r in range(repeats):
            s = stride if r == 0 else 1
            out = divisible(filters)
            prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
            start = x
            if block_id:
                layers += [
                    {"type": "Conv2D", "name": prefix + "expand", "filters": expansion * channels,
                     "kernel_size": 1, "padding": "same", "use_bias": False},
                    {"type": "BatchNormalization", "name": prefix + "expand_BN", "epsilon": eps,
                     "momentum": mom},
                    {"type": "ReLU", "name": prefix + "expand_relu", "max_value": 6.0},
                ]  # fmt: skip
            if s == 2:
                layers.append(
                    {"type": "ZeroPadding2D", "name": prefix + "pad", "padding": [[0, 1], [0, 1]]}
                )
            layers += [
                {"type": "DepthwiseConv2D", "name": prefix + "depthwise", "kernel_size": 3,
                 "strides": s, "use_bias": False, "padding": "same" if s == 1 else "valid"},
                {"type": "BatchNormalization", "name": prefix + "depthwise_BN", "epsilon": eps,
                 "momentum": mom},
                {"type": "ReLU", "name": prefix + "depthwise_relu", "max_value": 6.0},
                {"type": "Conv2D", "name": prefix + "project", "filters": out, "kernel_size": 1,
                 "padding": "same", "use_bias": False},
                {"type": "BatchNormalization", "name": prefix + "project_BN", "epsilon": eps,
                 "momentum": mom},
            ]  # fmt: skip
            x = prefix + "project_BN"
            if channels == out and s == 1:
                layers.append({"type": "Add", "name": prefix + "add", "inputs": [start, x]})
                x = prefix + "add"
            channels = out
            block_id += 1
    layers += [
        {"type": "Conv2D", "name": "Conv_1", "filters": 1280, "kernel_size": 1, "use_bias": False},
        {"type": "BatchNormalization", "name": "Conv_1_bn", "epsilon": eps, "momentum": mom},
        {"type": "ReLU", "name": "out_relu", "max_value": 6.0},
        {"type": "GlobalAveragePooling2D", "name": "global_average_pooling2d"},
        {"type": "Dense", "name": "predictions", "units": 1000, "activation": "softmax"},
    ]
    return _spec(
        "mobilenet_v2",
        "keras.applications.MobileNetV2 (alpha 1.0, include_top).",
        (224, 224, 3),
        layers,
    )


def flat400():
    layers = []
    for k in range(200):
        layers.append({"type": "Dense", "name": f"dense_{k}", "units": 64, "activation": "relu"})
        layers.append({"type": "Dropout", "name": f"drop_{k}", "rate": 0.1})
    return _spec("flat400", "400 layers in a chain (cold-check benchmark).", (64,), layers)


ZOO = {"vgg16": vgg16, "resnet50": resnet50, "mobilenet_v2": mobilenet_v2, "flat400": flat400}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, make in ZOO.items():
        text = "# generated by bench/zoo_specs.py; edit that script, not this file\n"
        text += yaml.safe_dump(make(), sort_keys=False, default_flow_style=None, width=100)
        (OUT / f"{name}.yaml").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
