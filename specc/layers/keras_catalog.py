"""The names of Keras 3's built-in layers (keras.layers, Keras 3.15), by family: a static
list, so that validation needs no TensorFlow. A layer type specc does not know but Keras
has is reported as unsupported (with the supported layers of its family), not as a typo.
"""

# (no `from __future__ import annotations`: pydantic would compile every annotation string
# of every model class at import, a large share of a cold `specc validate`)

KERAS_LAYERS: dict[str, tuple[str, ...]] = {
    "activation": ("Activation", "ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"),
    "regularization": (
        "ActivityRegularization", "AlphaDropout", "Dropout", "GaussianDropout", "GaussianNoise",
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    ),
    "pooling": (
        "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
        "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
        "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
        "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling1D", "MaxPooling2D",
        "MaxPooling3D",
    ),
    "merging": (
        "Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract",
    ),
    "attention": ("AdditiveAttention", "Attention", "GroupQueryAttention", "MultiHeadAttention"),
    "preprocessing": (
        "AugMix", "AutoContrast", "CategoryEncoding", "CenterCrop",
        "ContrastLimitedAdaptiveHistogramEqualization", "CutMix", "Discretization",
        "Equalization", "HashedCrossing", "Hashing", "IntegerLookup", "MaxNumBoundingBoxes",
        "MelSpectrogram", "MixUp", "Normalization", "Pipeline", "RandAugment",
        "RandomBrightness", "RandomColorDegeneration", "RandomColorJitter", "RandomContrast",
        "RandomCrop", "RandomElasticTransform", "RandomErasing", "RandomFlip",
        "RandomGaussianBlur", "RandomGrayscale", "RandomHue", "RandomInvert",
        "RandomPerspective", "RandomPosterization", "RandomRotation", "RandomSaturation",
        "RandomSharpness", "RandomShear", "RandomTranslation", "RandomZoom", "Rescaling",
        "Resizing", "STFTSpectrogram", "Solarization", "StringLookup", "TextVectorization",
    ),
    "normalization": (
        "BatchNormalization", "GroupNormalization", "LayerNormalization", "RMSNormalization",
        "SpectralNormalization", "UnitNormalization",
    ),
    "recurrent": (
        "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "GRU", "GRUCell", "LSTM",
        "LSTMCell", "RNN", "SimpleRNN", "SimpleRNNCell", "StackedRNNCells", "TimeDistributed",
    ),
    "convolution": (
        "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose",
        "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    ),
    "reshaping": (
        "Cropping1D", "Cropping2D", "Cropping3D", "Flatten", "Permute", "RepeatVector",
        "Reshape", "UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding1D",
        "ZeroPadding2D", "ZeroPadding3D",
    ),
    "core": (
        "Dense", "EinsumDense", "Embedding", "Identity", "InputLayer", "Lambda", "Masking",
        "ReversibleEmbedding", "Wrapper",
    ),
    # keras_hub.layers, not keras.layers: the one specc supports (the generated Keras code
    # defines it)
    "keras_hub": ("PositionEmbedding",),
}  # fmt: skip

#: Keras's other names for the same classes
KERAS_ALIASES = {
    "AvgPool1D": "AveragePooling1D",
    "AvgPool2D": "AveragePooling2D",
    "AvgPool3D": "AveragePooling3D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "GlobalAvgPool3D": "GlobalAveragePooling3D",
    "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalMaxPool2D": "GlobalMaxPooling2D",
    "GlobalMaxPool3D": "GlobalMaxPooling3D",
    "MaxPool1D": "MaxPooling1D",
    "MaxPool2D": "MaxPooling2D",
    "MaxPool3D": "MaxPooling3D",
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "Convolution1DTranspose": "Conv1DTranspose",
    "Convolution2DTranspose": "Conv2DTranspose",
    "Convolution3DTranspose": "Conv3DTranspose",
    "SeparableConvolution1D": "SeparableConv1D",
    "SeparableConvolution2D": "SeparableConv2D",
}


def family(name: str) -> str | None:
    """The family of a Keras layer class name (aliases included), or None if Keras has none."""
    name = KERAS_ALIASES.get(name, name)
    return next((f for f, names in KERAS_LAYERS.items() if name in names), None)


def unsupported(name: str, supported) -> tuple[str, str] | None:
    """(message, hint) when ``name`` is a Keras layer specc does not support, else None."""
    supported = set(supported)
    canonical = KERAS_ALIASES.get(name, name)
    if canonical != name and canonical in supported:
        return (
            f"Keras layer '{name}' is written '{canonical}' in specc (Keras's other name for it)",
            f"use type: {canonical}",
        )
    fam = family(name)
    if fam is None or name in supported:
        return None
    alternatives = [n for n in KERAS_LAYERS[fam] if n in supported]
    hint = (
        f"supported {fam} layers: {', '.join(alternatives)}"
        if alternatives
        else "see `specc schema` or docs/layers.md for every supported layer"
    )
    return f"Keras layer '{name}' is not supported by specc (yet)", hint
