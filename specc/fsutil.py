"""Safe file writes: nothing half-written, nothing special replaced, one-line errors.

``atomic_write_bytes`` writes a regular file atomically: a temporary file in the same
folder, fsynced, renamed into place, so a reader never sees a half-written file, even if the
process is killed mid-write or the disk fills up (the temporary file is removed then).

Special targets (documented in docs/runs.md):

- a symlink is followed: its target is replaced atomically, the link stays a link;
- a character device or a FIFO (``-o /dev/stdout``, ``-o /dev/null``, a named pipe) is
  written through, as a shell redirect would, and is never replaced by a regular file;
- a directory, a block device or a socket is refused.

Every failure is a ``WriteError`` whose message is one line: ``cannot write PATH: reason``.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path


class WriteError(OSError):
    """A file could not be written; ``str()`` is the one-line message for the user."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot write {path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return self.args[0]


def reason_of(exc: OSError) -> str:
    """A short reason for an OSError ("no space left on device", "read-only file system")."""
    if isinstance(exc, WriteError):
        return exc.reason
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _kind(mode: int) -> str | None:
    """What a non-regular file is, for messages (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "it is a folder"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISBLK(mode):
        return "it is a block device"
    if stat.S_ISSOCK(mode):
        return "it is a socket"
    return "it is not a regular file"


def atomic_write_bytes(path: str | Path, data: bytes | list) -> None:
    """Write ``data`` to ``path`` safely (see the module docstring); raises ``WriteError``.
    ``data`` may be a list of byte pieces (bytes or memoryviews), written in order: a large
    file assembled around arrays needs no copy of them."""
    shown = Path(path)
    path = Path(path)
    try:
        if path.is_symlink():
            path = Path(os.path.realpath(path))  # replace the link's target, keep the link
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except NotADirectoryError:
            raise WriteError(shown, "a part of the path is a file, not a folder") from None
        kind = None if mode is None else _kind(mode)
        if kind in ("character device", "fifo"):
            _write_through(path, data)
            return
        if kind is not None:
            raise WriteError(shown, kind)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.exists():
            raise WriteError(shown, f"the folder {folder} does not exist")
        if not folder.is_dir():
            raise WriteError(shown, f"{folder} is a file, not a folder")
        _replace(path, data)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(shown, reason_of(exc)) from None


def _pieces(data: bytes | list) -> list:
    return data if isinstance(data, list) else [data]


def _write_through(path: Path, data: bytes | list) -> None:
    with open(path, "wb", buffering=0) as handle:
        for piece in _pieces(data):
            view = memoryview(piece).cast("B")
            while view:
                written = handle.write(view)
                view = view[written:]


def _replace(path: Path, data: bytes | list) -> None:
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            for piece in _pieces(data):
                handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file written beside ``name``: the name cut short, so that
    a name near the 255-byte limit does not make the temporary one too long
    (".<name>.<random>.tmp" is 15 bytes longer than the name)."""
    stem = os.fsencode(name)[:100].decode("utf-8", "ignore")  # whole characters
    return f".{stem}."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_tree(folder: str | Path) -> None:
    """fsync every regular file under ``folder`` and the folder itself (before a pointer to it
    is switched, so the pointer never names data that is not on disk)."""
    folder = Path(folder)
    for item in sorted(folder.rglob("*")):
        if item.is_file() and not item.is_symlink():
            fd = os.open(item, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a folder
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
