"""`specc import`: existing Keras models and ONNX graphs become specs, with their weights.

    from specc.importers import import_model
    result = import_model("model.keras")      # ImportResult: spec (dict), weights, notes
    text = result.yaml()

Nothing is dropped silently: anything the spec language cannot express stops the import
with an :class:`ImportRefused` listing every such item (what, how many, where). Options that
only affect initialization or training are written when specc supports them, else reported
as notes. Loading never executes code from the file: Keras configs are read as JSON and
refused by name before Keras loads anything (in safe mode, for the weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ImportRefused(Exception):
    """The model cannot be imported; ``items`` lists every problem (one line each)."""

    def __init__(self, items: list[str], exit_code: int = 1):
        self.items = items
        self.exit_code = exit_code
        super().__init__("\n".join(items))


@dataclass
class ImportResult:
    """An imported model: the spec (plain data), its canonical weights (or None), notes."""

    spec: dict
    weights: dict | None = None
    notes: list[str] = field(default_factory=list)
    source_format: str = ""

    def yaml(self) -> str:
        from .spec_writer import spec_yaml

        return spec_yaml(self.spec)


SUFFIXES = {".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".json": "keras", ".onnx": "onnx"}


def import_model(path: str | Path, *, with_weights: bool = True) -> ImportResult:
    """Import a Keras model (``.keras``, ``.h5``, ``.json`` config) or an ONNX graph."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ImportRefused(
            [f"{path}: unknown model format '{path.suffix}'; specc imports {', '.join(SUFFIXES)}"],
            exit_code=2,
        )
    if path.is_dir():
        raise ImportRefused([f"{path}: is a folder, not a model file"], exit_code=2)
    if path.exists() and not path.is_file():  # a device, a FIFO, a socket
        raise ImportRefused([f"{path}: not a regular file"], exit_code=2)
    if not path.is_file():
        raise ImportRefused([f"{path}: no such file"], exit_code=2)
    if path.stat().st_size == 0:
        raise ImportRefused([f"{path}: empty file"], exit_code=2)
    if kind == "keras":
        from .keras import import_keras

        return import_keras(path, with_weights=with_weights)
    from .onnx import import_onnx

    return import_onnx(path, with_weights=with_weights)


__all__ = ["ImportRefused", "ImportResult", "import_model"]
