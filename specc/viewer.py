"""`specc view`: show a spec's compiled ONNX graph (or any .onnx file) in Netron.

A spec is checked and compiled to ONNX in memory (seeded Keras-style initial weights), and
the bytes are handed to Netron's local server, which opens the browser.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

EXIT_INVALID, EXIT_USAGE, EXIT_RUN = 1, 2, 3


class ViewError(Exception):
    def __init__(self, message: str, exit_code: int, located: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        #: the message is the spec's own diagnostics ("file:line:col: error: ..."), printed as is
        self.located = located


def _require(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        from .extras import message

        raise ViewError(message(module, "`specc view`"), EXIT_RUN)


def prepare(path: str | Path) -> tuple[str, bytes]:
    """(file name shown in Netron, ONNX bytes) for a spec or an .onnx file."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if path.exists() and not path.is_file():  # a folder, /dev/zero: never read endlessly
            raise ViewError(f"{path}: not a regular file", EXIT_USAGE)
        try:
            return path.name, path.read_bytes()
        except FileNotFoundError:
            raise ViewError(f"{path}: no such file", EXIT_USAGE) from None
        except OSError as exc:
            raise ViewError(f"{path}: cannot read: {exc.strerror}", EXIT_USAGE) from None
    from . import diagcodes as codes
    from .diagnostics import SpecError
    from .pipeline import check_file

    result = check_file(path)
    if not result.ok:
        usage = any(d.code == codes.IO for d in result.diagnostics)
        text = "\n".join(d.format() for d in result.diagnostics) or f"{path}: invalid spec"
        raise ViewError(text, EXIT_USAGE if usage else EXIT_INVALID, located=True)
    _require("onnx", "onnx")
    from . import targets

    try:
        graph = targets.get("onnx").emit(result.model, result.source)
    except SpecError as exc:
        raise ViewError(str(exc), EXIT_INVALID) from None
    return f"{result.model.name}.onnx", graph


def serve(
    path: str | Path,
    port: int | None = None,
    browse: bool = True,
    log: Callable[[str], None] = print,
) -> None:
    """Serve the model with Netron until interrupted."""
    _require("netron", "view")
    name, data = prepare(path)
    import netron

    # a bytearray: Netron reads bytes objects as framework models of its own
    address = netron.serve(name, bytearray(data), address=port, browse=browse)
    host, bound = address if isinstance(address, tuple) else ("localhost", address)
    log(f"Netron is serving {name} at http://{host}:{bound} (Ctrl-C stops it)")
    netron.wait()
