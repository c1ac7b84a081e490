"""GPU benchmark: the PyTorch code specc generates against the reference models.

    python bench/gpu_bench.py            # on a machine with CUDA; under 3 minutes on one GPU
    python bench/gpu_bench.py --json out.json [--compile] [--batch 128]
    make gpu-bench

Measures images/s of training steps (forward, cross-entropy, backward, SGD with momentum) and
of inference, in bf16 autocast, with and without ``memory_format=torch.channels_last``, for
  * ResNet50: bench/specs/resnet50.yaml (keras.applications.ResNet50, layer for layer) vs
    torchvision's resnet50 (v1.5: stride on the 3x3; no conv biases),
  * MobileNetV2: bench/specs/mobilenet_v2.yaml vs torchvision's mobilenet_v2,
  * the MNIST CNN: specs/mnist_cnn.yaml vs the hand-written model of bench/baselines,
and checks that the generated models give the same outputs on CPU and GPU (fp32, TF32 off,
eval and training mode, running statistics included). The generated models end in logits
here (the spec's final softmax dropped) so both sides use the same loss. Without torchvision
the references are the torchvision architectures written out below (same modules).

Without a CUDA device it prints one line saying so and exits 0. ``--cpu-smoke`` runs every
code path on the CPU at toy sizes (what tests/test_bench_smoke.py does).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- references


def _reference_models():
    """name -> constructor of the reference model (NCHW input, logits out)."""
    from torch import nn

    try:
        import torchvision

        return {
            "resnet50": lambda: torchvision.models.resnet50(weights=None),
            "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
        }, f"torchvision {torchvision.__version__}"
    except ImportError:
        pass

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(width * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            out += identity
            return self.relu(out)

    class ResNet50(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            stages, cin = [], 64
            for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                down = nn.Sequential(
                    nn.Conv2d(cin, width * 4, 1, stride, bias=False), nn.BatchNorm2d(width * 4)
                )
                layers = [Bottleneck(cin, width, stride, down)]
                layers += [Bottleneck(width * 4, width, 1, None) for _ in range(blocks - 1)]
                stages.append(nn.Sequential(*layers))
                cin = width * 4
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2048, 1000)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    def conv_bn(cin, cout, k, stride, groups=1, act=True):
        layers = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        return nn.Sequential(*layers, *([nn.ReLU6(inplace=True)] if act else []))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            self.use_res = stride == 1 and cin == cout
            layers = [conv_bn(cin, hidden, 1, 1)] if expand != 1 else []
            layers += [
                conv_bn(hidden, hidden, 3, stride, hidden),
                conv_bn(hidden, cout, 1, 1, act=False),
            ]
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            features, cin = [conv_bn(3, 32, 3, 2)], 32
            for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):  # fmt: skip
                for i in range(n):
                    features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            features.append(conv_bn(cin, 1280, 1, 1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
            return self.classifier(x)

    return {
        "resnet50": ResNet50,
        "mobilenet_v2": MobileNetV2,
    }, "torchvision architectures written out (no torchvision installed)"


# --------------------------------------------------------------------------- generated


def _generated_class(spec_path: Path, folder: Path):
    """The nn.Module class specc generates for ``spec_path``, ending in logits."""
    import yaml

    from specc.codegen import generate
    from specc.pipeline import check_data
    from specc.targets.pytorch.codegen import plan

    data = yaml.safe_load(spec_path.read_text())
    last = data["layers"][-1]
    if last.get("activation") == "softmax":
        last["activation"] = "linear"
    data.pop("training", None)
    result = check_data(data, file=spec_path.name)
    assert result.ok, [d.format() for d in result.diagnostics]
    code = generate(result.model, "pytorch")
    path = folder / f"gen_{result.model.name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, plan(result.model).class_name), result.model


# --------------------------------------------------------------------------- timing


def _throughput(step, batch: int, device, warmup: int, iters: int, repeats: int = 3) -> float:
    """Median images/s over ``repeats`` timed runs of ``iters`` steps, after ``warmup``."""
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        rates.append(batch * iters / (time.perf_counter() - start))
    return statistics.median(rates)


def _measure(model, x, y, device, channels_last, train, amp_dtype, warmup, iters, compile_,
             repeats=3):  # fmt: skip
    import torch
    import torch.nn.functional as F

    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        if x.dim() == 4 and x.shape[1] in (1, 3):  # an NCHW reference input
            x = x.contiguous(memory_format=torch.channels_last)
    run = torch.compile(model) if compile_ else model
    # the CPU smoke run checks the code paths in fp32 (CPU bf16 convolutions are slow)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=device.type == "cuda")
    if train:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(run(x), y)
            loss.backward()
            optimizer.step()

    else:
        model.eval()

        def step():
            with torch.no_grad(), autocast:
                run(x)

    return _throughput(step, x.shape[0], device, warmup, iters, repeats)


def _agreement(cls, shape, seed=0) -> dict:
    """Max |CPU - GPU| of the generated model in fp32 (TF32 off): eval outputs, training-mode
    outputs and the running statistics after that training step."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(seed)
    cpu = cls()
    gpu = cls()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(seed))
    out = {}
    with torch.no_grad():
        cpu.eval(), gpu.eval()
        want, got = cpu(x), gpu(x.cuda()).cpu()
        out["eval"] = float((want - got).abs().max() / want.abs().max().clamp_min(1e-12))
        cpu.train(), gpu.train()
        want, got = cpu(x), gpu(x.cuda()).cpu()
        out["train"] = float((want - got).abs().max() / want.abs().max().clamp_min(1e-12))
    stats = [
        float((a - b.cpu()).abs().max())
        for (name, a), (_, b) in zip(cpu.state_dict().items(), gpu.state_dict().items())
        if name.endswith(("running_mean", "running_var"))
    ]
    out["running_stats"] = max(stats) if stats else 0.0
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return out


# --------------------------------------------------------------------------- main


def run(args) -> dict:
    import torch

    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    smoke = args.cpu_smoke
    image = 32 if smoke else 224
    batch = 2 if smoke else args.batch
    warmup, iters, repeats = (1, 1, 1) if smoke else (args.warmup, args.iters, 3)
    torch.backends.cudnn.benchmark = True
    references, reference_label = _reference_models()
    results = {
        "device": "cpu (smoke run)" if smoke else torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "reference": reference_label,
        "batch": batch,
        "image": image,
        "dtype": "float32 (smoke run)" if smoke else "bfloat16 autocast",
        "compile": bool(args.compile),
        "rows": [],
        "agreement": {},
    }
    folder = Path(tempfile.mkdtemp(prefix="specc-gpu-bench-"))
    sys.path.insert(0, str(ROOT / "bench"))
    from baselines import torch_mnist

    cases = [
        ("resnet50", ROOT / "bench/specs/resnet50.yaml", references["resnet50"], image, batch),
        ("mobilenet_v2", ROOT / "bench/specs/mobilenet_v2.yaml", references["mobilenet_v2"], image, batch),
        ("mnist_cnn", ROOT / "specs/mnist_cnn.yaml", lambda: torch_mnist.build("mnist_cnn"), 28, 4 * batch),
    ]  # fmt: skip
    for name, spec, reference, size, n in cases:
        if args.only and name not in args.only:
            continue
        if smoke and name != "mnist_cnn":
            cls, model = _generated_class_resized(spec, folder, size)
        else:
            cls, model = _generated_class(spec, folder)
        spatial = model.inputs[0].shape  # (H, W, C) of the spec
        generator = torch.Generator().manual_seed(0)
        x_nhwc = torch.randn(n, *spatial, generator=generator).to(device)
        x_nchw = x_nhwc.permute(0, 3, 1, 2).contiguous()
        classes = model.shape_of(model.outputs[0])[-1]
        y = torch.randint(0, classes, (n,), generator=generator).to(device)
        for train in (True, False):
            for channels_last in (False, True):
                torch.manual_seed(0)
                gen = _measure(cls(), x_nhwc, y, device, channels_last, train, torch.bfloat16,
                               warmup, iters, args.compile, repeats)  # fmt: skip
                torch.manual_seed(0)
                ref = _measure(reference(), x_nchw, y, device, channels_last, train,
                               torch.bfloat16, warmup, iters, args.compile, repeats)  # fmt: skip
                row = {
                    "model": name,
                    "mode": "train" if train else "inference",
                    "channels_last": channels_last,
                    "generated_images_per_s": gen,
                    "reference_images_per_s": ref,
                    "ratio": gen / ref,
                }
                results["rows"].append(row)
                print(
                    f"{name:13s} {row['mode']:9s} channels_last={str(channels_last):5s} "
                    f"generated {gen:9.1f}/s  reference {ref:9.1f}/s  ratio {gen / ref:5.2f}x",
                    flush=True,
                )
        if device.type == "cuda":
            agreement = _agreement(cls, tuple(spatial))
            results["agreement"][name] = agreement
            print(f"{name:13s} CPU vs GPU (fp32, relative max): {agreement}", flush=True)
    return results


def _generated_class_resized(spec_path: Path, folder: Path, size: int):
    """The smoke run's toy input size: the same spec with a smaller image."""
    import yaml

    data = yaml.safe_load(spec_path.read_text())
    data["inputs"][0]["shape"] = [size, size, data["inputs"][0]["shape"][2]]
    small = folder / f"small_{spec_path.name}"
    small.write_text(yaml.safe_dump(data, sort_keys=False))
    return _generated_class(small, folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=15)
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--only", nargs="*", help="resnet50, mobilenet_v2, mnist_cnn")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_bench: torch is not installed: nothing measured")
        return 0
    if not args.cpu_smoke and not torch.cuda.is_available():
        print(f"gpu_bench: no CUDA device (torch {torch.__version__}): nothing measured")
        return 0
    start = time.perf_counter()
    results = run(args)
    results["seconds"] = round(time.perf_counter() - start, 1)
    print(f"gpu_bench: {results['device']}, {results['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
