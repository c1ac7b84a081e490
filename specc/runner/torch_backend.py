"""The PyTorch side of the training loop: one optimizer step with Keras's loss formulas."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .losses import EPSILON
from .torch_optim import make_optimizer

PRECISIONS = ("fp32", "bf16", "fp16")

_ALLOCATOR_TUNED: bool | None = None


def tune_allocator() -> bool:
    """Keep freed blocks of up to 32 MiB in the process heap (glibc ``mallopt``).

    glibc serves blocks above its mmap threshold (128 KiB at start) with fresh ``mmap``
    pages and unmaps them on free, so every training step page-faults its activation
    and gradient buffers in again (a batch of 64 through the MNIST CNN's first conv is
    5.5 MB): measured 2x slower CNN training on this machine. Process-wide, once; no
    effect on numerics. ``SPECC_MALLOC_TUNE=0`` leaves the allocator alone. Returns
    whether the settings were applied.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is None:
        _ALLOCATOR_TUNED = False
        if sys.platform.startswith("linux") and os.environ.get("SPECC_MALLOC_TUNE", "1") != "0":
            try:
                libc = ctypes.CDLL(None)
                m_trim_threshold, m_mmap_threshold = -1, -3
                _ALLOCATOR_TUNED = bool(
                    libc.mallopt(m_mmap_threshold, 32 << 20)
                    and libc.mallopt(m_trim_threshold, 64 << 20)
                )
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                pass
    return _ALLOCATOR_TUNED


class LogitsTap:
    """Records the inputs of the softmax / sigmoid calls a generated module makes.

    Keras (TensorFlow backend) computes cross-entropy from the *logits* when the model's
    output comes straight from a softmax or sigmoid (``_keras_logits``), which is stable and
    never clips; from other probabilities it clips them to [1e-7, 1 - 1e-7]. The generated
    module keeps the spec's final softmax, so while the tap is active the module's ``F``
    and ``torch`` names point to thin proxies that remember ``output -> (logits, dim)``.
    """

    def __init__(self, module: torch.nn.Module):
        self.namespace = type(module).forward.__globals__
        self.seen: dict[int, tuple[str, torch.Tensor, int]] = {}

    def _proxy(self, real, names: tuple[str, ...]):
        tap = self

        class Proxy:
            def __getattr__(self, attribute):
                value = getattr(real, attribute)
                if attribute not in names:
                    return value

                def recorded(x, *args, **kwargs):
                    out = value(x, *args, **kwargs)
                    dim = kwargs.get("dim", args[0] if args else -1)
                    tap.seen[id(out)] = (attribute, x, dim)
                    return out

                return recorded

        return Proxy()

    def __enter__(self):
        self.saved = {name: self.namespace.get(name) for name in ("F", "torch")}
        if self.saved["F"] is F:
            self.namespace["F"] = self._proxy(F, ("softmax", "sigmoid"))
        if self.saved["torch"] is torch:
            self.namespace["torch"] = self._proxy(torch, ("softmax", "sigmoid"))
        self.seen.clear()
        return self

    def __exit__(self, *exc):
        self.namespace.update(self.saved)
        return False

    def logits(self, outputs: torch.Tensor, kind: str) -> torch.Tensor | None:
        """The logits ``outputs`` came from through ``kind`` ('softmax' over the last axis,
        or 'sigmoid'), or None."""
        found = self.seen.get(id(outputs))
        if found is None or found[0] != kind:
            return None
        _, x, dim = found
        if kind == "softmax" and dim not in (-1, outputs.ndim - 1):
            return None
        return x


def keras_loss(
    outputs: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    from_logits: bool,
    tap: LogitsTap | None = None,
) -> torch.Tensor:
    """The loss Keras computes for the same outputs and labels (mean over the batch).

    With ``from_logits``, or when ``tap`` saw the final softmax / sigmoid, from the logits
    (stable, as Keras does); otherwise from the probabilities, renormalized and clipped to
    [1e-7, 1 - 1e-7] before the log, as Keras does.
    """
    if loss == "mse":
        return F.mse_loss(outputs, y.reshape(outputs.shape).to(outputs.dtype))
    if not from_logits and tap is not None:
        logits = tap.logits(outputs, "sigmoid" if loss == "binary_crossentropy" else "softmax")
        if logits is not None:
            outputs, from_logits = logits, True
    if loss == "binary_crossentropy":
        target = y.reshape(outputs.shape).to(outputs.dtype)
        if from_logits:
            return F.binary_cross_entropy_with_logits(outputs, target)
        p = outputs.clamp(EPSILON, 1 - EPSILON)
        return -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    if from_logits:
        log_p = F.log_softmax(outputs, dim=-1)
    else:
        p = outputs / outputs.sum(dim=-1, keepdim=True)
        log_p = p.clamp(EPSILON, 1 - EPSILON).log()
    if loss == "sparse_categorical_crossentropy":
        return F.nll_loss(log_p, y.reshape(-1).long())
    return -(y.to(log_p.dtype) * log_p).sum(dim=-1).mean()


def batch_accuracy(outputs: torch.Tensor, y: torch.Tensor, loss: str, from_logits: bool) -> float:
    if loss == "mse":
        return 0.0
    if outputs.shape[-1] == 1:
        threshold = 0.0 if from_logits else 0.5
        return float(
            ((outputs.reshape(-1) > threshold).long() == y.reshape(-1).long()).float().mean()
        )
    truth = y.argmax(dim=-1) if y.ndim == 2 and y.shape[-1] > 1 else y.reshape(-1).long()
    return float((outputs.argmax(dim=-1) == truth).float().mean())


class TorchBackend:
    """Trains a generated ``nn.Module`` (channels-last inputs, as the spec)."""

    name = "pytorch"

    def __init__(
        self,
        module: torch.nn.Module,
        training,
        *,
        precision: str = "fp32",
        threads: int | None = None,
        device: torch.device | str = "cpu",
    ):
        """``precision``: "bf16" runs the training forward pass under bf16 autocast, "fp16"
        (CUDA only) under float16 autocast with a gradient scaler; the weights, optimizer
        state, loss and evaluation stay float32. Opt-in because it changes the numerics.
        ``threads``: torch's intra-op threads (None: torch's default). ``device``: where the
        module, its optimizer state and every batch live (see specc.runner.devices)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if threads is not None:
            torch.set_num_threads(threads)
        tune_allocator()
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device")
        self.module = module.to(self.device)
        self.net: torch.nn.Module = self.module  # what the forward pass calls (DDP wraps it)
        self.training = training
        self.precision = precision
        self.optimizer = make_optimizer(module.parameters(), training.optimizer)
        self.scaler = (
            torch.amp.GradScaler("cuda", init_scale=2.0**16, growth_interval=2000)
            if precision == "fp16"
            else None
        )
        self.tap = LogitsTap(module)
        #: the weight regularizers' penalty (a generated module has the method when the spec
        #: sets regularizers): added to every loss, as Keras adds its layers' losses
        self.penalty = getattr(module, "regularization_loss", None)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train_step(self, x, y) -> tuple[float, float]:
        return self._step(x, y)

    def _tensors(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        xt = _model_input(x)
        yt = torch.from_numpy(np.asarray(y))
        if self.device.type != "cpu":
            xt = xt.to(self.device, non_blocking=True)
            yt = yt.to(self.device, non_blocking=True)
        return xt, yt

    def _step(self, x, y, weight: float = 1.0) -> tuple[float, float]:
        """One optimizer step on (x, y); the loss is multiplied by ``weight`` before the
        backward pass (a data-parallel rank's share of the global batch). Returns the
        unweighted (mean loss, accuracy) on these samples."""
        self.module.train()
        xt, yt = self._tensors(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.precision != "fp32":
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            with self.tap, torch.autocast(self.device.type, dtype=dtype):
                outputs = self.net(xt)
            outputs = self._float32(outputs)
        else:
            with self.tap:
                outputs = self.net(xt)
        loss = keras_loss(outputs, yt, self.training.loss, self.training.from_logits, self.tap)
        scaled = loss * weight if weight != 1.0 else loss
        if self.penalty is not None:
            # once per rank, unweighted: DDP's average of identical penalty gradients is the
            # penalty's gradient, as in one process
            penalty = self.penalty()
            loss = loss + penalty
            scaled = scaled + penalty
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            scaled.backward()
            self.optimizer.step()
        return float(loss.detach()), batch_accuracy(
            outputs.detach(), yt, self.training.loss, self.training.from_logits
        )

    def _float32(self, outputs: torch.Tensor) -> torch.Tensor:
        """bf16 outputs as float32, keeping what the tap saw (the loss runs in float32)."""
        full = outputs.float()
        found = self.tap.seen.get(id(outputs))
        if found is not None:
            kind, logits, dim = found
            self.tap.seen[id(full)] = (kind, logits.float(), dim)
        return full

    @torch.no_grad()
    def evaluate(self, x, y, batch_size: int):
        """(outputs, mean loss) in inference mode; the loss as Keras's evaluate computes it
        (from the logits when the model ends in softmax / sigmoid)."""
        self.module.eval()
        parts = []
        total = 0.0
        step = max(batch_size, 256)
        for start in range(0, len(x), step):
            chunk, target = self._tensors(x[start : start + step], y[start : start + step])
            with self.tap:
                outputs = self.module(chunk)
            loss = keras_loss(
                outputs, target, self.training.loss, self.training.from_logits, self.tap
            )
            total += float(loss) * len(chunk)
            parts.append(outputs.cpu().numpy())
        outputs = np.concatenate(parts) if parts else np.zeros((0,))
        mean = total / max(len(x), 1)
        if self.penalty is not None:  # Keras's evaluate reports the penalty too
            mean += float(self.penalty())
        return outputs, mean

    def snapshot(self):
        return {k: v.clone() for k, v in self.module.state_dict().items()}

    def restore(self, snapshot) -> None:
        self.module.load_state_dict(snapshot)

    def rng_state(self):
        return torch.get_rng_state()

    def set_rng_state(self, state) -> None:
        torch.set_rng_state(state)

    def state(self) -> dict:
        """Model, optimizer, gradient scaler (fp16) and torch's random state (Dropout
        mid-epoch): what a checkpoint holds."""
        state = {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        if not isinstance(state, dict) or not {"model", "optimizer"} <= set(state):
            raise ValueError("not a specc checkpoint (no model and optimizer state)")
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if "rng" in state:
            rng = state["rng"]
            self.set_rng_state(rng.cpu() if isinstance(rng, torch.Tensor) else rng)
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)

    def save(self, folder: Path) -> None:
        """``state()`` in ``state.pt``."""
        torch.save(self.state(), folder / "state.pt")

    def load(self, folder: Path) -> None:
        path = folder / "state.pt"
        if path.is_file() and path.stat().st_size == 0:
            raise ValueError("empty file")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch's messages for a corrupt file suggest unsafe loading
            raise ValueError(
                f"not a readable PyTorch checkpoint, truncated or corrupted ({type(exc).__name__})"
            ) from None
        self.load_state(state)


def _model_input(x) -> torch.Tensor:
    """A batch as the generated module takes it: integer ids as int64, else float32."""
    x = np.asarray(x)
    dtype = np.int64 if x.dtype.kind in "iu" else np.float32
    return torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
