"""``prepare``: from a spec's ``training:`` section to the arrays both runners feed."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .bounded import check_finite
from .files import DatasetError
from .loaders import DataSplits, load
from .preprocess import (
    augment,
    batch_rngs,
    channel_stats,
    iterate_batches,
    one_hot,
    reshape_to,
    scale_unit,
    shape_text,
    split_validation,
    standardize,
)


@dataclass
class Prepared:
    """Training-ready float32 inputs in the model's input shape, and labels for the loss.

    ``x_val``/``y_val`` are None without validation; with ``validation_split: test`` they
    are the test arrays. ``normalization`` is JSON-serializable (``apply_normalization``
    turns new raw inputs, e.g. for ``specc predict``, into model inputs the same way).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    num_classes: int | None
    normalization: dict
    input_shape: tuple[int, ...]
    sample_shape: tuple[int, ...]  # the dataset's own sample shape (H, W, C for images)
    dataset: str
    label_mode: str  # "sparse" (int64 indices), "one_hot", "binary" (float32 N x 1), "raw"
    seed: int = 0
    augmentation: dict = field(default_factory=dict)  # augment() keyword arguments; {} = none
    source: str = ""
    x_test_raw: np.ndarray | None = None  # the test samples as loaded (e.g. uint8 images)

    def raw_test_images(self, n: int) -> np.ndarray:
        """The first ``n`` test samples as loaded (before normalization), for image grids."""
        raw = self.x_test_raw if self.x_test_raw is not None else self.x_test
        return raw[:n].reshape((min(n, len(raw)), *self.sample_shape))

    @property
    def augments(self) -> bool:
        return any(self.augmentation.values())

    def augment_batch(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch of model inputs: viewed as the dataset's images, augmented, and
        reshaped back (so flat MLP inputs are augmented as images too)."""
        if not self.augments:
            return x
        images = x.reshape((len(x), *self.sample_shape))
        return augment(images, rng, **self.augmentation).reshape(x.shape)

    def batches(
        self, batch_size: int, epoch: int = 0, *, shuffle: bool = True, augment: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The training mini-batches of ``epoch``: shuffled and augmented, reproducibly from
        (seed, epoch) alone, so a resumed run continues with the same batches."""
        aug_rng = batch_rngs(self.seed, epoch)[1]
        for xb, yb in iterate_batches(
            self.x_train, self.y_train, batch_size, seed=self.seed, epoch=epoch, shuffle=shuffle
        ):
            yield (self.augment_batch(xb, aug_rng) if augment else xb), yb

    def class_indices(self, y: np.ndarray) -> np.ndarray:
        """Labels as class indices whatever the label mode (for confusion matrices)."""
        if self.label_mode == "one_hot":
            return y.argmax(axis=1)
        if self.label_mode == "binary":
            return y.reshape(len(y)).astype(np.int64)
        return y

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw samples (as the loader returns them) -> model inputs, as for training."""
        return reshape_to(
            apply_normalization(x, self.normalization), self.input_shape, name=self.dataset
        )


def _ids(x, name: str) -> np.ndarray:
    """Integer ids for a model input of dtype int32/int64 (float arrays must hold integers)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise DatasetError(f"{name}: the model input takes integer ids; x holds fractions")
    elif x.dtype.kind not in "iub":
        raise DatasetError(f"{name}: the model input takes integer ids; x is {x.dtype}")
    return x.astype(np.int64)


def normalize_splits(mode: str, x_train, others: Sequence, max_value: float):
    """Normalize ``x_train`` and each array of ``others`` with statistics of ``x_train`` only.

    ``unit``: divide by ``max_value``; ``standardize``: scale to [0, 1], then per channel
    ``(x - mean) / std`` with the train mean and std; ``none``: float32 as is.
    """
    stats: dict = {"mode": mode, "scale": float(max_value) if mode != "none" else 1.0}
    if mode == "none":
        return np.asarray(x_train, np.float32), [np.asarray(o, np.float32) for o in others], stats
    if mode not in ("unit", "standardize"):
        raise DatasetError(f"unknown normalization {mode!r}")
    x_train = scale_unit(x_train, max_value)
    others = [scale_unit(o, max_value) for o in others]
    if mode == "standardize":
        mean, std = channel_stats(x_train)
        stats["mean"] = mean.tolist()
        stats["std"] = std.tolist()
        x_train = standardize(x_train, mean, std)
        others = [standardize(o, mean, std) for o in others]
    return x_train, others, stats


def apply_normalization(x: np.ndarray, stats: dict) -> np.ndarray:
    """Apply the normalization recorded in ``Prepared.normalization`` to raw samples."""
    out = scale_unit(x, stats.get("scale", 1.0))
    if stats.get("mode") == "standardize":
        out = standardize(out, stats["mean"], stats["std"])
    return out


def _label_form(y, loss: str, num_classes: int | None, output_units: int | None, name: str):
    """Labels in the form ``loss`` expects; checks they fit the model's output units."""
    is_class = num_classes is not None and y.dtype == np.int64 and y.ndim == 1
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        if not is_class:
            raise DatasetError(
                f"{loss} needs class labels; {name} has labels of shape {y.shape[1:]}"
            )
        if output_units is not None and output_units != num_classes:
            raise DatasetError(
                f"{name} has {num_classes} classes (labels 0..{num_classes - 1}) but the model "
                f"outputs {output_units} units: {loss} needs one unit per class"
            )
        if loss == "sparse_categorical_crossentropy":
            return y, "sparse"
        return one_hot(y, num_classes), "one_hot"
    if loss != "mse" and not is_class:
        raise DatasetError(
            f"{loss} needs class labels (integers 0..k-1); {name} has labels of dtype "
            f"{y.dtype} and shape {tuple(y.shape[1:])}: use loss: mse for such targets"
        )
    if is_class and (output_units == 1 or (output_units is None and num_classes == 2)):
        if y.size and y.max() > 1:
            raise DatasetError(
                f"{name} has {num_classes} classes but the model outputs one unit: {loss} with "
                "one unit needs labels 0 and 1"
            )
        return y.astype(np.float32).reshape(-1, 1), "binary"
    if is_class:
        if output_units is not None and output_units != num_classes:
            raise DatasetError(
                f"{name} has {num_classes} classes but the model outputs {output_units} units "
                f"({loss} compares one-hot labels with the outputs)"
            )
        return one_hot(y, num_classes), "one_hot"
    return np.asarray(y, np.float32), "raw"


def _labels(
    y,
    loss: str,
    num_classes: int | None,
    output_units: int | None,
    name: str,
    output_size: int | None = None,
):
    """Labels in the form ``loss`` expects (see ``_label_form``), and when ``output_size``
    (values per sample of the model's output) is given, refused unless they fit it."""
    labels, mode = _label_form(y, loss, num_classes, output_units, name)
    size = num_classes if mode == "sparse" else math.prod(labels.shape[1:])
    if output_size is not None and size is not None and size != output_size:
        what = (
            f"{num_classes} classes"
            if mode == "sparse"
            else f"labels of shape {tuple(labels.shape[1:])}"
        )
        raise DatasetError(
            f"{name} gives {what} ({size} values a sample) but the model outputs "
            f"{output_size} values a sample: {loss} compares them"
        )
    return labels, mode


def _get(obj, key, default=None):
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def prepare(
    training,
    input_shape: Sequence[int],
    data_dir: str | os.PathLike | None = None,
    *,
    output_units: int | None = None,
    output_size: int | None = None,
    base_dir: str | os.PathLike | None = None,
    download: bool = True,
    verify: bool = True,
    limit: int | None = None,
    data: DataSplits | None = None,
    integer: bool = False,
    allow_nonfinite: bool = False,
) -> Prepared:
    """Load and preprocess the dataset of ``training`` (a ``specc.spec.Training``) for a
    model whose input is ``input_shape`` (one sample, no batch) and whose output has
    ``output_units`` units (optional; checks the labels fit). ``integer``: the model input
    takes integer ids (dtype int32/int64): x is kept as int64 and never normalized.

    Order: load (``data_dir``, then ``$SPECC_DATA_DIR``, then the cache); keep the first
    ``limit`` train and test samples; check the sample size fits ``input_shape``; split off
    the validation set (seeded fraction of train, or the test set); normalize with
    statistics of the remaining train split only; reshape; labels for the loss.
    """
    input_shape = tuple(int(d) for d in input_shape)
    seed = int(_get(training, "seed", 0))
    dataset = _get(training, "dataset")
    channels = input_shape[-1] if len(input_shape) == 3 and input_shape[-1] in (1, 3, 4) else None
    if data is None:
        data = load(
            dataset,
            data_dir,
            download=download,
            verify=verify,
            base_dir=base_dir,
            seed=seed,
            channels=channels,
            **({"limit": limit} if limit is not None else {}),
        )
    info = data.info
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if limit is not None:
        x_train, y_train, x_test, y_test = (
            x_train[:limit],
            y_train[:limit],
            x_test[:limit],
            y_test[:limit],
        )
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) == 0:
            raise DatasetError(
                f"{info.name}: the {split} split is empty (0 samples); a run needs samples to "
                f"{'train on' if split == 'train' else 'test on'}"
            )
        check_finite(y, f"{info.name}: y_{split}")
        if not allow_nonfinite:
            check_finite(
                x, f"{info.name}: x_{split}", hint="fix the data, or pass --allow-nonfinite"
            )
    sample = tuple(x_train.shape[1:])
    x_test_raw = x_test
    reshape_to(x_train[:0], input_shape, name=info.name)  # refuse early when sizes differ

    split = _get(training, "validation_split", 0.1)
    if split == "test":
        x_val, y_val, validation = x_test, y_test, "test"
    elif split:
        x_train, y_train, x_val, y_val = split_validation(x_train, y_train, float(split), seed)
        validation = "fraction"
    else:
        x_val = y_val = None
        validation = None

    mode = _get(_get(training, "preprocessing"), "normalize", "unit") or "unit"
    others = [x_test] if x_val is None or validation == "test" else [x_val, x_test]
    if integer:  # token ids feed the model as they are (int64), never normalized
        x_train, normed = _ids(x_train, info.name), [_ids(o, info.name) for o in others]
        stats = {"mode": "none", "scale": 1.0, "integer": True}
    else:
        x_train, normed, stats = normalize_splits(mode, x_train, others, info.max_value)
    x_test = normed[-1]
    if validation == "test":
        x_val = x_test
    elif x_val is not None:
        x_val = normed[0]
    stats["validation"] = validation

    x_train, x_test = (reshape_to(a, input_shape, name=info.name) for a in (x_train, x_test))
    x_val = (
        x_test
        if validation == "test"
        else (None if x_val is None else reshape_to(x_val, input_shape, name=info.name))
    )

    loss = _get(training, "loss", "sparse_categorical_crossentropy")
    y_train, label_mode = _labels(
        y_train, loss, info.num_classes, output_units, info.name, output_size
    )
    y_test, _ = _labels(y_test, loss, info.num_classes, output_units, info.name, output_size)
    if validation == "test":
        y_val = y_test
    elif y_val is not None:
        y_val, _ = _labels(y_val, loss, info.num_classes, output_units, info.name, output_size)

    aug = _get(training, "augmentation")
    augmentation = {
        k: _get(aug, k, False if "flip" in k else 0.0)
        for k in ("horizontal_flip", "vertical_flip", "rotation", "translation", "zoom")
    }
    augmentation = {k: v for k, v in augmentation.items() if v}
    if augmentation and len(sample) not in (2, 3):
        raise DatasetError(
            f"augmentation works on images; {info.name} gives samples of shape {shape_text(sample)}"
        )
    return Prepared(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=list(info.class_names),
        num_classes=info.num_classes,
        normalization=stats,
        input_shape=input_shape,
        sample_shape=sample,
        dataset=info.name,
        label_mode=label_mode,
        seed=seed,
        augmentation=augmentation,
        source=info.source,
        x_test_raw=x_test_raw,
    )
