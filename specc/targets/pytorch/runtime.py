"""The PyTorch runtime adapter: the generated module imported from a file; per-layer
outputs come from its tapped variant (the same module recording each layer's output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import weights as W
from ...ir import ModelIR
from ...layers import lowering as lw
from ..base import optimizer_spec


def _to_channels_last(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == lw.CF and array.ndim >= 3:
        return np.moveaxis(array, 1, -1)
    return array


class TorchRuntime:
    name = "pytorch"

    def __init__(self, model: ModelIR, folder: Path, tag: str = ""):
        self.model = model
        self.folder = folder
        self.tag = tag
        self.net = self._build(taps=False)
        self.net.eval()
        self._tapped = None

    def _build(self, taps: bool):
        import torch

        from ...codegen.pyformat import class_name
        from ...runner.run import import_generated
        from . import TARGET

        kind = "_taps" if taps else ""
        path = self.folder / f"pytorch_model{self.tag}{kind}.py"
        path.write_text(TARGET.emit(self.model, taps=taps), encoding="utf-8")
        module = import_generated(
            path, f"specc_crosscheck_pytorch{self.tag}{kind}_{self.model.name}"
        )
        cls = getattr(module, class_name(self.model.name))
        assert issubclass(cls, torch.nn.Module)
        return cls()

    def load(self, weights) -> None:
        W.to_torch(self.net, self.model, weights)

    def _call(self, net, inputs):
        import torch

        out = net(*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs))
        return list(out) if isinstance(out, tuple) else [out]

    def forward(self, inputs) -> list[np.ndarray]:
        import torch

        self.net.eval()
        with torch.no_grad():
            return [o.numpy() for o in self._call(self.net, inputs)]

    def intermediates(self, inputs) -> dict[str, np.ndarray]:
        import torch

        if self._tapped is None:
            self._tapped = self._build(taps=True)
        from .codegen import tap_names

        self._tapped.load_state_dict(self.net.state_dict())
        self._tapped.eval()
        # every module records its own layers (the class form of a model with blocks has a
        # forward per block class); (module path, key) names the layer
        modules = dict(self._tapped.named_modules())
        for module in modules.values():
            module.taps = {}
        with torch.no_grad():
            self._call(self._tapped, inputs)
        names = tap_names(self.model)
        recorded = {}
        for path, module in modules.items():
            for key, (value, layout) in module.taps.items():
                recorded[names.get((path, key), key)] = _to_channels_last(value.numpy(), layout)
        order = [layer.name for layer in self.model.layers]
        return {name: recorded[name] for name in order if name in recorded}

    def train_step(self, inputs, targets, loss_spec, optimizer) -> dict:
        import torch

        from ...runner.torch_backend import LogitsTap
        from ...runner.torch_optim import make_optimizer

        self.net.train()
        opt = make_optimizer(self.net.parameters(), optimizer_spec(optimizer))
        opt.zero_grad(set_to_none=True)
        tap = LogitsTap(self.net)
        with tap:
            outputs = self._call(self.net, inputs)
        loss = _loss(outputs, [torch.from_numpy(y) for y in targets], loss_spec, tap)
        loss = loss + regularization(self.net)
        loss.backward()
        grads = {}
        for key, w, tensor in W.torch_tensors(self.net, self.model):
            if w.trainable:
                if tensor.grad is None:
                    array = np.zeros(tuple(tensor.shape), np.float32)
                else:
                    array = tensor.grad.detach().numpy()
                grads[key] = W.from_target(array, w, "pytorch")
        opt.step()
        self.net.eval()
        return {
            "loss": float(loss.detach()),
            "outputs": [o.detach().numpy() for o in outputs],
            "gradients": grads,
            "after": W.from_torch(self.net, self.model),
        }


def regularization(net):
    """The generated module's regularizers' penalty (0 when the spec sets none)."""
    penalty = getattr(net, "regularization_loss", None)
    return penalty() if penalty is not None else 0.0


def _loss(outputs, targets, loss_spec, tap=None):
    """The spec's loss as the runner computes it; without one, the MSE summed over outputs."""
    import torch.nn.functional as F

    from ...runner.torch_backend import keras_loss

    loss, from_logits = loss_spec
    if loss is None:
        return sum(F.mse_loss(o, y) for o, y in zip(outputs, targets))
    return keras_loss(outputs[0], targets[0], loss, from_logits, tap)
