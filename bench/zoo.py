"""`make zoo`: the zoo specs against keras.applications.

For each spec in specs/zoo/: the parameter count Keras reports for the application
(built with weights=None at the spec's input size; "n/a" without TensorFlow), specc's count,
the spec's length in lines and the time `specc summary` takes (check + table, best of 3).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APPLICATIONS = {
    "vgg16": "VGG16",
    "resnet50": "ResNet50",
    "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "densenet121": "DenseNet121",
    "xception": "Xception",
    "efficientnet_b0": "EfficientNetB0",
    "inception_v3": "InceptionV3",
}


def keras_params(name: str, shape) -> str:
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
    except ImportError:
        return "n/a"
    keras.backend.clear_session()
    app = getattr(keras.applications, APPLICATIONS[name])(weights=None, input_shape=tuple(shape))
    return f"{app.count_params():,}"


def main() -> int:
    from specc.pipeline import check_file
    from specc.summary import format_text

    rows = [("model", "Keras params", "specc params", "spec lines", "summary time")]
    ok = True
    for name in APPLICATIONS:
        path = ROOT / "specs" / "zoo" / f"{name}.yaml"
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            result = check_file(path)
            format_text(result.model)
            best = min(best, time.perf_counter() - start)
        model = result.model
        theirs = keras_params(name, model.inputs[0].shape)
        ours = f"{model.total_params:,}"
        ok &= theirs in (ours, "n/a")
        lines = path.read_text().count("\n")
        rows.append((name, theirs, ours, str(lines), f"{best * 1000:.0f} ms"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            )
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
