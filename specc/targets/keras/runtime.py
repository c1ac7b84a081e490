"""The Keras runtime adapter: the generated ``build_model()`` imported from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import weights as W
from ...ir import ModelIR
from ..base import optimizer_spec


class KerasRuntime:
    name = "keras"

    def __init__(self, model: ModelIR, folder: Path, tag: str = ""):
        from ...frameworks import import_keras

        import_keras()  # quietly: no TensorFlow start-up lines on stderr
        from ...runner.run import import_generated
        from . import TARGET

        path = folder / f"keras_model{tag}.py"
        path.write_text(TARGET.emit(model), encoding="utf-8")
        module = import_generated(path, f"specc_crosscheck_keras{tag}_{model.name}")
        self.model = model
        self.net = module.build_model()

    def load(self, weights) -> None:
        W.to_keras(self.net, self.model, weights)

    def _call(self, net, inputs, training: bool):
        out = net(inputs if len(inputs) > 1 else inputs[0], training=training)
        return out if isinstance(out, (list, tuple)) else [out]

    def forward(self, inputs) -> list[np.ndarray]:
        return [np.asarray(o) for o in self._call(self.net, inputs, False)]

    def intermediates(self, inputs) -> dict[str, np.ndarray]:
        import keras

        names = [layer.name for layer in self.model.layers]
        sub = keras.Model(self.net.inputs, [self.net.get_layer(n).output for n in names])
        outputs = sub(list(inputs), training=False)  # a functional model: always a list
        return {n: np.asarray(o) for n, o in zip(names, outputs)}

    def train_step(self, inputs, targets, loss_spec, optimizer) -> dict:
        import tensorflow as tf

        from ...runner.keras_backend import keras_optimizer

        trainable = {k for k, _, kind in W.layout(self.model) if kind == "trainable"}
        pairs = [(k, v) for k, v in W.keras_variables(self.net, self.model) if k in trainable]
        keys = [k for k, _ in pairs]
        variables = [v for _, v in pairs]
        opt = keras_optimizer(optimizer_spec(optimizer))
        with tf.GradientTape() as tape:
            outputs = self._call(self.net, inputs, True)
            loss = _loss(outputs, targets, loss_spec)
            if self.net.losses:  # the weight regularizers' penalties, as model.fit adds them
                loss = loss + sum(self.net.losses)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return {
            "loss": float(loss),
            "outputs": [np.asarray(o) for o in outputs],
            "gradients": {k: np.asarray(tf.convert_to_tensor(g)) for k, g in zip(keys, grads)},
            "after": W.from_keras(self.net, self.model),
        }


def _loss(outputs, targets, loss_spec):
    """The spec's loss as the runner computes it; without one, the MSE summed over outputs."""
    from types import SimpleNamespace

    from ...runner.keras_backend import keras_loss

    loss, from_logits = loss_spec
    if loss is None:
        import keras

        mse = keras.losses.MeanSquaredError()
        return sum(mse(y, o) for y, o in zip(targets, outputs))
    return keras_loss(SimpleNamespace(loss=loss, from_logits=from_logits))(targets[0], outputs[0])
