"""The run folder as a transaction: an OS lock, a manifest of what specc wrote, and the
checks that a ``--resume`` continues the same run. docs/runs.md states the guarantees.

- ``.specc.lock``: held with ``flock`` for the whole run (the OS releases it when the process
  dies, however it dies); it holds the pid of the holder, so a second run can name it.
- ``.specc-manifest.json``: every file and folder specc created in the run folder. specc
  deletes or replaces only what is listed there; a file of the user's in the way of an output
  is refused (exit 2), never overwritten or deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..fsutil import WriteError, atomic_write_text, reason_of

LOCK_NAME = ".specc.lock"
MANIFEST_NAME = ".specc-manifest.json"


class RunFolderBusy(Exception):
    """Another process holds the run folder's lock (exit 2)."""


class RunFolderConflict(Exception):
    """The run folder holds something of the user's where specc would write (exit 2)."""


class RunDamaged(Exception):
    """A file of the run folder cannot be read back (exit 3)."""

    def __init__(self, path: str | Path, reason: str, hint: str = ""):
        self.path = str(path)
        self.reason = reason
        self.hint = hint or (
            f"move the run folder {_run_folder_of(Path(path))} aside and start again, or "
            f"restore {path} from a copy"
        )
        super().__init__(f"the run folder is damaged: {path}: {reason}; {self.hint}")


def _run_folder_of(path: Path) -> Path:
    """The run folder holding ``path`` (the nearest folder with specc's lock or manifest)."""
    for folder in path.parents:
        if (folder / LOCK_NAME).exists() or (folder / MANIFEST_NAME).exists():
            return folder
    return path.parent


class RunFolder:
    """A locked run folder with its manifest. Use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None
        self.owned: set[str] = set()

    # ------------------------------------------------------------------ lock
    def __enter__(self) -> RunFolder:
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def lock(self) -> None:
        try:
            if self.path.exists() and not self.path.is_dir():
                raise WriteError(self.path, "it is a file, not a folder")
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except WriteError:
            raise
        except OSError as exc:
            raise WriteError(self.path / LOCK_NAME, reason_of(exc)) from None
        try:
            import fcntl
        except ImportError:  # not POSIX: no OS lock available, run unlocked
            self._fd = fd
            self._load_manifest()
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderBusy(
                f"{self.path} is in use by another specc run (pid {holder}); wait for it to "
                "finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        self._load_manifest()
        self.claim(LOCK_NAME)

    def unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    # ------------------------------------------------------------------ manifest
    def _load_manifest(self) -> None:
        path = self.path / MANIFEST_NAME
        if not path.exists():
            self.owned = set()
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = data["files"]
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise ValueError("'files' is not a list of names")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunDamaged(path, f"not a specc manifest ({exc})") from None
        self.owned = set(files)

    def _save_manifest(self) -> None:
        atomic_write_text(
            self.path / MANIFEST_NAME,
            json.dumps({"files": sorted(self.owned)}, indent=2) + "\n",
        )

    def owns(self, name: str) -> bool:
        return name in self.owned

    def claim(self, *names: str) -> None:
        """Record ``names`` (relative to the run folder) as specc's, before they are written.

        A name that exists but is not in the manifest belongs to the user: refused."""
        new = []
        for name in names:
            if name in self.owned or name == MANIFEST_NAME:
                continue
            target = self.path / name
            if (target.exists() or target.is_symlink()) and name != LOCK_NAME:
                raise RunFolderConflict(
                    f"{target} exists and was not written by specc; move it away or choose "
                    "another --out (specc never replaces or deletes files it did not create)"
                )
            new.append(name)
        if new:
            self.owned.update(new)
            self._save_manifest()

    def remove(self, name: str) -> None:
        """Delete ``name`` if (and only if) specc created it; forget it in the manifest."""
        if name not in self.owned:
            return
        target = self.path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            try:
                target.unlink()
            except FileNotFoundError:
                pass
        if not (target.exists() or target.is_symlink()):
            self.owned.discard(name)
            self._save_manifest()


def read_json(path: Path, what: str = "a JSON object") -> dict:
    """A run folder's JSON file, or RunDamaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDamaged(path, "the file is missing") from None
    except UnicodeDecodeError:
        raise RunDamaged(path, "not text (corrupted)") from None
    except json.JSONDecodeError as exc:
        raise RunDamaged(
            path, "empty file" if not exc.doc.strip() else f"not valid JSON ({exc.msg})"
        ) from None
    except OSError as exc:
        raise RunDamaged(path, reason_of(exc)) from None
    if not isinstance(data, dict):
        raise RunDamaged(path, f"expected {what}")
    return data


# The options of a run that a resumed run must share; (key, label, overridable with --force).
RESUME_KEYS = (
    ("spec_sha256", "spec (model and training section)", False),
    ("backend", "backend", False),
    ("seed", "seed", False),
    ("batch_size", "batch size", False),
    ("dataset", "dataset", False),
    ("limit", "--limit", False),
    ("precision", "precision", False),
    ("epochs_target", "epochs", True),
    ("data_dir", "--data-dir", True),
)


def resume_differences(recorded: dict, current: dict) -> list[tuple[str, object, object, bool]]:
    """(label, recorded value, current value, safe-with---force) for every difference."""
    out = []
    for key, label, safe in RESUME_KEYS:
        if key not in recorded:
            continue
        if recorded.get(key) != current.get(key):
            out.append((label, recorded.get(key), current.get(key), safe))
    return out
