"""The canonical weight layout: one ``.npz`` keyed ``<layer>/<param>`` in Keras's layout.

Keys and shapes follow Keras (``conv/kernel`` HWIO, ``dense/kernel`` (in, out),
``bn/gamma|beta|moving_mean|moving_variance``, ``sep/depthwise_kernel`` ...); see
docs/weights.md. Loaders and savers for built Keras models and for the generated torch
modules convert on the fly (HWIO <-> OIHW, Dense transposes, depthwise regrouping, BN
running statistics). TensorFlow/Keras and torch are imported inside the functions only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .ir import ModelIR


def layout(model: ModelIR) -> list[tuple[str, tuple[int, ...], str]]:
    """Every weight of the model: (key, Keras shape, 'trainable' | 'non_trainable')."""
    return [
        (f"{layer}/{w.param}", w.keras_shape, "trainable" if w.trainable else "non_trainable")
        for layer, _, w in _plan(model).weights()
    ]


def _plan(model: ModelIR):
    from .codegen.pytorch import plan

    return plan(model)


def save(path: str | Path, weights: dict[str, np.ndarray]) -> None:
    """Write a canonical weights file (uncompressed .npz, keys in the given order), atomically:
    a kill mid-write leaves the previous file or none, never a torn one."""
    import io

    from .fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, dtype=np.float32) for k, v in weights.items()})
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | Path) -> dict[str, np.ndarray]:
    """Read a canonical weights file (no pickled objects)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def check(model: ModelIR, weights: dict[str, np.ndarray]) -> None:
    """Raise ValueError unless ``weights`` has exactly the model's keys and Keras shapes."""
    want = {key: shape for key, shape, _ in layout(model)}
    missing = sorted(set(want) - set(weights))
    extra = sorted(set(weights) - set(want))
    if missing or extra:
        raise ValueError(f"weights do not match the model: missing {missing}, unexpected {extra}")
    for key, shape in want.items():
        if tuple(weights[key].shape) != tuple(shape):
            raise ValueError(f"{key}: shape {tuple(weights[key].shape)}, expected {shape}")


def random_weights(model: ModelIR, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights of the right shapes, e.g. to compare backends: kernels with standard
    deviation 1/sqrt(fan_in) (Keras's fans), so activations stay near unit scale; vectors
    near 0 (near 1 for gamma and moving_variance, which stays positive)."""
    from .layers.lowering import keras_fans

    rng = np.random.default_rng(seed)
    out = {}
    for key, shape, _ in layout(model):
        param = key.rsplit("/", 1)[1]
        if len(shape) >= 2:
            array = rng.normal(0.0, 1.0 / np.sqrt(keras_fans(shape)[0]), shape)
        elif param in ("gamma", "moving_variance"):
            array = rng.uniform(0.5, 1.5, shape)
        else:
            array = rng.normal(0.0, 0.1, shape)
        out[key] = array.astype(np.float32)
    return out


# --------------------------------------------------------------------------- transforms


def _to_torch(array: np.ndarray, transform: str) -> np.ndarray:
    if transform == "dense":
        return array.T
    if transform == "conv":  # (*spatial, in, out) -> (out, in, *spatial); also IOHW <-> HWOI
        rank = array.ndim - 2
        return np.transpose(array, (rank + 1, rank, *range(rank)))
    if transform == "depthwise":  # (kh, kw, C, M) -> (C*M, 1, kh, kw), channel c*M + m
        kh, kw, c, m = array.shape
        return np.transpose(array.reshape(kh, kw, c * m), (2, 0, 1))[:, None]
    return array


def _from_torch(array: np.ndarray, transform: str, keras_shape: tuple[int, ...]) -> np.ndarray:
    if transform == "dense":
        return array.T
    if transform == "conv":
        rank = array.ndim - 2
        return np.transpose(array, (*range(2, rank + 2), 1, 0))
    if transform == "depthwise":
        return np.transpose(array[:, 0], (1, 2, 0)).reshape(keras_shape)
    return array


# --------------------------------------------------------------------------- Keras


def from_keras(keras_model, model: ModelIR) -> dict[str, np.ndarray]:
    """The canonical weights of a built Keras model generated from ``model``."""
    out = {}
    for key, shape, _ in layout(model):
        layer, param = key.split("/")
        variables = {v.name: v for v in keras_model.get_layer(layer).weights}
        out[key] = np.asarray(variables[param].numpy(), dtype=np.float32).reshape(shape)
    return out


def to_keras(keras_model, model: ModelIR, weights: dict[str, np.ndarray]) -> None:
    """Assign canonical weights to a built Keras model generated from ``model``."""
    check(model, weights)
    for key, _, _ in layout(model):
        layer, param = key.split("/")
        variables = {v.name: v for v in keras_model.get_layer(layer).weights}
        variables[param].assign(weights[key])


# --------------------------------------------------------------------------- PyTorch


def _torch_tensor(module, attribute: str, name: str):
    return getattr(getattr(module, attribute), name)


def from_torch(torch_module, model: ModelIR) -> dict[str, np.ndarray]:
    """The canonical weights of a generated torch module (running stats as moving_*)."""
    out = {}
    for layer, attribute, w in _plan(model).weights():
        tensor = _torch_tensor(torch_module, attribute, w.attr)
        array = tensor.detach().cpu().numpy().astype(np.float32)
        out[f"{layer}/{w.param}"] = _from_torch(array, w.transform, w.keras_shape)
    return out


def to_torch(torch_module, model: ModelIR, weights: dict[str, np.ndarray]) -> None:
    """Copy canonical weights into a generated torch module (in place, no autograd)."""
    import torch

    check(model, weights)
    with torch.no_grad():
        for layer, attribute, w in _plan(model).weights():
            tensor = _torch_tensor(torch_module, attribute, w.attr)
            array = np.ascontiguousarray(_to_torch(weights[f"{layer}/{w.param}"], w.transform))
            if tuple(array.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"{layer}/{w.param}: torch {attribute}.{w.attr} has shape "
                    f"{tuple(tensor.shape)}, the converted weight {array.shape}"
                )
            tensor.copy_(torch.from_numpy(array))
