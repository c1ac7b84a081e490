"""Keras on several devices and machines (``specc train --backend keras --devices N``, or
``TF_CONFIG``), through TensorFlow's own ``tf.distribute`` strategies, and Keras's mixed
precision policies (``--precision bf16|fp16``).

* ``--devices N``: ``tf.distribute.MirroredStrategy`` over N local GPUs; on a machine
  without GPUs over N logical CPU devices (``tf.config.set_logical_device_configuration``),
  which is what the tests use and shows the mechanics, not a speed-up.
* ``TF_CONFIG`` in the environment: ``tf.distribute.MultiWorkerMirroredStrategy`` over every
  worker it lists (see docs/distributed.md for a two-worker example). Every worker runs the
  same command and writes its own run folder (keep them apart with ``--out``); the chief's
  (worker 0) is the run.

Batches: each global batch of ``n`` rows from the loop (the spec's batch size) is split over
the ``W`` replicas in equal shards when ``n`` is divisible by ``W``: Keras averages the
replicas' mean losses (it scales each by 1 / W and sums the gradients), which is the mean
over the global batch. A batch that does not divide (the last of an epoch) goes whole to
every replica, which gives that same gradient. So the steps equal a single device's, up to
float summation order.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .keras_backend import KerasBackend
from .run import RunError

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def set_precision(precision: str) -> None:
    """Keras's global dtype policy for ``--precision`` (before the model is built)."""
    import keras

    keras.mixed_precision.set_global_policy(POLICIES[precision])


def make_strategy(devices: int | None):
    """The tf.distribute strategy for ``--devices`` / ``TF_CONFIG``; None for one device.

    Must run before TensorFlow initializes its devices (logical CPUs cannot be added later).
    """
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        try:
            cluster = json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise RunError(f"TF_CONFIG is not valid JSON: {exc}") from None
        if not isinstance(cluster, dict) or "cluster" not in cluster or "task" not in cluster:
            raise RunError('TF_CONFIG needs "cluster" and "task" (see docs/distributed.md)')
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices is None or devices == 1:
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < devices:
            raise RunError(
                f"--devices {devices}: this machine has {len(gpus)} GPU"
                + ("" if len(gpus) == 1 else "s")
            )
        names = [f"/gpu:{i}" for i in range(devices)]
    else:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
            )
        except RuntimeError:
            raise RunError(
                "--devices: TensorFlow was already initialized in this process, so no logical "
                "CPU devices can be added; start a fresh process"
            ) from None
        names = [f"/cpu:{i}" for i in range(devices)]
    return tf.distribute.MirroredStrategy(names)


def describe(strategy) -> str:
    if strategy is None:
        import tensorflow as tf

        return "gpu:0" if tf.config.list_physical_devices("GPU") else "cpu"
    import tensorflow as tf

    devices = ", ".join(d.split("device:")[-1] for d in strategy.extended.worker_devices)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
        return (
            f"MultiWorkerMirroredStrategy({task.get('type', 'worker')} {task.get('index', 0)}: "
            f"{devices}; {strategy.num_replicas_in_sync} replicas in all)"
        )
    return f"{type(strategy).__name__}({devices})"


class DistributedKerasBackend(KerasBackend):
    """A KerasBackend whose model, optimizer and steps live under a tf.distribute strategy."""

    def __init__(self, build_model, training, strategy):
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.device_description = describe(strategy)
        with strategy.scope():
            super().__init__(build_model(), training)

    def _compile(self) -> None:
        with self.strategy.scope():
            super()._compile()
        self._built = False

    def train_epoch(self, batches, on_batch=None, stop=None, start=None):
        """None: the loop's step path, whose distributed step splits each batch exactly as
        one device would (model.fit would split it its own way)."""
        return None

    def _build(self, x, y) -> None:
        if not self._built:  # optimizer and metric variables, mirrored, before the first step
            import tensorflow as tf

            with self.strategy.scope():
                self.model._symbolic_build(data_batch=(x[:1], y[:1], None))
            strategy, model = self.strategy, self.model

            # Keras's own train_step on every replica, as Keras's train_function runs it; the
            # logs reduced here because Keras 3.15's reduction of scalar logs fails under
            # MultiWorkerMirroredStrategy (reduce(..., axis=0) of a 0-d tensor)
            @tf.function(reduce_retracing=True)
            def step(data):
                logs = strategy.run(model.train_step, args=(data,))
                return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

            self._step_fn = step
            self._built = True

    def train_step(self, x, y) -> tuple[float, float]:
        import tensorflow as tf

        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        self._build(x, y)
        n, w = len(x), self.replicas
        if n % w == 0:
            xs, ys = np.split(x, w), np.split(y, w)
            data = self.strategy.experimental_distribute_values_from_function(
                lambda ctx: (
                    tf.constant(xs[ctx.replica_id_in_sync_group]),
                    tf.constant(ys[ctx.replica_id_in_sync_group]),
                )
            )
        else:  # every replica takes the whole batch: the averaged gradient is exact
            data = (tf.constant(x), tf.constant(y))
        self.model.reset_metrics()
        with self.strategy.scope():
            logs = self._step_fn(data)
        return float(logs["loss"]), float(logs.get("accuracy", 0.0))

    def evaluate(self, x, y, batch_size: int):
        """(outputs, mean loss) in inference mode: the model called on one device with the
        mirrored weights; the loss as the compiled loss (and any regularization) computes it."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        step = max(batch_size, 256)
        parts = []
        total = 0.0
        for start in range(0, len(x), step):
            xb, yb = x[start : start + step], y[start : start + step]
            outputs = self.model(xb, training=False)
            loss = self.model.compute_loss(x=xb, y=yb, y_pred=outputs, training=False)
            total += float(loss) * len(xb)
            parts.append(np.asarray(outputs, dtype=np.float32))
        outputs = np.concatenate(parts) if parts else np.zeros((0,))
        return outputs, total / max(len(x), 1)

    def load(self, folder) -> None:
        """KerasBackend's load (damaged files refused, seed generators restored), with the
        model's variables created under the strategy."""
        with self.strategy.scope():
            super().load(folder)
        self._built = False
