"""Devices and precisions for ``specc train --backend pytorch`` (``--device``, ``--precision``).

``auto`` picks CUDA when ``torch.cuda.is_available()`` (under a distributed launch, the GPU
``LOCAL_RANK`` names), else the CPU. Asking for CUDA where there is none is a run that cannot
proceed (exit 3), never a silent fall-back to the CPU.

Precisions: ``fp32``; ``bf16`` (the forward pass under bf16 autocast, on CPU or CUDA);
``fp16`` (float16 autocast with a gradient scaler, CUDA only: float16 training on a CPU has
no scaler support worth trusting and is slower than bf16 there). Weights, optimizer state,
the loss and evaluation stay float32 in every mode.
"""

from __future__ import annotations

import re

from .run import RunError

PRECISIONS = ("fp32", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


class DeviceError(RunError):
    """The requested device or precision is not available here (exit 3)."""


def parse_device(text: str) -> tuple[str, int | None]:
    """``"cuda:1"`` -> ``("cuda", 1)``; raises ValueError on anything else than
    auto | cpu | cuda | cuda:N."""
    found = _DEVICE.match(text.strip().lower())
    if not found or (found.group(2) is not None and found.group(1) != "cuda"):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {text!r}")
    return found.group(1), None if found.group(2) is None else int(found.group(2))


def resolve_device(text: str, local_rank: int = 0, world_size: int = 1):
    """The ``torch.device`` a (local) rank trains on."""
    import torch

    kind, index = parse_device(text)
    cuda = torch.cuda.is_available()
    if kind == "cpu" or (kind == "auto" and not cuda):
        return torch.device("cpu")
    if not cuda:
        raise DeviceError(
            f"--device {text} asks for CUDA, but torch {torch.__version__} sees no CUDA device "
            "(a CPU-only build, no GPU or no driver); use --device cpu or --device auto"
        )
    count = torch.cuda.device_count()
    if index is not None and world_size > 1:
        raise DeviceError(
            f"--device {text} names one GPU, but this run has {world_size} ranks; use "
            "--device cuda (each rank takes the GPU its LOCAL_RANK names)"
        )
    index = local_rank if index is None else index
    if index >= count:
        raise DeviceError(
            f"CUDA device {index} does not exist: this machine has {count} "
            + ("GPU" if count == 1 else "GPUs")
            + (" (one rank per GPU: lower --nproc)" if world_size > 1 else "")
        )
    return torch.device("cuda", index)


def check_precision(precision: str, device) -> None:
    """Raise DeviceError when ``precision`` cannot run on ``device``."""
    import torch

    if precision not in PRECISIONS:
        raise DeviceError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(
            "--precision fp16 trains with a gradient scaler on CUDA only; on the CPU use "
            "--precision bf16"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"{torch.cuda.get_device_name(device)} has no bf16 support; use --precision fp16"
        )


def describe(device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H100 80GB HBM3)`` for logs and run.json."""
    if device.type != "cuda":
        return "cpu"
    import torch

    return f"{device} ({torch.cuda.get_device_name(device)})"
