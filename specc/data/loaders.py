"""Dataset loaders: numpy arrays (images uint8 NHWC, labels int64) plus metadata.

Built-in: ``mnist`` and ``fashion_mnist`` (the four official IDX gz files), ``cifar10`` (the
official python version, ``cifar-10-python.tar.gz`` or the extracted ``cifar-10-batches-py/``),
``digits`` (scikit-learn's bundled 8x8 digits). A user's own: an ``.npz`` with ``x_train``,
``y_train``, ``x_test``, ``y_test``, or a folder of images in one sub-folder per class.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import DatasetError, locate

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# an image of more pixels is refused (decompression bombs); 8192 x 8192 is far beyond training
MAX_IMAGE_PIXELS = 8192 * 8192
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: its classes, the shape of one sample, where it was read from."""

    name: str
    class_names: tuple[str, ...]
    num_classes: int | None  # None: the labels are not class indices (e.g. regression targets)
    sample_shape: tuple[int, ...]
    max_value: float  # value of a full-intensity input: what scaling to [0, 1] divides by
    source: str = ""  # the file or folder the arrays were read from


@dataclass
class DataSplits:
    """The arrays of a dataset as published: its train and test splits, and its metadata."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: DatasetInfo

    def as_tuples(self):
        """``(x_train, y_train), (x_test, y_test)``, as ``keras.datasets.*.load_data()``."""
        return (self.x_train, self.y_train), (self.x_test, self.y_test)


# --------------------------------------------------------------------------- IDX (MNIST)


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed when it ends in .gz) of unsigned bytes.

    The header is big-endian: magic (0x0000, type 0x08 = uint8, number of dimensions), then
    one uint32 per dimension. The magic and the sizes are checked against the file length.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"cannot read {path}: {exc} (the file is truncated or corrupted)"
        ) from exc
    if len(data) < 8:
        raise DatasetError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if expect_magic is not None and magic != expect_magic:
        kind = {IDX_IMAGES_MAGIC: "images", IDX_LABELS_MAGIC: "labels"}.get(expect_magic, "IDX")
        raise DatasetError(
            f"{path}: not an IDX {kind} file: magic number {magic}, expected {expect_magic}"
        )
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08:
        raise DatasetError(f"{path}: not an IDX file of unsigned bytes (magic number {magic})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DatasetError(f"{path}: bad IDX header (magic number {magic})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DatasetError(
            f"{path}: the IDX header says {'x'.join(map(str, dims))} ({expected:,} bytes of data), "
            f"the file holds {len(data) - header:,} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _load_idx_dataset(name, classes, data_dir, download, verify) -> DataSplits:
    found = locate(name, data_dir, download=download, verify=verify)
    p = found.paths
    arrays = []
    for images, labels in (
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ):
        x = read_idx(p[images], IDX_IMAGES_MAGIC)
        y = read_idx(p[labels], IDX_LABELS_MAGIC)
        if x.ndim != 3 or y.ndim != 1:
            raise DatasetError(f"{p[images]}: expected N x rows x cols images and N labels")
        if len(x) != len(y):
            raise DatasetError(f"{p[images]} holds {len(x)} images but {p[labels]} {len(y)} labels")
        if y.size and int(y.max()) >= len(classes):
            raise DatasetError(
                f"{p[labels]}: label {int(y.max())} is not a class (0..{len(classes) - 1})"
            )
        arrays += [x[..., None], y.astype(np.int64)]
    info = DatasetInfo(
        name, classes, len(classes), arrays[0].shape[1:], 255.0, str(found.directory)
    )
    return DataSplits(*arrays, info=info)


def load_mnist(data_dir=None, *, download: bool = True, verify: bool = True) -> DataSplits:
    """MNIST: 60,000 + 10,000 grey 28x28x1 digits from the four official IDX gz files."""
    return _load_idx_dataset("mnist", MNIST_CLASSES, data_dir, download, verify)


def load_fashion_mnist(data_dir=None, *, download: bool = True, verify: bool = True) -> DataSplits:
    """Fashion-MNIST: 60,000 + 10,000 grey 28x28x1 clothes images, official IDX gz files."""
    return _load_idx_dataset("fashion_mnist", FASHION_MNIST_CLASSES, data_dir, download, verify)


# --------------------------------------------------------------------------- CIFAR-10

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: dicts, lists, bytes and numpy arrays, nothing executable."""

    def find_class(self, module, name):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def read_cifar_batch(fileobj, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: a pickled dict with ``data`` (N x 3072 uint8: 1024 red,
    1024 green, 1024 blue values, each row-major 32x32) and ``labels``; returns NHWC images."""
    try:
        batch = _BatchUnpickler(fileobj, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DatasetError(f"cannot read the CIFAR-10 batch {where}: {exc}") from exc
    if not isinstance(batch, dict):
        raise DatasetError(f"{where}: not a CIFAR-10 batch (a pickled dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DatasetError(f"{where}: a CIFAR-10 batch needs the keys 'data' and 'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{where}: 'data' is {data.dtype} {data.shape}, expected uint8 N x 3072")
    if labels.shape != (len(data),):
        raise DatasetError(f"{where}: {len(data)} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{where}: labels must be 0..9")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels


_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def load_cifar10(data_dir=None, *, download: bool = True, verify: bool = True) -> DataSplits:
    """CIFAR-10: 50,000 + 10,000 colour 32x32x3 images, the official python version."""
    found = locate("cifar10", data_dir, download=download, verify=verify)
    batches = {}
    if "cifar-10-python.tar.gz" in found.paths:
        archive = found.paths["cifar-10-python.tar.gz"]
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for batch in (*_CIFAR_TRAIN, "test_batch"):
                    member = f"cifar-10-batches-py/{batch}"
                    try:
                        f = tar.extractfile(member)
                    except KeyError:
                        f = None
                    if f is None:
                        raise DatasetError(f"{archive} has no member {member}")
                    batches[batch] = read_cifar_batch(f, f"{archive}:{member}")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"cannot read {archive}: {exc} (truncated or corrupted)") from exc
    else:
        for batch in (*_CIFAR_TRAIN, "test_batch"):
            path = found.paths[batch]
            with open(path, "rb") as f:
                batches[batch] = read_cifar_batch(f, str(path))
    x_train = np.concatenate([batches[b][0] for b in _CIFAR_TRAIN])
    y_train = np.concatenate([batches[b][1] for b in _CIFAR_TRAIN])
    x_test, y_test = batches["test_batch"]
    info = DatasetInfo("cifar10", CIFAR10_CLASSES, 10, (32, 32, 3), 255.0, str(found.directory))
    return DataSplits(x_train, y_train, x_test, y_test, info)


# --------------------------------------------------------------------------- digits


def load_digits(*, test_size: int = DIGITS_TEST_SIZE, seed: int = DIGITS_SPLIT_SEED) -> DataSplits:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16), no download.

    Split by a fixed seeded permutation: 1,437 train / 360 test by default.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise DatasetError(
            "the 'digits' dataset is scikit-learn's bundled copy: pip install scikit-learn"
        ) from exc
    bunch = sk_load_digits()
    x = bunch.images.astype(np.uint8)[..., None]
    y = bunch.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    test, train = perm[:test_size], perm[test_size:]
    info = DatasetInfo("digits", MNIST_CLASSES, 10, (8, 8, 1), 16.0, "sklearn.datasets.load_digits")
    return DataSplits(x[train], y[train], x[test], y[test], info)


# --------------------------------------------------------------------------- user data


def _class_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Integer class labels from (N,), (N, 1) or one-hot (N, C) arrays; others unchanged."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1).astype(np.int64)  # one-hot
    if y.ndim == 1 and (y.dtype.kind in "biu"):
        if y.size and y.min() < 0:
            raise DatasetError(f"{where}: class labels must be >= 0 (found {int(y.min())})")
        return y.astype(np.int64)
    return y


def load_npz(
    path: str | os.PathLike, *, num_classes: int | None = None, limit: int | None = None
) -> DataSplits:
    """A user's ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (and optionally
    ``class_names``). Integer (or one-hot) labels are class indices.

    Each member's header is checked before anything is decompressed (numeric dtype, declared
    size against the zip entry and ``SPECC_MAX_MEMORY``); with ``limit`` only the first
    ``limit`` samples of each split are decompressed."""
    from .bounded import NpzReader

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"npz dataset not found: {path}")
    with NpzReader(path) as z:
        keys = set(z.files)
        missing = [k for k in NPZ_KEYS if k not in keys]
        if missing:
            raise DatasetError(
                f"{path} lacks the array(s) {', '.join(missing)}; it has "
                f"{', '.join(sorted(keys)) or 'no arrays'}. An npz dataset needs "
                f"{', '.join(NPZ_KEYS)}."
            )
        arrays = {k: z.read(k, limit) for k in NPZ_KEYS}
        names = (
            [str(s) for s in z.read("class_names", kinds="biufU").tolist()]
            if "class_names" in keys
            else None
        )
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    for split, x in (("train", x_train), ("test", x_test)):
        y = arrays[f"y_{split}"]
        if x.ndim < 2:
            raise DatasetError(
                f"{path}: x_{split} has shape {x.shape}; expected N samples of >= 1 dim"
            )
        if len(y) != len(x):
            raise DatasetError(f"{path}: x_{split} has {len(x)} samples but y_{split} {len(y)}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{path}: x_train samples are {x_train.shape[1:]} but x_test samples {x_test.shape[1:]}"
        )
    y_train = _class_labels(arrays["y_train"], f"{path}: y_train")
    y_test = _class_labels(arrays["y_test"], f"{path}: y_test")
    is_class = y_train.dtype == np.int64 and y_test.dtype == np.int64 and y_train.ndim == 1
    if is_class:
        top = max(int(y_train.max(initial=0)), int(y_test.max(initial=0)))
        if num_classes is None:
            num_classes = len(names) if names else top + 1
        if top >= num_classes:
            raise DatasetError(f"{path}: label {top} does not fit num_classes = {num_classes}")
        if names is None:
            names = [str(i) for i in range(num_classes)]
        if len(names) != num_classes:
            raise DatasetError(f"{path}: {len(names)} class_names for {num_classes} classes")
    else:
        num_classes, names = None, []
    if x_train.dtype == np.uint8:
        max_value = 255.0
    elif x_train.dtype == np.bool_:
        max_value = 1.0
    else:
        top = float(np.abs(x_train).max(initial=0))
        max_value = 1.0 if top <= 1.0 else top
    info = DatasetInfo(
        path.stem, tuple(names), num_classes, x_train.shape[1:], max_value, str(path)
    )
    return DataSplits(x_train, y_train, x_test, y_test, info)


def load_folder(
    path: str | os.PathLike,
    image_size: tuple[int, int] | list[int],
    validation_fraction: float = 0.2,
    *,
    seed: int = 0,
    channels: int | None = None,
) -> DataSplits:
    """Images in one sub-folder per class (sorted names are the classes), resized to
    ``image_size`` (height, width); a seeded ``validation_fraction`` is held out as the test
    split. ``channels``: 1 (grey), 3 (RGB) or 4 (RGBA); default grey if every image is."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise DatasetError("image-folder datasets need Pillow: pip install pillow") from exc
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    real_root = Path(os.path.realpath(root))
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root} has no class sub-folders (expected {root}/<class>/<image>)")
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        found = sorted(_image_files(root / cls, real_root, root))
        if not found:
            raise DatasetError(
                f"class folder {root / cls} has no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        files += [(p, label) for p in found]
    height, width = (int(v) for v in image_size)

    def open_image(p: Path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(p)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DatasetError(
                f"refusing the image {p}: {exc} (a decompression bomb, or far too large for "
                "a training image)"
            ) from None
        except (OSError, UnidentifiedImageError) as exc:
            raise DatasetError(f"cannot read the image {p}: {exc}") from exc
        width_, height_ = im.size
        if width_ * height_ > MAX_IMAGE_PIXELS:
            im.close()
            raise DatasetError(
                f"refusing the image {p}: {width_}x{height_} pixels is more than "
                f"{MAX_IMAGE_PIXELS:,} (a decompression bomb, or far too large for a "
                "training image)"
            )
        return im

    if channels is None:  # grey only if every image is (reads headers only)
        channels = 1
        for p, _ in files:
            with open_image(p) as im:
                if im.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                    channels = 3
                    break
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise DatasetError(f"images can have 1, 3 or 4 channels, not {channels}")
    x = np.empty((len(files), height, width, channels), dtype=np.uint8)
    for i, (p, _) in enumerate(files):
        with open_image(p) as im:
            try:
                im = im.convert(mode)
                if im.size != (width, height):
                    im = im.resize((width, height), Image.BILINEAR)
            except OSError as exc:
                raise DatasetError(f"cannot read the image {p}: {exc}") from exc
            x[i] = np.asarray(im, dtype=np.uint8).reshape(height, width, channels)
    y = np.array([label for _, label in files], dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(np.floor(len(x) * validation_fraction + 1e-9))) if len(x) > 1 else 0
    test, train = perm[:n_test], perm[n_test:]
    info = DatasetInfo(
        root.name, tuple(classes), len(classes), (height, width, channels), 255.0, str(root)
    )
    return DataSplits(x[train], y[train], x[test], y[test], info)


def _image_files(folder: Path, real_root: Path, root: Path):
    """The image files under ``folder``, recursively, refusing any symlink (file or folder)
    that leads out of the dataset folder; a folder reached twice (a loop) is walked once."""
    seen: set[str] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if not _inside(real, real_root):
            raise DatasetError(
                f"{current} is a symlink to {real}, outside the dataset folder {root}; "
                "copy the images into the dataset folder"
            )
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            raise DatasetError(f"cannot list {current}: {exc.strerror or exc}") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=True):
                stack.append(path)
            elif path.suffix.lower() in IMAGE_EXTENSIONS and entry.is_file(follow_symlinks=True):
                if entry.is_symlink() and not _inside(os.path.realpath(path), real_root):
                    raise DatasetError(
                        f"{path} is a symlink to {os.path.realpath(path)}, outside the dataset "
                        f"folder {root}; copy the image into the dataset folder"
                    )
                yield path


def _inside(real: str, real_root: Path) -> bool:
    return real == str(real_root) or real.startswith(str(real_root) + os.sep)


# --------------------------------------------------------------------------- dispatch

BUILTIN_LOADERS = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}


def load(
    dataset,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    verify: bool = True,
    base_dir: str | os.PathLike | None = None,
    seed: int = 0,
    channels: int | None = None,
    limit: int | None = None,
) -> DataSplits:
    """Load ``dataset``: a built-in name, or a spec's ``NpzDataset``/``FolderDataset`` (or the
    same as a dict). Relative paths are resolved against ``base_dir`` (the spec's folder)."""
    if isinstance(dataset, str):
        if dataset == "digits":
            return load_digits()
        if dataset in BUILTIN_LOADERS:
            return BUILTIN_LOADERS[dataset](data_dir, download=download, verify=verify)
        known = ", ".join([*BUILTIN_LOADERS, "digits"])
        raise DatasetError(f"unknown dataset {dataset!r}; built-in datasets: {known}")
    get = dataset.get if isinstance(dataset, dict) else lambda k, d=None: getattr(dataset, k, d)
    kind = get("type")
    path = Path(os.path.expanduser(str(get("path", ""))))
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if kind == "npz":
        return load_npz(path, num_classes=get("num_classes"), limit=limit)
    if kind == "folder":
        return load_folder(
            path, get("image_size"), get("validation_fraction", 0.2), seed=seed, channels=channels
        )
    raise DatasetError(f"unknown dataset type {kind!r}: expected 'npz' or 'folder'")
