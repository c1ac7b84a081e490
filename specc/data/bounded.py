"""Bounded, contained reads of user datasets: npz members checked before decompression,
``--limit`` applied while reading, non-finite values refused with their count and place.

``SPECC_MAX_MEMORY`` (bytes, or with a K/M/G/T suffix) caps what one dataset may take in
memory (default 16 GB, as for a model's weights in `specc validate`).
"""

from __future__ import annotations

import math
import zipfile

import numpy as np

from .files import DatasetError

# deflate cannot compress better than about 1032:1; a member declaring more is lying
MAX_DEFLATE_RATIO = 1100


def max_memory() -> int:
    """The byte budget of one dataset: ``SPECC_MAX_MEMORY`` (``512MB``, ``4GB``, bytes), the
    same limit `specc validate` applies to a model's weights and activations (default 16 GB)."""
    from ..infer import max_memory as limit

    return limit()


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class NpzReader:
    """Reads members of an ``.npz`` after checking their headers; shares one memory budget."""

    def __init__(self, path, budget: int | None = None):
        self.path = path
        self.budget = max_memory() if budget is None else budget
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise DatasetError(f"cannot read {path}: not an npz (zip) file ({exc})") from None
        self.members = {
            info.filename[:-4]: info
            for info in self.zip.infolist()
            if info.filename.endswith(".npy")
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    @property
    def files(self) -> list[str]:
        return list(self.members)

    def read(self, name: str, limit: int | None = None, *, kinds: str = "biuf") -> np.ndarray:
        """Member ``name`` (the first ``limit`` rows when given), after checking its header:
        dtype kind in ``kinds``, declared size consistent with the zip entry and within the
        memory budget. Only the bytes needed are decompressed."""
        info = self.members[name]
        where = f"{self.path}: {name}"
        try:
            with self.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unknown npy version {version}")
                header = f.tell()
                if dtype.hasobject or dtype.kind not in kinds:
                    raise DatasetError(
                        f"{where} is an array of {dtype} values; expected "
                        + {"biuf": "numbers", "biufU": "numbers or strings"}.get(kinds, kinds)
                    )
                count = math.prod(shape)
                declared = count * dtype.itemsize
                if info.file_size != header + declared:
                    raise DatasetError(
                        f"{where} declares shape {tuple(shape)} ({_size(declared)}) but holds "
                        f"{_size(max(info.file_size - header, 0))}: truncated or corrupted"
                    )
                if (
                    info.compress_type != zipfile.ZIP_STORED
                    and info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1) + 4096
                ):
                    raise DatasetError(
                        f"{where} declares {_size(info.file_size)} from {_size(info.compress_size)} "
                        "compressed, more than compression can give: corrupted or a "
                        "decompression bomb"
                    )
                rows = shape[0] if shape else 1
                if limit is not None and shape and not fortran:
                    rows = min(rows, limit)
                    shape = (rows, *shape[1:])
                needed = math.prod(shape) * dtype.itemsize
                if needed > self.budget:
                    raise DatasetError(
                        f"{where} needs {_size(needed)} in memory (shape {tuple(shape)}), more "
                        f"than the {_size(self.budget)} allowed; use --limit, or raise "
                        "SPECC_MAX_MEMORY"
                    )
                buffer = bytearray(needed)
                view = memoryview(buffer)
                got = 0
                while got < needed:
                    n = f.readinto(view[got:])
                    if not n:
                        raise DatasetError(f"{where}: the data ends early (truncated)")
                    got += n
                self.budget -= needed
        except DatasetError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib_error()) as exc:
            raise DatasetError(f"cannot read {where}: {exc}") from None
        array = np.frombuffer(buffer, dtype=dtype)
        if fortran and len(shape) > 1:
            array = array.reshape(shape[::-1]).transpose()
        else:
            array = array.reshape(shape)
        return array


def zlib_error():
    import zlib

    return zlib.error


def check_finite(array: np.ndarray, where: str, *, hint: str = "") -> None:
    """Refuse NaN/Inf values with their count and the first one's index."""
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if not count:
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise DatasetError(
        f"{where} holds {count:,} NaN/Inf value{'s' if count != 1 else ''}, the first at index "
        f"{list(first)}" + (f"; {hint}" if hint else "")
    )
