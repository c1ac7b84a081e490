"""Keras's loss and metric formulas in numpy, used for validation and test figures of both
backends so that their reports are computed the same way."""

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


def loss_value(y, outputs, loss: str, from_logits: bool) -> float:
    """Mean loss over the samples, as Keras computes it."""
    import numpy as np

    outputs = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(y)
    if loss == "mse":
        return float(np.mean((outputs - y.reshape(outputs.shape)) ** 2))
    if loss == "binary_crossentropy":
        if from_logits:  # log(1 + exp(-|z|)) form, as tf.nn.sigmoid_cross_entropy_with_logits
            z = outputs
            t = y.reshape(z.shape).astype(np.float64)
            return float(np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))))
        p = np.clip(outputs, EPSILON, 1 - EPSILON)
        t = y.reshape(p.shape).astype(np.float64)
        return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
    if from_logits:
        z = outputs - outputs.max(axis=-1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    else:
        p = outputs / outputs.sum(axis=-1, keepdims=True)
        log_p = np.log(np.clip(p, EPSILON, 1 - EPSILON))
    if loss == "sparse_categorical_crossentropy":
        labels = y.astype(np.int64).reshape(-1)
        return float(-np.mean(log_p[np.arange(len(labels)), labels]))
    return float(-np.mean((y * log_p).sum(axis=-1)))


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
