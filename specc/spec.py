"""Stage 2, validate: the spec language as pydantic models (the source of `specc schema`)."""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .layers import LAYER_TYPES, any_layer
from .layers.base import Name, PositiveInt

FORMAT_VERSION = 1
#: the largest seed every generator takes (NumPy's legacy seed, which Keras sets, is 32-bit)
MAX_SEED = 2**32 - 1

DType = Literal["float32", "float16", "float64", "int32", "int64", "uint8", "bool"]


class _Strict(BaseModel):
    # allow_inf_nan: `learning_rate: .inf` is no setting (and has no literal in generated code)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class InputSpec(_Strict):
    """A model input: its name, one sample's shape (channels-last, no batch) and dtype."""

    name: Name
    shape: list[PositiveInt] = Field(min_length=1, max_length=8)
    dtype: DType = "float32"


# --------------------------------------------------------------------------- training


def _exact_version(value):
    """Literal[1] alone accepts True and 1.0 (both == 1 in Python); a spec must say 1."""
    if isinstance(value, (bool, float)):
        raise ValueError(f"unknown format version {value!r}; this specc reads version 1")
    return value


def _named(kind_field: str = "type"):
    """Accept a bare string as shorthand for {type: <string>}."""

    def convert(value):
        return {kind_field: value} if isinstance(value, str) else value

    return convert


class SGD(_Strict):
    """keras.optimizers.SGD defaults."""

    type: Literal["sgd"]
    learning_rate: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float | None = Field(default=None, ge=0)


class Adam(_Strict):
    """keras.optimizers.Adam defaults (epsilon 1e-7, not torch's 1e-8)."""

    type: Literal["adam"]
    learning_rate: float = Field(default=0.001, gt=0)
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0)
    amsgrad: bool = False
    weight_decay: float | None = Field(default=None, ge=0)


class AdamW(_Strict):
    """keras.optimizers.AdamW defaults (weight_decay 0.004)."""

    type: Literal["adamw"]
    learning_rate: float = Field(default=0.001, gt=0)
    weight_decay: float = Field(default=0.004, ge=0)
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0)
    amsgrad: bool = False


class RMSprop(_Strict):
    """keras.optimizers.RMSprop defaults."""

    type: Literal["rmsprop"]
    learning_rate: float = Field(default=0.001, gt=0)
    rho: float = Field(default=0.9, ge=0, lt=1)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0)
    centered: bool = False
    weight_decay: float | None = Field(default=None, ge=0)


Optimizer = Annotated[
    Union[SGD, Adam, AdamW, RMSprop],  # noqa: UP007
    Field(discriminator="type"),
    BeforeValidator(_named()),
]


class StepSchedule(_Strict):
    """Multiply the learning rate by ``gamma`` every ``step_epochs`` epochs."""

    type: Literal["step"]
    step_epochs: PositiveInt
    gamma: float = Field(default=0.1, gt=0, le=1)


class CosineSchedule(_Strict):
    """Cosine decay over all epochs to ``alpha`` x the initial learning rate."""

    type: Literal["cosine"]
    alpha: float = Field(default=0.0, ge=0, le=1)


class PlateauSchedule(_Strict):
    """Reduce the learning rate by ``factor`` when ``monitor`` stops improving."""

    type: Literal["reduce_on_plateau"]
    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    factor: float = Field(default=0.1, gt=0, lt=1)
    patience: PositiveInt = 10
    min_lr: float = Field(default=0.0, ge=0)


Schedule = Annotated[
    Union[StepSchedule, CosineSchedule, PlateauSchedule],  # noqa: UP007
    Field(discriminator="type"),
]


class EarlyStopping(_Strict):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    patience: PositiveInt = 3
    min_delta: float = Field(default=0.0, ge=0)
    restore_best_weights: bool = True


class Augmentation(_Strict):
    """Image augmentation, as Keras's preprocessing layers (factors are fractions)."""

    horizontal_flip: bool = False
    vertical_flip: bool = False
    rotation: float = Field(
        default=0.0, ge=0, le=1, description="fraction of a full turn, as RandomRotation"
    )
    translation: float = Field(default=0.0, ge=0, le=1, description="fraction of height/width")
    zoom: float = Field(default=0.0, ge=0, lt=1, description="fraction, as RandomZoom")


class Preprocessing(_Strict):
    """How inputs are scaled before training: to [0, 1], standardized with train statistics, or not at all."""

    normalize: Literal["unit", "standardize", "none"] = "unit"


class NpzDataset(_Strict):
    """A user's own .npz with arrays x_train, y_train, x_test, y_test."""

    type: Literal["npz"]
    path: str = Field(min_length=1, max_length=4096)
    num_classes: PositiveInt | None = None


class FolderDataset(_Strict):
    """A folder of images in one subfolder per class."""

    type: Literal["folder"]
    path: str = Field(min_length=1, max_length=4096)
    image_size: list[PositiveInt] = Field(min_length=2, max_length=2)
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)


BuiltinDataset = Literal["mnist", "fashion_mnist", "cifar10", "digits"]

#: sample shape and class count of the built-in datasets
BUILTIN_DATASETS: dict[str, tuple[tuple[int, ...], int]] = {
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "digits": ((8, 8, 1), 10),
}

Dataset = Union[  # noqa: UP007
    BuiltinDataset,
    Annotated[Union[NpzDataset, FolderDataset], Field(discriminator="type")],  # noqa: UP007
]

Loss = Literal[
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "mse",
]
Metric = Literal["accuracy", "precision", "recall", "top_k_accuracy"]


class Training(_Strict):
    """How to train the model; validated now, used by `specc train`."""

    dataset: Dataset
    preprocessing: Preprocessing = Preprocessing()
    optimizer: Optimizer = Field(default_factory=lambda: Adam(type="adam"))
    schedule: Schedule | None = None
    loss: Loss = "sparse_categorical_crossentropy"
    from_logits: bool = Field(
        default=False, description="the model outputs logits (no softmax); as Keras's from_logits"
    )
    metrics: list[Metric] = Field(default_factory=lambda: ["accuracy"])
    top_k: PositiveInt = 5
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 1
    validation_split: Annotated[float, Field(ge=0, lt=1)] | Literal["test"] = 0.1
    augmentation: Augmentation = Augmentation()
    early_stopping: EarlyStopping | None = None
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="0 to 2**32 - 1, as NumPy's")


# --------------------------------------------------------------------------- the spec


class Spec(_Strict):
    """A model spec: inputs, layers (Keras names and defaults), outputs, and training."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        title="specc model spec",
        json_schema_extra={"$id": "https://specc.dev/schema/spec-v1.json"},
        defer_build=True,  # built on first use: validate_spec needs it only for errors
    )

    version: Annotated[Literal[1], BeforeValidator(_exact_version)] = Field(
        description="Spec format version."
    )
    name: Name = Field(description="Model name; also the generated class name.")
    description: str = Field(default="", max_length=4000)
    inputs: list[InputSpec] = Field(default_factory=list, max_length=64)
    # resolved when the model is first built (model_rebuild below): the union of every
    # layer type imports every layer family, which a valid spec's check never needs
    layers: list["AnyLayer"] = Field(min_length=1)  # noqa: F821, UP037
    outputs: list[Name] | None = Field(
        default=None, min_length=1, description="default: the last layer"
    )
    training: Training | None = None

    @classmethod
    def model_rebuild(cls, *, _types_namespace=None, _parent_namespace_depth=2, **kwargs):
        if "AnyLayer" not in (_types_namespace or {}):
            _types_namespace = {**(_types_namespace or {}), "AnyLayer": any_layer()}
        return super().model_rebuild(
            _types_namespace=_types_namespace,
            _parent_namespace_depth=_parent_namespace_depth + 1,
            **kwargs,
        )


class _SpecFrame(Spec):
    """Spec with the layers left as mappings: validates everything else without building
    the union of every layer type (see :func:`validate_spec`)."""

    model_config = ConfigDict(defer_build=True)

    layers: list[dict[str, Any]] = Field(min_length=1)

    @classmethod
    def model_rebuild(cls, **kwargs):  # its layers are plain mappings: no layer union
        return BaseModel.model_rebuild.__func__(cls, **kwargs)


def validate_spec(data: object) -> Spec:
    """``Spec.model_validate(data)``, fast for a valid spec: the frame without layers, then
    each layer by its own class, so only the layer classes the spec uses are built (the
    layer models defer building their validators: building all of them costs more than a
    whole check). Anything unexpected falls back to the full model, so every error comes
    from exactly the validation it always came from."""
    layers = data.get("layers") if isinstance(data, dict) else None
    if isinstance(layers, list) and all(
        isinstance(item, dict) and isinstance(item.get("type"), str) and item["type"] in LAYER_TYPES
        for item in layers
    ):
        try:
            frame = _SpecFrame.model_validate(data)
            validated = [LAYER_TYPES[item["type"]].model_validate(item) for item in layers]
        except ValidationError:
            pass
        else:
            values = {name: getattr(frame, name) for name in Spec.model_fields}
            values["layers"] = validated
            return Spec.model_construct(_fields_set=frame.model_fields_set, **values)
    return Spec.model_validate(data)
