"""The canonical weight layout: one ``.npz`` keyed ``<layer>/<param>`` in Keras's layout.

Every key, shape, initializer and target layout comes from the layers' own declarations
(``Layer.weights``, stored on each ``LayerIR``): ``conv/kernel`` HWIO, ``dense/kernel``
(in, out), ``bn/gamma|beta|moving_mean|moving_variance`` ...; see docs/weights.md. The
conversions to each target's layout are the :data:`TRANSFORMS` below, named by the
declarations. TensorFlow/Keras and torch are imported inside the functions only.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .ir import LayerIR, ModelIR
from .layers.base import Weight
from .layers.initializers import distribution, keras_fans


def declared(model: ModelIR) -> Iterator[tuple[LayerIR, Weight]]:
    """(layer, weight declaration) for every weight of the model, in model order."""
    for layer in model.layers:
        for weight in layer.weights:
            yield layer, weight


def regularizers(model: ModelIR) -> dict[str, tuple[float, float]]:
    """'<layer>/<weight>' -> (l1, l2) for every weight with a regularizer."""
    return {
        f"{layer.name}/{name}": factors
        for layer in model.layers
        for name, factors in layer.spec.regularizers().items()
    }


def penalty(weights: dict[str, np.ndarray], factors: dict[str, tuple[float, float]]) -> float:
    """The regularizers' penalty on canonical weights, in float32 as Keras computes it:
    ``l1 * sum(|w|) + l2 * sum(w ** 2)`` per weight (sums are layout-independent)."""
    total = np.float32(0.0)
    for key, (l1, l2) in factors.items():
        w = np.asarray(weights[key], np.float32)
        if l1:
            total += np.float32(l1) * np.abs(w).sum(dtype=np.float32)
        if l2:
            total += np.float32(l2) * np.square(w).sum(dtype=np.float32)
    return float(total)


def layout(model: ModelIR) -> list[tuple[str, tuple[int, ...], str]]:
    """Every weight of the model: (key, Keras shape, 'trainable' | 'non_trainable')."""
    return [
        (f"{layer.name}/{w.name}", w.shape, "trainable" if w.trainable else "non_trainable")
        for layer, w in declared(model)
    ]


def save(path: str | Path, weights: dict[str, np.ndarray]) -> None:
    """Write a canonical weights file (uncompressed .npz, keys in the given order), atomically:
    a kill mid-write leaves the previous file or none, never a torn one."""
    import io

    from .fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, dtype=np.float32) for k, v in weights.items()})
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | Path) -> dict[str, np.ndarray]:
    """Read a canonical weights file (no pickled objects); ValueError for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        raise ValueError("empty file")
    if head[:2] != b"PK":  # numpy would take any other bytes for a pickle and say so
        raise ValueError("not an .npz file (damaged, truncated, or another format)")
    from .data.bounded import NpzReader
    from .data.files import DatasetError

    # every member's header checked before anything is allocated: a header that claims
    # 149 GiB (np.load's MemoryError traceback) or more than the zip entry holds is refused
    try:
        with NpzReader(path) as data:
            return {key: data.read(key) for key in data.files}
    except DatasetError as exc:
        raise ValueError(str(exc)) from None


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


_INIT_CHUNK = 1 << 20  # values drawn at a time (uniform initializers)


def initial_value(key: str, weight: Weight, seed: int) -> np.ndarray:
    """A seeded, numpy-only Keras-style initial value; each weight has its own stream."""
    shape = weight.shape
    if weight.initializer == "unit_forget_bias":  # Keras LSTM: 1 for the forget gate
        units = shape[0] // 4
        return np.concatenate([np.zeros(units), np.ones(units), np.zeros(2 * units)]).astype(
            np.float32
        )
    kind, *args = distribution(weight.initializer, shape)
    if kind == "constant":
        return np.full(shape, args[0], np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    if kind == "uniform":
        # the same stream as rng.uniform(low, high, shape) (one double per value), drawn in
        # chunks: no float64 copy of a large weight (VGG16's fc1 would take 822 MB)
        low, high = args
        out = np.empty(math.prod(shape), np.float32)
        for start in range(0, out.size, _INIT_CHUNK):
            stop = min(start + _INIT_CHUNK, out.size)
            out[start:stop] = rng.uniform(low, high, stop - start)
        return out.reshape(shape)
    if kind == "normal":
        return rng.normal(args[0], args[1], shape).astype(np.float32)
    if kind == "orthogonal":
        return _orthogonal(rng, shape, args[0])
    mean, std = args
    values = rng.standard_normal(shape)
    bad = np.abs(values) > 2.0
    while bad.any():
        values[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(values) > 2.0
    return (values * std + mean).astype(np.float32)


def _orthogonal(rng, shape: tuple[int, ...], gain: float) -> np.ndarray:
    """keras.initializers.Orthogonal: QR of a normal (rows, cols) matrix, rows the product
    of every axis but the last, signs fixed by R's diagonal."""
    rows, cols = math.prod(shape[:-1]) if len(shape) > 1 else 1, shape[-1] if shape else 1
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(np.float32)


def initial_weights(model: ModelIR, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded Keras-style initial values of every weight (the ONNX target's default)."""
    out = {}
    for layer, weight in declared(model):
        key = f"{layer.name}/{weight.name}"
        out[key] = initial_value(key, weight, seed)
    return out


def random_weights(model: ModelIR, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights of the right shapes, e.g. to compare backends: kernels with standard
    deviation 1/sqrt(fan_in) (Keras's fans), so activations stay near unit scale; vectors
    near 0 (near 1 for gamma and moving_variance, which stays positive)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape, _ in layout(model):
        param = key.rsplit("/", 1)[1]
        if param in ("gamma", "moving_variance", "variance"):
            array = rng.uniform(0.5, 1.5, shape)
        elif param == "count":  # Normalization's sample count: an integer
            array = np.zeros(shape)
        elif len(shape) >= 2:
            array = rng.normal(0.0, 1.0 / np.sqrt(keras_fans(shape)[0]), shape)
        else:
            array = rng.normal(0.0, 0.1, shape)
        out[key] = array.astype(np.float32)
    return out


# --------------------------------------------------------------------------- transforms


def _conv_to(array: np.ndarray) -> np.ndarray:
    # (*spatial, in, out) -> (out, in, *spatial); also Conv2DTranspose's HWOI -> IOHW
    rank = array.ndim - 2
    return np.transpose(array, (rank + 1, rank, *range(rank)))


def _conv_from(array: np.ndarray, keras_shape) -> np.ndarray:
    rank = array.ndim - 2
    return np.transpose(array, (*range(2, rank + 2), 1, 0))


def _depthwise_to(array: np.ndarray) -> np.ndarray:
    # (kh, kw, C, M) -> (C*M, 1, kh, kw): output channel c*M + m
    *spatial, c, m = array.shape
    moved = np.moveaxis(array.reshape(*spatial, c * m), -1, 0)
    return moved[:, None]


def _depthwise_from(array: np.ndarray, keras_shape) -> np.ndarray:
    return np.moveaxis(array[:, 0], 0, -1).reshape(keras_shape)


# recurrent weights in ONNX's layout: (directions=1, gates * units, in), gate order i, o, f, c
# for LSTM (Keras: i, f, c, o), z, r, h for GRU (as Keras); B = [input bias, recurrent bias]
_LSTM_TO_ONNX = (0, 3, 1, 2)  # ONNX gate k is Keras gate _LSTM_TO_ONNX[k]


def _gates(array: np.ndarray, order, axis: int = -1) -> np.ndarray:
    parts = np.split(array, len(order), axis=axis)
    return np.concatenate([parts[k] for k in order], axis=axis)


def _inverse(order) -> tuple[int, ...]:
    return tuple(order.index(k) for k in range(len(order)))


def _rnn_bias_to(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:  # GRU reset_after: (2, 3u) input and recurrent biases
        return array.reshape(1, -1)
    return np.concatenate([array, np.zeros_like(array)])[None]


def _rnn_bias_from(array: np.ndarray, keras_shape) -> np.ndarray:
    if len(keras_shape) == 2:
        return array.reshape(keras_shape)
    return array[0, : keras_shape[0]]


#: name -> (Keras layout -> target layout, (target array, Keras shape) -> Keras layout)
TRANSFORMS = {
    "identity": (lambda a: a, lambda a, shape: a),
    "dense": (lambda a: a.T, lambda a, shape: a.T),
    "conv": (_conv_to, _conv_from),
    # TimeDistributed convolutions in ONNX: (out, in, 1, *spatial), a kernel 1 step long
    "conv_time": (
        lambda a: _conv_to(a)[:, :, None],
        lambda a, shape: _conv_from(a[:, :, 0], shape),
    ),
    "depthwise": (_depthwise_to, _depthwise_from),
    "rnn_onnx": (lambda a: a.T[None], lambda a, shape: a[0].T),
    "lstm_onnx": (
        lambda a: _gates(a, _LSTM_TO_ONNX).T[None],
        lambda a, shape: _gates(a[0].T, _inverse(_LSTM_TO_ONNX)),
    ),
    "rnn_bias_onnx": (_rnn_bias_to, _rnn_bias_from),
    "gru_bias_onnx": (_rnn_bias_to, _rnn_bias_from),
    "lstm_bias_onnx": (
        lambda a: _rnn_bias_to(_gates(a, _LSTM_TO_ONNX)),
        lambda a, shape: _gates(_rnn_bias_from(a, shape), _inverse(_LSTM_TO_ONNX)),
    ),
}


def to_target(array: np.ndarray, weight: Weight, target: str) -> np.ndarray:
    """A canonical (Keras-layout) array in the layout ``target`` wants for ``weight``."""
    # np.array, not np.ascontiguousarray, which makes a 0-d array (a count) 1-d
    return np.array(TRANSFORMS[weight.transform(target)][0](array), order="C")


def from_target(array: np.ndarray, weight: Weight, target: str) -> np.ndarray:
    """The inverse of :func:`to_target`."""
    return np.array(TRANSFORMS[weight.transform(target)][1](array, weight.shape), order="C")


# --------------------------------------------------------------------------- Keras


def from_keras(keras_model, model: ModelIR) -> dict[str, np.ndarray]:
    """The canonical weights of a built Keras model generated from ``model``."""
    out = {}
    for key, variable in keras_variables(keras_model, model):
        out[key] = np.asarray(variable.numpy(), dtype=np.float32).reshape(variable.shape)
    return out


def keras_variables(keras_model, model: ModelIR):
    """(key, Keras variable) for every declared weight: each layer's variables in Keras's
    order, which the declarations follow (a wrapper's variables may share a name)."""
    for layer in model.layers:
        if not layer.weights:
            continue
        variables = keras_model.get_layer(layer.name).weights
        if [v.name for v in variables] != [w.keras_variable for w in layer.weights]:
            raise ValueError(
                f"layer '{layer.name}': Keras's variables {[v.name for v in variables]} are "
                f"not the declared {[w.keras_variable for w in layer.weights]}"
            )
        for weight, variable in zip(layer.weights, variables):
            yield f"{layer.name}/{weight.name}", variable


def to_keras(keras_model, model: ModelIR, weights: dict[str, np.ndarray]) -> None:
    """Assign canonical weights to a built Keras model generated from ``model``."""
    check(model, weights)
    touched = {}
    for key, variable in keras_variables(keras_model, model):
        variable.assign(weights[key])
        layer = key.split("/")[0]
        touched[layer] = keras_model.get_layer(layer)
    for klayer in touched.values():
        # Normalization computes its broadcast mean/variance from its variables once: again
        # now, as Keras's own weight loading does
        if hasattr(klayer, "finalize_state"):
            klayer.finalize_state()


# --------------------------------------------------------------------------- PyTorch


def torch_tensors(torch_module, model: ModelIR):
    """(key, weight declaration, torch tensor) for every weight of a generated torch module."""
    from .targets.pytorch.codegen import plan

    for layer, attribute, w in plan(model).weights():
        # a module path: 'dense' or, in the class form of a model with blocks,
        # 'conv2.block.0.x1_conv' (specc/targets/pytorch/codegen.py TorchPlan.weights)
        tensor = getattr(torch_module.get_submodule(attribute), w.torch_attr)
        yield f"{layer}/{w.name}", w, tensor


def from_torch(torch_module, model: ModelIR) -> dict[str, np.ndarray]:
    """The canonical weights of a generated torch module (running stats as moving_*)."""
    out = {}
    for key, w, tensor in torch_tensors(torch_module, model):
        array = tensor.detach().cpu().numpy().astype(np.float32)
        out[key] = from_target(array, w, "pytorch")
    return out


def to_torch(torch_module, model: ModelIR, weights: dict[str, np.ndarray]) -> None:
    """Copy canonical weights into a generated torch module (in place, no autograd)."""
    import torch

    check(model, weights)
    with torch.no_grad():
        for key, w, tensor in torch_tensors(torch_module, model):
            array = to_target(weights[key], w, "pytorch")
            if tuple(array.shape) != tuple(tensor.shape):
                raise ValueError(
                    f"{key}: torch tensor {w.torch_attr} has shape "
                    f"{tuple(tensor.shape)}, the converted weight {array.shape}"
                )
            tensor.copy_(torch.from_numpy(array))
