"""The MNIST CNN and MLP written by hand in PyTorch, the way a PyTorch user would: NCHW
``nn.Sequential`` ending in logits, ``nn.CrossEntropyLoss``, ``torch.optim.RMSprop`` with
Keras's settings (lr 1e-3, rho 0.9, epsilon 1e-7), and a ``DataLoader`` over a
``TensorDataset`` built once from the numpy arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def build(name: str) -> nn.Module:
    if name == "mnist_cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(1152, 10),
        )
    if name == "mnist_mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    raise ValueError(name)


class Trainer:
    """Model, optimizer and data loader; ``epoch()`` runs one shuffled training epoch."""

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0):
        torch.manual_seed(seed)
        self.model = build(name)
        self.optimizer = torch.optim.RMSprop(self.model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        self.loss_fn = nn.CrossEntropyLoss()
        images = torch.from_numpy(np.asarray(x, np.float32))
        if name == "mnist_cnn":  # NHWC arrays -> the NCHW layout torch users train on
            images = images.reshape(-1, 28, 28, 1).permute(0, 3, 1, 2).contiguous()
        dataset = torch.utils.data.TensorDataset(images, torch.from_numpy(np.asarray(y)).long())
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)

    def epoch(self) -> dict:
        self.model.train()
        total = correct = 0
        loss_sum = 0.0
        for xb, yb in self.loader:
            self.optimizer.zero_grad()
            logits = self.model(xb)
            loss = self.loss_fn(logits, yb)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.item() * len(xb)
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(xb)
        return {"loss": loss_sum / total, "accuracy": correct / total}
