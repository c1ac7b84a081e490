"""Preprocessing in pure numpy, seeded: scaling, standardization, reshaping, one-hot labels,
validation splits, shuffled mini-batches and image augmentation (as Keras's RandomFlip,
RandomRotation, RandomTranslation and RandomZoom, fill mode "nearest", bilinear sampling).

Both runners use these so that Keras and PyTorch see identical arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from .files import DatasetError

_CHUNK = 4096  # samples per chunk when computing statistics (bounded temporary memory)


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def scale_unit(x: np.ndarray, max_value: float = 255.0) -> np.ndarray:
    """``x / max_value`` as float32 (uint8 images: [0, 255] -> [0, 1])."""
    out = np.array(x, dtype=np.float32, copy=True)
    if max_value != 1.0:
        np.divide(out, np.float32(max_value), out=out)
    return out


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (last axis) mean and population std of ``x``, accumulated in float64."""
    if len(x) == 0:
        raise DatasetError("cannot compute normalization statistics of an empty split")
    c = x.shape[-1] if x.ndim > 1 else 1
    flat = x.reshape(len(x), -1, c)
    count = flat.shape[0] * flat.shape[1]
    total = np.zeros(c, np.float64)
    for i in range(0, len(flat), _CHUNK):
        total += flat[i : i + _CHUNK].sum(axis=(0, 1), dtype=np.float64)
    mean = total / count
    sq = np.zeros(c, np.float64)
    for i in range(0, len(flat), _CHUNK):
        d = flat[i : i + _CHUNK].astype(np.float64) - mean
        sq += np.einsum("nkc,nkc->c", d, d)
    std = np.sqrt(sq / count)
    return mean, std


def standardize(x: np.ndarray, mean, std) -> np.ndarray:
    """``(x - mean) / std`` per channel (last axis) as float32; a zero std counts as 1."""
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    std = np.where(std > 0, std, 1.0)
    out = np.array(x, dtype=np.float32, copy=True)
    out -= mean.astype(np.float32)
    out /= std.astype(np.float32)
    return out


def reshape_to(
    x: np.ndarray, input_shape: Sequence[int], *, name: str = "the dataset"
) -> np.ndarray:
    """Reshape samples to the model's input shape (e.g. 28x28x1 -> [784] or [28, 28]);
    refuse when the number of values per sample differs."""
    target = tuple(int(d) for d in input_shape)
    sample = tuple(x.shape[1:])
    if sample == target:
        return x
    if math.prod(sample) != math.prod(target):
        raise DatasetError(
            f"{name} gives {shape_text(sample)} samples ({math.prod(sample):,} values), "
            f"the spec's input is {shape_text(target)} ({math.prod(target):,} values): "
            "choose a dataset or an input shape that fit"
        )
    return x.reshape((len(x), *target))


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices -> float32 one-hot rows, for categorical losses."""
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(f"labels must be in 0..{num_classes - 1} (found {y.min()}..{y.max()})")
    out = np.zeros((len(y), num_classes), dtype=np.float32)
    out[np.arange(len(y)), y.astype(np.int64)] = 1.0
    return out


def validation_count(n: int, fraction: float) -> int:
    """How many of ``n`` samples a validation ``fraction`` holds (floor; at least 1, leaves 1)."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, math.floor(n * fraction + 1e-9)))


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Seeded shuffled split: returns ``x_train, y_train, x_val, y_val`` (val has
    ``validation_count(len(x), fraction)`` samples; both keep the shuffled order)."""
    n_val = validation_count(len(x), fraction)
    perm = np.random.default_rng(seed).permutation(len(x))
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train], x[val], y[val]


def batch_rngs(seed: int, epoch: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the shuffle and the augmentation of one epoch; they depend
    only on (seed, epoch), so a resumed run sees the same batches."""
    shuffle, augment = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch)]).spawn(2)
    return np.random.default_rng(shuffle), np.random.default_rng(augment)


def iterate_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches ``(x_batch, y_batch)``, shuffled by (seed, epoch) when ``shuffle``."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    n = len(x)
    order = batch_rngs(seed, epoch)[0].permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]


# --------------------------------------------------------------------------- augmentation


def flip_horizontal(x: np.ndarray) -> np.ndarray:
    """Mirror NHWC images left-right (the width axis)."""
    return x[:, :, ::-1]


def flip_vertical(x: np.ndarray) -> np.ndarray:
    """Mirror NHWC images top-bottom (the height axis)."""
    return x[:, ::-1]


def affine_warp(x: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Resample NHWC images: output pixel (r, c) takes the input at ``M @ (r, c, 1)`` with
    bilinear interpolation; coordinates outside the image are clamped (fill mode "nearest")."""
    n, h, w, c = x.shape
    rows, cols = np.meshgrid(
        np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij"
    )
    grid = np.stack([rows.ravel(), cols.ravel(), np.ones(h * w)])  # (3, HW)
    src = np.asarray(matrices, np.float64) @ grid  # (N, 2, HW)
    sr = np.clip(src[:, 0], 0, h - 1)
    sc = np.clip(src[:, 1], 0, w - 1)
    r0 = np.floor(sr).astype(np.intp)
    c0 = np.floor(sc).astype(np.intp)
    r1 = np.minimum(r0 + 1, h - 1)
    c1 = np.minimum(c0 + 1, w - 1)
    fr = (sr - r0).astype(np.float32)[..., None]
    fc = (sc - c0).astype(np.float32)[..., None]
    flat = x.reshape(n, h * w, c)
    k = np.arange(n)[:, None]
    top = flat[k, r0 * w + c0] * (1 - fc) + flat[k, r0 * w + c1] * fc
    bottom = flat[k, r1 * w + c0] * (1 - fc) + flat[k, r1 * w + c1] * fc
    out = top * (1 - fr) + bottom * fr
    return out.reshape(n, h, w, c).astype(np.float32, copy=False)


def random_affine_matrices(
    n: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    rotation: float = 0.0,
    translation: float = 0.0,
    zoom: float = 0.0,
) -> np.ndarray:
    """(N, 2, 3) output->input maps with Keras's factors: rotation by U(-f, f) x 2*pi,
    translation by U(-f, f) x height (and, independently, x width), zoom by 1 + U(-f, f)
    (a zoom above 1 samples a larger area: zooming out), all about the image centre."""
    angle = rng.uniform(-rotation, rotation, n) * 2 * np.pi if rotation else np.zeros(n)
    dy = rng.uniform(-translation, translation, n) * height if translation else np.zeros(n)
    dx = rng.uniform(-translation, translation, n) * width if translation else np.zeros(n)
    z = 1.0 + rng.uniform(-zoom, zoom, n) if zoom else np.ones(n)
    cos, sin = np.cos(angle) * z, np.sin(angle) * z
    cy, cx = (height - 1) / 2, (width - 1) / 2
    m = np.empty((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1] = cos, -sin
    m[:, 1, 0], m[:, 1, 1] = sin, cos
    # src = centre + A @ (out - centre) - shift: content moves by +shift
    m[:, 0, 2] = cy - (cos * cy - sin * cx) - dy
    m[:, 1, 2] = cx - (sin * cy + cos * cx) - dx
    return m


def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    horizontal_flip: bool = False,
    vertical_flip: bool = False,
    rotation: float = 0.0,
    translation: float = 0.0,
    zoom: float = 0.0,
) -> np.ndarray:
    """Randomly augment a batch of NHWC (or NHW) images; returns float32 of the same shape.

    Each flip applies to each image with probability 1/2 (exactly ``x[:, :, ::-1]`` or
    ``x[:, ::-1]``); rotation, translation and zoom are one affine resampling per image.
    """
    squeeze = x.ndim == 3
    if squeeze:
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(f"augmentation needs images N x H x W x C, got shape {x.shape}")
    out = np.array(x, dtype=np.float32, copy=True)
    n, h, w, _ = out.shape
    if horizontal_flip:
        pick = rng.random(n) < 0.5
        out[pick] = out[pick][:, :, ::-1]
    if vertical_flip:
        pick = rng.random(n) < 0.5
        out[pick] = out[pick][:, ::-1]
    if rotation or translation or zoom:
        m = random_affine_matrices(
            n, h, w, rng, rotation=rotation, translation=translation, zoom=zoom
        )
        out = affine_warp(out, m)
    return out[..., 0] if squeeze else out
