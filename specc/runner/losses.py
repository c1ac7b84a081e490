"""Metric formulas in numpy (probabilities, classes, top-k), used for the validation and test
figures of both backends so that their reports are computed the same way. The losses come
from each backend, computed as Keras's evaluate computes them."""

from __future__ import annotations

EPSILON = 1e-7  # keras.config.epsilon(): probabilities are clipped to [eps, 1 - eps]


def _softmax(z):
    import numpy as np

    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z):
    import numpy as np

    return 1 / (1 + np.exp(-z))


def probabilities(outputs, loss: str, from_logits: bool):
    """Model outputs as probabilities (softmax / sigmoid applied when the model gives logits)."""
    import numpy as np

    outputs = np.asarray(outputs, dtype=np.float64)
    if not from_logits or loss == "mse":
        return outputs
    return _sigmoid(outputs) if loss == "binary_crossentropy" else _softmax(outputs)


def predicted_classes(probs):
    """Class predictions from probabilities: argmax, or a 0.5 threshold for one unit."""
    import numpy as np

    probs = np.asarray(probs)
    if probs.ndim == 1 or probs.shape[-1] == 1:
        return (probs.reshape(-1) > 0.5).astype(np.int64)
    return probs.argmax(axis=-1)


def true_classes(y):
    import numpy as np

    y = np.asarray(y)
    return y.argmax(axis=-1) if y.ndim == 2 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)


def top_k_accuracy(y, outputs, k: int) -> float:
    import numpy as np

    outputs = np.asarray(outputs)
    labels = true_classes(y)
    k = min(k, outputs.shape[-1])
    top = np.argsort(-outputs, axis=-1, kind="stable")[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=-1)))
