"""Optional packages: which extra provides each, and the one message (and exit code 3) for
a missing one. The hint works outside the repository: no path to a constraints file."""

from __future__ import annotations

import importlib.util

#: top-level module -> (pip distribution, specc extra that installs it)
PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "keras": ("keras", "keras"),
    "tensorflow": ("tensorflow-cpu", "keras"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "numpy": ("numpy", "train"),
    "matplotlib": ("matplotlib", "train"),
    "PIL": ("pillow", "train"),
    "h5py": ("h5py", "keras"),
    "sklearn": ("scikit-learn", "train"),
    "pygls": ("pygls", "lsp"),
    "lsprotocol": ("lsprotocol", "lsp"),
    "netron": ("netron", "view"),
    "tensorboard": ("tensorboard", "tensorboard"),
}

TORCH_CPU_HINT = (
    "for the CPU-only PyTorch build (no CUDA download), add "
    "--extra-index-url https://download.pytorch.org/whl/cpu"
)


class MissingPackage(Exception):
    """An optional package is not installed: the run cannot proceed (exit code 3)."""

    exit_code = 3

    def __init__(self, module: str, purpose: str | None = None):
        self.module = module
        super().__init__(message(module, purpose))


def message(module: str, purpose: str | None = None) -> str:
    """``<purpose> needs the Python package 'X', which is not installed; install it with:
    pip install 'specc[extra]'`` (plus the CPU-only index for torch)."""
    root = module.split(".")[0]
    dist, extra = PACKAGES.get(root, (root, None))
    who = purpose or "this command"
    text = f"{who} needs the Python package '{dist}', which is not installed; install it with: "
    text += f"pip install 'specc[{extra}]'" if extra else f"pip install {dist}"
    if extra == "torch":
        text += f" ({TORCH_CPU_HINT})"
    return text


def require(modules, purpose: str) -> None:
    """Raise MissingPackage for the first of ``modules`` that is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingPackage(module, purpose)


def missing_module(exc: BaseException) -> str | None:
    """The optional module a ModuleNotFoundError is about, or None for anything else."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        root = exc.name.split(".")[0]
        return root if root in PACKAGES else None
    return None
