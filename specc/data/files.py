"""Where dataset files live: lookup order, checksums, downloads (standard library only).

Lookup order for the files of a built-in dataset: an explicit ``data_dir`` (``--data-dir``),
then each directory in ``$SPECC_DATA_DIR`` (``os.pathsep``-separated), then the user cache
(``$XDG_CACHE_HOME/specc/datasets`` or ``~/.cache/specc/datasets``). When no directory holds
a complete set, the files are downloaded into the cache from the official locations (MD5
verified, written atomically); with ``download=False`` or offline a :class:`DatasetNotFound`
lists the exact files expected, the directories searched and where to put the files.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import temp_prefix


class DatasetError(Exception):
    """A dataset cannot be found, read or used; the message says what to do."""


class DatasetNotFound(DatasetError):
    """The files of a dataset are in none of the searched directories (and were not downloaded)."""

    def __init__(self, message: str, *, expected: Sequence[str], searched: Sequence[Path]):
        super().__init__(message)
        self.expected = list(expected)
        self.searched = list(searched)


class ChecksumError(DatasetError):
    """A dataset file is truncated or corrupted: its MD5 is not the official one."""

    def __init__(self, path: Path, expected: str, actual: str):
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        size = self.path.stat().st_size if self.path.exists() else 0
        super().__init__(
            f"checksum mismatch for {self.path}: expected MD5 {expected}, got {actual} "
            f"({size:,} bytes); the file is truncated or corrupted. Delete it and copy or "
            f"download it again (specc downloads missing files into {cache_dir()})."
        )


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name, MD5 and the URLs it is published at (tried in order)."""

    name: str
    md5: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class FileSet:
    """The files of one layout of a dataset, in the sub-folders a data directory may use."""

    files: tuple[RemoteFile, ...]
    subdirs: tuple[str, ...]  # relative to a data directory; "" is the directory itself

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]


def _mirrors(bases: Sequence[str], name: str) -> tuple[str, ...]:
    return tuple(base + name for base in bases)


# MNIST: the original site (often rate-limited) and the mirror torchvision uses; the
# MD5s are the official ones (and those of ../shared/datasets/README.md).
_MNIST_BASES = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_BASES = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

_MNIST_MD5 = (
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
)
_FASHION_MD5 = (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
)

CIFAR10_ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", (_CIFAR10_URL,)
)
#: the extracted python version (``cifar-10-batches-py/``); MD5s of the official release
CIFAR10_BATCHES = (
    RemoteFile("data_batch_1", "c99cafc152244af753f735de768cd75f", ()),
    RemoteFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec", ()),
    RemoteFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751", ()),
    RemoteFile("data_batch_4", "634d18415352ddfa80567beed471001a", ()),
    RemoteFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb", ()),
    RemoteFile("test_batch", "40351d587109b95175f43aff81a1287e", ()),
)

#: every layout a built-in dataset can be found in, in preference order; the first
#: ``FileSet`` with URLs is the one downloaded into the cache (into its first subdir)
LAYOUTS: dict[str, tuple[FileSet, ...]] = {
    "mnist": (
        FileSet(
            tuple(
                RemoteFile(n, m, _mirrors(_MNIST_BASES, n)) for n, m in zip(IDX_NAMES, _MNIST_MD5)
            ),
            ("mnist",),
        ),
    ),
    "fashion_mnist": (
        FileSet(
            tuple(
                RemoteFile(n, m, _mirrors(_FASHION_BASES, n))
                for n, m in zip(IDX_NAMES, _FASHION_MD5)
            ),
            ("fashion-mnist", "fashion_mnist"),
        ),
    ),
    "cifar10": (
        FileSet(CIFAR10_BATCHES, ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10")),
        FileSet((CIFAR10_ARCHIVE,), ("cifar10", "")),
    ),
}

#: where each dataset's files are published (for messages)
HOMEPAGES = {
    "mnist": "http://yann.lecun.com/exdb/mnist/",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html",
}


# --------------------------------------------------------------------------- directories


def cache_dir() -> Path:
    """The user cache for downloaded datasets: ``$XDG_CACHE_HOME/specc/datasets`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "specc" / "datasets"


def search_roots(data_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The data directories searched, in order, each with where it came from."""
    roots: list[tuple[Path, str]] = []
    if data_dir is not None and str(data_dir) != "":
        roots.append((Path(data_dir).expanduser(), "data_dir"))
    for part in os.environ.get("SPECC_DATA_DIR", "").split(os.pathsep):
        if part.strip():
            roots.append((Path(part.strip()).expanduser(), "SPECC_DATA_DIR"))
    roots.append((cache_dir(), "cache"))
    seen: set[Path] = set()
    unique = []
    for root, origin in roots:
        if root not in seen:
            seen.add(root)
            unique.append((root, origin))
    return unique


# --------------------------------------------------------------------------- checksums

_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def md5_file(path: str | os.PathLike) -> str:
    """MD5 hex digest of a file, cached in-process by (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    digest = _MD5_CACHE.get(key)
    if digest is None:
        h = hashlib.md5(usedforsecurity=False)
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        _MD5_CACHE[key] = digest
    return digest


def verify_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`ChecksumError` (naming the file, expected and actual MD5) on a mismatch."""
    actual = md5_file(path)
    if actual != expected.lower():
        raise ChecksumError(Path(path), expected.lower(), actual)


# --------------------------------------------------------------------------- lookup


@dataclass(frozen=True)
class Located:
    """Where a dataset's files were found: the layout and each file's path."""

    layout: FileSet
    paths: dict[str, Path]
    directory: Path


def _find(name: str, data_dir) -> tuple[Located | None, list[Path], list[str]]:
    searched: list[Path] = []
    partial: list[str] = []
    for root, origin in search_roots(data_dir):
        for layout in LAYOUTS[name]:
            for sub in layout.subdirs:
                d = root / sub if sub else root
                if d not in searched:
                    searched.append(d)
                present = {f: d / f for f in layout.names if (d / f).is_file()}
                if len(present) == len(layout.names):
                    return Located(layout, present, d), searched, partial
                if present:
                    missing = [f for f in layout.names if f not in present]
                    partial.append(
                        f"{d} ({origin}) has {len(present)} of the files; missing: {', '.join(missing)}"
                    )
    return None, searched, partial


def locate(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    verify: bool = True,
    log: Callable[[str], None] | None = None,
) -> Located:
    """Find (or download into the cache) the files of built-in dataset ``name``; verify their MD5s."""
    if name not in LAYOUTS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(LAYOUTS))}")
    found, searched, partial = _find(name, data_dir)
    failures: list[str] = []
    if found is None and download:
        try:
            found = _download(name, log=log)
        except DatasetError as exc:
            failures.append(str(exc))
    if found is None:
        raise _not_found(name, data_dir, searched, partial, download, failures)
    if verify:
        try:
            for f in found.layout.files:
                verify_md5(found.paths[f.name], f.md5)
        except ChecksumError:
            # a corrupted download in the cache is fetched again; other copies are the user's
            downloadable = all(f.urls for f in found.layout.files)
            if not (download and downloadable and found.directory.is_relative_to(cache_dir())):
                raise
            found = _download(name, log=log)
    return found


def _not_found(name, data_dir, searched, partial, download, failures) -> DatasetNotFound:
    layouts = LAYOUTS[name]
    expected: list[str] = []
    lines = [f"dataset {name!r}: files not found."]
    for i, layout in enumerate(layouts):
        lead = "expected files" if i == 0 else "or"
        lines.append(f"  {lead}: {', '.join(layout.names)}")
        where = " or ".join(f"<dir>/{s}/" if s else "<dir>/" for s in layout.subdirs)
        lines.append(f"    in {where}")
        expected += layout.names
    lines.append("searched:")
    lines += [f"  {d}" for d in searched]
    lines += [f"  note: {p}" for p in partial]
    root = search_roots(data_dir)[0][0]
    puts = [
        f"{'the files' if len(fs.names) > 1 else fs.names[0]} in {root / fs.subdirs[0] if fs.subdirs[0] else root}/"
        for fs in layouts
    ]
    lines.append(
        f"put {' or '.join(puts)} (or pass --data-dir <dir> or set SPECC_DATA_DIR=<dir> for "
        f"another directory <dir>); official source: {HOMEPAGES[name]}"
    )
    if not download:
        lines.append("downloading is disabled (download=False).")
    for failure in failures:
        lines.append(f"download failed: {failure}")
    return DatasetNotFound("\n".join(lines), expected=expected, searched=searched)


# --------------------------------------------------------------------------- download


def _download(name: str, *, log: Callable[[str], None] | None = None) -> Located:
    layout = next(fs for fs in LAYOUTS[name] if all(f.urls for f in fs.files))
    target = cache_dir() / layout.subdirs[0]
    paths = {}
    for f in layout.files:
        dest = target / f.name
        if not dest.is_file() or md5_file(dest) != f.md5:
            download_file(f, dest, log=log)
        paths[f.name] = dest
    return Located(layout, paths, target)


def download_file(
    remote: RemoteFile,
    dest: Path,
    *,
    timeout: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Download ``remote`` to ``dest`` (first URL that answers with the right MD5), atomically.

    The bytes go to a temporary file beside ``dest``, which is renamed over ``dest`` only
    after its MD5 matched: an interrupted or corrupted download never leaves a torn file.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in remote.urls:
        log(f"downloading {remote.name} from {url}")
        fd, tmp_name = tempfile.mkstemp(
            prefix=temp_prefix(remote.name), suffix=".part", dir=dest.parent
        )
        tmp = Path(tmp_name)
        try:
            h = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != remote.md5:
                errors.append(f"{url}: MD5 {h.hexdigest()}, expected {remote.md5}")
                continue
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            if tmp.exists():
                tmp.unlink()
    raise DatasetError(f"could not download {remote.name}: " + "; ".join(errors))
