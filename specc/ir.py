"""The intermediate representation: plain data that every later stage reads.

``ModelIR.to_dict()`` is the JSON form (`specc summary --format json` is built on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .layers.base import Layer, Shape, Weight


@dataclass
class TensorIR:
    """A model input."""

    name: str
    shape: Shape
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class LayerIR:
    """One layer after inference. ``spec`` is the validated pydantic layer (not serialized)."""

    index: int  # position in the spec's `layers` list
    name: str
    type: str
    inputs: list[str]
    output_shape: Shape
    trainable_params: int
    non_trainable_params: int
    macs: int
    spec: Layer = field(repr=False)
    #: every weight the layer creates (its declaration, see Layer.weights), in Keras's order
    weights: tuple[Weight, ...] = field(default=(), repr=False)

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def activations(self) -> int:
        """Output elements per sample."""
        n = 1
        for d in self.output_shape:
            n *= d
        return n

    def to_dict(self) -> dict:
        config = self.spec.model_dump(exclude={"name", "inputs", "type"}, mode="json")
        return {
            "name": self.name,
            "type": self.type,
            "inputs": list(self.inputs),
            "output_shape": [None, *self.output_shape],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "macs": self.macs,
            "activations": self.activations,
            "config": config,
        }


@dataclass
class ModelIR:
    """A validated, resolved and inferred model: layers in topological order."""

    name: str
    description: str
    inputs: list[TensorIR]
    layers: list[LayerIR]
    outputs: list[str]
    training: dict | None = None
    file: str = "<spec>"
    #: the parsed spec (specc.source.Source) when known: locates target refusals at lines
    source: object | None = field(default=None, repr=False, compare=False)
    #: how blocks were expanded (specc.blocks.Expansion), None for a spec without blocks
    expansion: object | None = field(default=None, repr=False, compare=False)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def is_sequential(self) -> bool:
        """One input, one output, and every layer reads the one before it (a Keras Sequential)."""
        if len(self.inputs) != 1 or len(self.outputs) != 1 or not self.layers:
            return False
        previous = self.inputs[0].name
        for layer in self.layers:
            if layer.inputs != [previous]:
                return False
            previous = layer.name
        return self.outputs == [previous]

    def layer(self, name: str) -> LayerIR:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def shape_of(self, name: str) -> Shape:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor.shape
        return self.layer(name).output_shape

    def sha256(self) -> str:
        """sha256 of the canonical spec JSON (``to_dict()``, sorted keys): the spec hash that
        runs, ONNX metadata and crosscheck compare."""
        import hashlib
        import json

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": list(self.outputs),
            "layers": [layer.to_dict() for layer in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "macs": self.macs,
            "training": self.training,
        }
