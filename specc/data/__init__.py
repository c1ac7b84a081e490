"""The dataset layer of ``specc train``: loaders, file lookup and preprocessing (numpy only).

    from specc.data import prepare, load
    prepared = prepare(spec.training, input_shape=(28, 28, 1), data_dir="../shared/datasets")
    for xb, yb in prepared.batches(batch_size=128, epoch=0):
        ...

Importing this package imports numpy (never imported by ``import specc``). See
docs/datasets.md.
"""

from __future__ import annotations

from .files import (
    ChecksumError,
    DatasetError,
    DatasetNotFound,
    cache_dir,
    locate,
    md5_file,
    search_roots,
    verify_md5,
)
from .loaders import (
    DatasetInfo,
    DataSplits,
    load,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_folder,
    load_mnist,
    load_npz,
    read_cifar_batch,
    read_idx,
)
from .prepare import Prepared, apply_normalization, normalize_splits, prepare
from .preprocess import (
    affine_warp,
    augment,
    channel_stats,
    flip_horizontal,
    flip_vertical,
    iterate_batches,
    one_hot,
    reshape_to,
    scale_unit,
    split_validation,
    standardize,
    validation_count,
)

__all__ = [
    "ChecksumError",
    "DataSplits",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFound",
    "Prepared",
    "affine_warp",
    "apply_normalization",
    "augment",
    "cache_dir",
    "channel_stats",
    "flip_horizontal",
    "flip_vertical",
    "iterate_batches",
    "load",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_folder",
    "load_mnist",
    "load_npz",
    "locate",
    "md5_file",
    "normalize_splits",
    "one_hot",
    "prepare",
    "read_cifar_batch",
    "read_idx",
    "reshape_to",
    "scale_unit",
    "search_roots",
    "split_validation",
    "standardize",
    "validation_count",
    "verify_md5",
]
