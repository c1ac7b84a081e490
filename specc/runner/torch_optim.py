"""Keras's optimizer update rules for PyTorch, so one spec trains the same way in both.

torch's own Adam and RMSprop differ from Keras's in where epsilon goes:
- Keras Adam: ``w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)``; torch puts eps
  after the bias correction of v, i.e. an effective eps of ``eps*sqrt(1-b2^t)`` in Keras terms.
- Keras RMSprop: ``w -= lr * g / sqrt(v + eps)`` (eps inside the root); torch:
  ``g / (sqrt(v) + eps)``.
SGD (with momentum and Nesterov) is the same in both, so torch.optim.SGD is used as is.
"""

from __future__ import annotations

import torch


class _KerasRule(torch.optim.Optimizer):
    """One parameter at a time: Keras's ``_apply_weight_decay`` then ``update_step``."""

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["weight_decay"]:
                    p.sub_(p * (group["lr"] * group["weight_decay"]))
                self._update(p, self.state[p], group)
        return loss


class KerasAdam(_KerasRule):
    """keras.optimizers.Adam / AdamW (decoupled ``weight_decay``: ``w -= lr*wd*w`` first)."""

    def __init__(
        self,
        params,
        lr=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        weight_decay=0.0,
    ):
        defaults = dict(
            lr=lr,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def _update(self, p, state, group):
        lr, b1, b2, eps = group["lr"], group["beta_1"], group["beta_2"], group["epsilon"]
        if not state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.zeros_like(p)
            if group["amsgrad"]:
                state["v_hat"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        alpha = lr * (1 - b2**t) ** 0.5 / (1 - b1**t)
        m, v = state["m"], state["v"]
        m.add_((p.grad - m) * (1 - b1))
        v.add_((p.grad.square() - v) * (1 - b2))
        if group["amsgrad"]:
            torch.maximum(state["v_hat"], v, out=state["v_hat"])
            v = state["v_hat"]
        p.sub_(m * alpha / (v.sqrt() + eps))


class KerasRMSprop(_KerasRule):
    """keras.optimizers.RMSprop, including ``momentum`` and ``centered``."""

    def __init__(
        self,
        params,
        lr=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        weight_decay=0.0,
    ):
        defaults = dict(
            lr=lr,
            rho=rho,
            momentum=momentum,
            epsilon=epsilon,
            centered=centered,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def _update(self, p, state, group):
        lr, rho, eps = group["lr"], group["rho"], group["epsilon"]
        if not state:
            state["velocity"] = torch.zeros_like(p)
            state["momentum"] = torch.zeros_like(p)
            state["average_gradient"] = torch.zeros_like(p)
        g = p.grad
        velocity = state["velocity"]
        velocity.mul_(rho).add_(g.square() * (1 - rho))
        if group["centered"]:
            average = state["average_gradient"]
            average.mul_(rho).add_(g * (1 - rho))
            denominator = velocity - average.square() + eps
        else:
            denominator = velocity + eps
        increment = lr * g / denominator.sqrt()
        if group["momentum"] > 0:
            state["momentum"].mul_(group["momentum"]).add_(increment)
            p.sub_(state["momentum"])
        else:
            p.sub_(increment)


def make_optimizer(params, optimizer) -> torch.optim.Optimizer:
    """The torch optimizer for a spec's ``training.optimizer``, every value explicit."""
    kind = optimizer.type
    wd = getattr(optimizer, "weight_decay", None) or 0.0
    if kind == "sgd":
        # Keras SGD's weight_decay is decoupled (w -= lr*wd*w), as torch's with momentum 0
        return _KerasSGD(
            params,
            lr=optimizer.learning_rate,
            momentum=optimizer.momentum,
            nesterov=optimizer.nesterov,
            weight_decay=wd,
        )
    if kind in ("adam", "adamw"):
        return KerasAdam(
            params,
            lr=optimizer.learning_rate,
            beta_1=optimizer.beta_1,
            beta_2=optimizer.beta_2,
            epsilon=optimizer.epsilon,
            amsgrad=optimizer.amsgrad,
            weight_decay=wd,
        )
    if kind == "rmsprop":
        return KerasRMSprop(
            params,
            lr=optimizer.learning_rate,
            rho=optimizer.rho,
            momentum=optimizer.momentum,
            epsilon=optimizer.epsilon,
            centered=optimizer.centered,
            weight_decay=wd,
        )
    raise ValueError(f"unknown optimizer {kind!r}")


class _KerasSGD(torch.optim.SGD):
    """torch SGD (same momentum/Nesterov rule as Keras) plus Keras's decoupled weight decay."""

    def __init__(self, params, lr, momentum, nesterov, weight_decay):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
        self.decoupled_weight_decay = weight_decay

    @torch.no_grad()
    def step(self, closure=None):
        if self.decoupled_weight_decay:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.sub_(p * (group["lr"] * self.decoupled_weight_decay))
        return super().step(closure)
