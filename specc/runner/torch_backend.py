"""The PyTorch side of the training loop: one optimizer step with Keras's loss formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .losses import EPSILON
from .torch_optim import make_optimizer


def keras_loss(
    outputs: torch.Tensor, y: torch.Tensor, loss: str, from_logits: bool
) -> torch.Tensor:
    """The loss Keras computes for the same outputs and labels (mean over the batch).

    From probabilities, Keras renormalizes and clips to [1e-7, 1 - 1e-7] before the log;
    from logits it uses log-softmax (stable). The module keeps the spec's final softmax.
    """
    if loss == "mse":
        return F.mse_loss(outputs, y.reshape(outputs.shape).to(outputs.dtype))
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

    def __init__(self, module: torch.nn.Module, training):
        self.module = module
        self.training = training
        self.optimizer = make_optimizer(module.parameters(), training.optimizer)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train_step(self, x, y) -> tuple[float, float]:
        self.module.train()
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.from_numpy(np.asarray(y))
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.module(xt)
        loss = keras_loss(outputs, yt, self.training.loss, self.training.from_logits)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), batch_accuracy(
            outputs.detach(), yt, self.training.loss, self.training.from_logits
        )

    @torch.no_grad()
    def predict(self, x, batch_size: int):
        self.module.eval()
        parts = []
        for start in range(0, len(x), max(batch_size, 256)):
            chunk = torch.from_numpy(
                np.ascontiguousarray(x[start : start + max(batch_size, 256)], dtype=np.float32)
            )
            parts.append(self.module(chunk).numpy())
        return np.concatenate(parts) if parts else np.zeros((0,))

    def snapshot(self):
        return {k: v.clone() for k, v in self.module.state_dict().items()}

    def restore(self, snapshot) -> None:
        self.module.load_state_dict(snapshot)

    def save(self, folder: Path) -> None:
        torch.save(
            {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict()},
            folder / "state.pt",
        )

    def load(self, folder: Path) -> None:
        state = torch.load(folder / "state.pt", weights_only=True)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
