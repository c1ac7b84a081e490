"""Embedding specc in your own tool: validate specs without importing any framework.

Run:  python examples/embed_validation.py [SPEC ...]
With no argument it checks a spec built in Python and a bundled file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import specc

HERE = Path(__file__).resolve().parent


def report(result: specc.Result, label: str) -> None:
    for diagnostic in result.diagnostics:  # errors and warnings, located and ordered
        print(diagnostic.format())
    if result.ok:
        summary = specc.summarize(result.model)
        print(
            f"{label}: {summary['name']}: {summary['total_params']:,} params "
            f"({summary['trainable_params']:,} trainable), {summary['macs']:,} MACs per sample"
        )
        for layer in summary["layers"]:
            print(f"  {layer['name']:<16} {str(layer['output_shape']):<22} {layer['params']:>9,}")


def main(paths: list[str]) -> int:
    if paths:
        results = [(specc.check_file(p), p) for p in paths]
    else:
        spec = {
            "version": 1,
            "name": "tiny_cnn",
            "inputs": [{"name": "image", "shape": [28, 28, 1]}],
            "layers": [
                {"type": "Conv2D", "filters": 8, "kernel_size": 3, "activation": "relu"},
                {"type": "MaxPooling2D"},
                {"type": "Flatten"},
                {"type": "Dense", "units": 10, "activation": "softmax"},
            ],
        }
        broken = {**spec, "layers": [{"type": "Conv2D", "filters": 8, "kernel_size": 30}]}
        results = [
            (specc.check_data(spec), "dict"),
            (specc.check_data(broken, file="broken-dict"), "broken dict"),
            (specc.check_file(HERE.parent / "specs" / "mnist_cnn.yaml"), "file"),
        ]
    for result, label in results:
        report(result, str(label))
    # exit 1 when a spec named on the command line is invalid (the demo's broken dict is on purpose)
    return 1 if paths and not all(r.ok for r, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
