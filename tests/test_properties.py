"""Property tests of specc's shape and parameter arithmetic (hypothesis).

Fast part (no framework): random convolution / pooling hyperparameters; specc's output
sizes must equal the textbook formulas written here independently of specc's code, its
parameter counts the closed-form arithmetic, and inference must only ever answer with
diagnostics (never an exception).

Slow part (``-m slow``, needs Keras): differential testing. Hypothesis grows random specs
(sequential stacks and small DAGs with merges, over every layer type of the registry) one
layer at a time; for every candidate layer specc's verdict (valid / invalid) must agree
with Keras's, and for every accepted spec the Keras model built from specc's IR
(``keras_class`` + ``keras_args()``) must have exactly specc's output shapes and
parameter counts (total and trainable) for every layer.

Profiles: the default is quick (``make test``); ``SPECC_FUZZ=long`` runs many more examples.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from specc.layers import LAYER_TYPES
from specc.pipeline import check_data

settings.register_profile(
    "specc-fast", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "specc-long",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
LONG = os.environ.get("SPECC_FUZZ") == "long"
PROFILE = settings.get_profile("specc-long" if LONG else "specc-fast")
# the framework-free properties are cheap: always run many examples
ARITH = settings(PROFILE, max_examples=max(PROFILE.max_examples, 300))


# --------------------------------------------------------------------------- textbook math


def valid_len(n: int, k: int, s: int, d: int) -> int | None:
    """floor((n - d*(k-1) - 1) / s) + 1, or None when the (dilated) window does not fit."""
    if n < d * (k - 1) + 1:
        return None
    return math.floor((n - d * (k - 1) - 1) / s) + 1


def same_len(n: int, s: int) -> int:
    return math.ceil(n / s)


def transpose_len(n: int, k: int, s: int, d: int, padding: str) -> int:
    """Transposed convolution: (n-1)*s + d*(k-1) + 1 ('valid'), n*s ('same').

    Keras never returns less than n*s: when the dilated kernel is shorter than the stride
    it pads the output up to n*s (keras.src.utils.conv_utils.deconv_output_length).
    """
    if padding == "same":
        return n * s
    return max((n - 1) * s + d * (k - 1) + 1, n * s)


def spec(shape, *layers) -> dict:
    return {
        "version": 1,
        "name": "prop",
        "inputs": [{"name": "x", "shape": list(shape)}],
        "layers": list(layers),
    }


def only_layer(data: dict):
    result = check_data(data)
    return result, (result.model.layers[-1] if result.ok else None)


sizes = st.integers(1, 64)
kernels = st.integers(1, 9)
strides_ = st.integers(1, 5)
dilations = st.integers(1, 4)
paddings = st.sampled_from(["valid", "same"])


def strided_or_dilated():
    """(stride, dilation): Keras refuses strides > 1 together with dilation > 1."""
    return st.one_of(
        st.tuples(strides_, st.just(1)),
        st.tuples(st.just(1), dilations),
    )


# --------------------------------------------------------------------------- fast


@ARITH
@given(
    n=sizes,
    k=kernels,
    sd=strided_or_dilated(),
    padding=paddings,
    cin=st.integers(1, 8),
    filters=st.integers(1, 8),
    use_bias=st.booleans(),
)
def test_conv1d_length_and_params(n, k, sd, padding, cin, filters, use_bias):
    s, d = sd
    layer = {
        "type": "Conv1D",
        "filters": filters,
        "kernel_size": k,
        "strides": s,
        "dilation_rate": d,
        "padding": padding,
        "use_bias": use_bias,
    }
    result, out = only_layer(spec((n, cin), layer))
    want = same_len(n, s) if padding == "same" else valid_len(n, k, s, d)
    if want is None:
        assert not result.ok
        (err,) = result.errors
        assert err.code == "shape" and "does not fit" in err.message
        assert f"kernel {k}" in err.message and f"input {n}" in err.message
        return
    assert result.ok, [x.format() for x in result.diagnostics]
    assert out.output_shape == (want, filters)
    assert out.trainable_params == k * cin * filters + (filters if use_bias else 0)
    assert out.non_trainable_params == 0
    assert out.macs == want * k * cin * filters


@ARITH
@given(
    h=sizes,
    w=sizes,
    kh=kernels,
    kw=kernels,
    sd=strided_or_dilated(),
    padding=paddings,
    groups=st.integers(1, 4),
    cpg=st.integers(1, 3),
    fpg=st.integers(1, 3),
    use_bias=st.booleans(),
)
def test_conv2d_shape_and_params(h, w, kh, kw, sd, padding, groups, cpg, fpg, use_bias):
    s, d = sd
    cin, filters = groups * cpg, groups * fpg
    layer = {
        "type": "Conv2D",
        "filters": filters,
        "kernel_size": [kh, kw],
        "strides": s,
        "dilation_rate": d,
        "padding": padding,
        "groups": groups,
        "use_bias": use_bias,
    }
    result, out = only_layer(spec((h, w, cin), layer))
    if padding == "same":
        oh, ow = same_len(h, s), same_len(w, s)
    else:
        oh, ow = valid_len(h, kh, s, d), valid_len(w, kw, s, d)
    if oh is None or ow is None:
        assert not result.ok and result.errors[0].code == "shape"
        assert "does not fit" in result.errors[0].message
        return
    assert result.ok, [x.format() for x in result.diagnostics]
    assert out.output_shape == (oh, ow, filters)
    # each filter sees cin / groups channels
    assert out.trainable_params == kh * kw * cpg * filters + (filters if use_bias else 0)


@ARITH
@given(c=st.integers(1, 12), groups=st.integers(2, 6), filters=st.integers(1, 12))
def test_conv2d_groups_must_divide(c, groups, filters):
    layer = {"type": "Conv2D", "filters": filters, "kernel_size": 1, "groups": groups}
    result, _ = only_layer(spec((4, 4, c), layer))
    assert result.ok == (c % groups == 0 and filters % groups == 0)
    if not result.ok:
        assert "divisible by groups" in result.errors[0].message


@ARITH
@given(
    h=sizes,
    w=sizes,
    k=kernels,
    sd=strided_or_dilated(),
    padding=paddings,
    cin=st.integers(1, 8),
    dm=st.integers(1, 4),
    filters=st.integers(1, 8),
    kind=st.sampled_from(["DepthwiseConv2D", "SeparableConv2D"]),
)
def test_depthwise_and_separable(h, w, k, sd, padding, cin, dm, filters, kind):
    s, d = sd
    layer = {
        "type": kind,
        "kernel_size": k,
        "strides": s,
        "dilation_rate": d,
        "padding": padding,
        "depth_multiplier": dm,
    }
    if kind == "SeparableConv2D":
        layer["filters"] = filters
    result, out = only_layer(spec((h, w, cin), layer))
    if padding == "same":
        oh, ow = same_len(h, s), same_len(w, s)
    else:
        oh, ow = valid_len(h, k, s, d), valid_len(w, k, s, d)
    if oh is None or ow is None:
        assert not result.ok and "does not fit" in result.errors[0].message
        return
    assert result.ok
    if kind == "DepthwiseConv2D":
        assert out.output_shape == (oh, ow, cin * dm)
        assert out.trainable_params == k * k * cin * dm + cin * dm
    else:
        assert out.output_shape == (oh, ow, filters)
        # kh*kw*Cin*dm + Cin*dm*Cout + Cout (the formula)
        assert out.trainable_params == k * k * cin * dm + cin * dm * filters + filters


@ARITH
@given(
    h=st.integers(1, 16),
    w=st.integers(1, 16),
    k=kernels,
    sd=strided_or_dilated(),
    padding=paddings,
    cin=st.integers(1, 6),
    filters=st.integers(1, 6),
)
def test_conv2d_transpose(h, w, k, sd, padding, cin, filters):
    s, d = sd
    layer = {
        "type": "Conv2DTranspose",
        "filters": filters,
        "kernel_size": k,
        "strides": s,
        "dilation_rate": d,
        "padding": padding,
    }
    result, out = only_layer(spec((h, w, cin), layer))
    assert result.ok
    assert out.output_shape == (
        transpose_len(h, k, s, d, padding),
        transpose_len(w, k, s, d, padding),
        filters,
    )
    assert out.trainable_params == k * k * cin * filters + filters


@ARITH
@given(
    n=sizes,
    m=sizes,
    pool=st.integers(1, 6),
    stride=st.none() | st.integers(1, 6),
    padding=paddings,
    rank=st.sampled_from([1, 2]),
    kind=st.sampled_from(["MaxPooling", "AveragePooling"]),
)
def test_pooling(n, m, pool, stride, padding, rank, kind):
    layer = {"type": f"{kind}{rank}D", "pool_size": pool, "padding": padding}
    if stride is not None:
        layer["strides"] = stride
    shape = (n, 3) if rank == 1 else (n, m, 3)
    result, out = only_layer(spec(shape, layer))
    s = pool if stride is None else stride  # Keras: strides default to the pool size
    dims = [same_len(x, s) if padding == "same" else valid_len(x, pool, s, 1) for x in shape[:-1]]
    if None in dims:
        assert not result.ok and "pool" in result.errors[0].message
        return
    assert result.ok
    assert out.output_shape == (*dims, 3)
    assert out.params == 0 and out.macs == 0


@ARITH
@given(
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    units=st.integers(1, 100),
    use_bias=st.booleans(),
)
def test_dense_on_last_axis(shape, units, use_bias):
    layer = {"type": "Dense", "units": units, "use_bias": use_bias}
    result, out = only_layer(spec(shape, layer))
    assert result.ok
    assert out.output_shape == (*shape[:-1], units)
    assert out.trainable_params == shape[-1] * units + units * use_bias
    assert out.macs == math.prod(shape) * units


@ARITH
@given(
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    axis_pick=st.integers(0, 10),
    center=st.booleans(),
    scale=st.booleans(),
    kind=st.sampled_from(["BatchNormalization", "LayerNormalization"]),
)
def test_normalization_params(shape, axis_pick, center, scale, kind):
    rank = len(shape)
    axis = [-1, *range(1, rank + 1), *range(-rank, 0)][axis_pick % (2 * rank + 1)]
    layer = {"type": kind, "axis": axis, "center": center, "scale": scale}
    result, out = only_layer(spec(shape, layer))
    assert result.ok
    channels = shape[axis - 1] if axis > 0 else shape[axis]
    assert out.output_shape == tuple(shape)
    assert out.trainable_params == channels * (center + scale)
    # Keras keeps the moving mean and variance as non-trainable weights
    assert out.non_trainable_params == (2 * channels if kind == "BatchNormalization" else 0)


@ARITH
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    pad=st.tuples(*[st.integers(0, 5)] * 4),
    size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
)
def test_zero_padding_and_upsampling(h, w, pad, size):
    t, b, left, r = pad
    result, out = only_layer(
        spec((h, w, 2), {"type": "ZeroPadding2D", "padding": [[t, b], [left, r]]})
    )
    assert result.ok and out.output_shape == (h + t + b, w + left + r, 2)
    result, out = only_layer(spec((h, w, 2), {"type": "UpSampling2D", "size": list(size)}))
    assert result.ok and out.output_shape == (h * size[0], w * size[1], 2)


@ARITH
@given(shape=st.lists(st.integers(1, 8), min_size=1, max_size=4), data=st.data())
def test_reshape_flatten_roundtrip(shape, data):
    total = math.prod(shape)
    result, out = only_layer(spec(shape, {"type": "Flatten"}))
    assert result.ok and out.output_shape == (total,)
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    first = data.draw(st.sampled_from(divisors))
    target = data.draw(st.sampled_from([[first, -1], [first, total // first]]))
    result, out = only_layer(spec(shape, {"type": "Reshape", "target_shape": target}))
    assert result.ok and out.output_shape == (first, total // first)
    result, out = only_layer(spec(shape, {"type": "Reshape", "target_shape": [-1, first]}))
    assert result.ok and out.output_shape == (total // first, first)
    wrong = data.draw(st.integers(1, 3 * total).filter(lambda n: n != total))
    result, _ = only_layer(spec(shape, {"type": "Reshape", "target_shape": [wrong]}))
    assert not result.ok and "cannot reshape" in result.errors[0].message


# any value at all, in any field of a convolution or pooling layer: diagnostics, not crashes
wild = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.lists(st.integers(-3, 10), max_size=4),
    st.lists(st.lists(st.integers(-1, 3), max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELDS = [
    "filters",
    "kernel_size",
    "strides",
    "dilation_rate",
    "padding",
    "groups",
    "depth_multiplier",
    "pool_size",
    "units",
    "axis",
    "target_shape",
    "size",
    "rate",
    "use_bias",
    "inputs",
]


@settings(ARITH, suppress_health_check=list(HealthCheck))
@given(
    kind=st.sampled_from(sorted(LAYER_TYPES)),
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    fields=st.dictionaries(st.sampled_from(FIELDS), wild, max_size=4),
)
def test_inference_only_answers_with_diagnostics(kind, shape, fields):
    layer = {"type": kind, **fields}
    result = check_data(spec(shape, layer))  # must not raise
    if result.ok:
        assert result.model.layers or kind == "Input"
        for item in result.model.layers:
            assert all(isinstance(d, int) and d > 0 for d in item.output_shape)
            assert item.trainable_params >= 0 and item.non_trainable_params >= 0
    else:
        assert result.errors
        for diag in result.errors:
            assert diag.message and diag.line >= 1 and diag.column >= 1
            assert "Traceback" not in diag.format()


@ARITH
@given(n=st.integers(1, 40), k=st.integers(1, 50), d=st.integers(1, 6))
def test_kernel_fit_is_exactly_the_textbook_condition(n, k, d):
    """'valid' fits iff n >= d*(k-1)+1; the message shows the dilated size when d > 1."""
    layer = {"type": "Conv1D", "filters": 1, "kernel_size": k, "dilation_rate": d}
    result, _ = only_layer(spec((n, 1), layer))
    fits = n >= d * (k - 1) + 1
    assert result.ok == fits
    if not fits:
        message = result.errors[0].message
        assert f"kernel {k} " in message
        if d > 1:
            assert f"dilated to {d * (k - 1) + 1}" in message


# --------------------------------------------------------------------------- slow: vs Keras


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


ACTIVATIONS = [
    None,
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "swish",
    "silu",
    "softplus",
]
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")


def _maybe(draw, config: dict, key: str, strategy) -> None:
    """Set an optional field (or leave the Keras default) at random."""
    if draw(st.booleans()):
        config[key] = draw(strategy)


def _window(draw, config: dict, rank: int, *, dilation: bool = True, big: bool = False) -> None:
    k = st.integers(1, 9 if big else 5)
    config["kernel_size"] = draw(
        k if rank == 1 else st.one_of(k, st.lists(k, min_size=2, max_size=2))
    )
    strided = draw(st.booleans())
    if strided:
        _maybe(draw, config, "strides", st.integers(1, 3))
    elif dilation:
        _maybe(draw, config, "dilation_rate", st.integers(1, 3))
    _maybe(draw, config, "padding", st.sampled_from(["valid", "same"]))
    _maybe(draw, config, "activation", st.sampled_from(ACTIVATIONS))
    _maybe(draw, config, "use_bias", st.booleans())


def single_input_layer(draw, kind: str, shape: tuple[int, ...]) -> dict:
    """Random hyperparameters for one layer of type ``kind`` reading ``shape``."""
    c: dict = {"type": kind}
    rank = len(shape)
    small = st.integers(1, 6)
    if kind == "Dense":
        c["units"] = draw(st.integers(1, 16))
        _maybe(draw, c, "activation", st.sampled_from(ACTIVATIONS))
        _maybe(draw, c, "use_bias", st.booleans())
    elif kind == "Conv1D":
        c["filters"] = draw(small)
        _window(draw, c, 1, big=True)
    elif kind == "Conv2D":
        channels = shape[-1] if rank == 3 else 1
        groups = draw(st.sampled_from([g for g in range(1, 5) if channels % g == 0]))
        c["filters"] = groups * draw(st.integers(1, 3))
        if groups > 1:
            c["groups"] = groups
        _window(draw, c, 2, big=True)
    elif kind == "DepthwiseConv2D":
        _window(draw, c, 2)
        _maybe(draw, c, "depth_multiplier", st.integers(1, 3))
    elif kind == "SeparableConv2D":
        c["filters"] = draw(small)
        _window(draw, c, 2)
        _maybe(draw, c, "depth_multiplier", st.integers(1, 3))
    elif kind == "Conv2DTranspose":
        c["filters"] = draw(small)
        _window(draw, c, 2)
    elif kind in ("MaxPooling1D", "AveragePooling1D", "MaxPooling2D", "AveragePooling2D"):
        p = st.integers(1, 4)
        c["pool_size"] = draw(p if kind.endswith("1D") else p | st.lists(p, min_size=2, max_size=2))
        _maybe(draw, c, "strides", st.integers(1, 3))
        _maybe(draw, c, "padding", st.sampled_from(["valid", "same"]))
    elif kind.startswith("Global"):
        _maybe(draw, c, "keepdims", st.booleans())
    elif kind == "Flatten":
        pass
    elif kind == "Permute":
        c["dims"] = draw(st.permutations(list(range(1, rank + 1))))
    elif kind == "TimeDistributed":
        inner = draw(st.sampled_from(["Dense", "Conv1D"]))
        if inner == "Dense":
            c["layer"] = {"type": "Dense", "units": draw(small)}
        else:
            c["layer"] = {"type": "Conv1D", "filters": draw(small), "kernel_size": draw(small)}
    elif kind == "Bidirectional":
        inner = {"type": draw(st.sampled_from(["SimpleRNN", "LSTM", "GRU"])), "units": draw(small)}
        _maybe(draw, inner, "return_sequences", st.booleans())
        c["layer"] = inner
        _maybe(draw, c, "merge_mode", st.sampled_from(["concat", "sum", "mul", "ave"]))
    elif kind == "Reshape":
        total = math.prod(shape)
        first = draw(st.sampled_from([d for d in range(1, total + 1) if total % d == 0]))
        c["target_shape"] = draw(
            st.sampled_from([[first, -1], [-1, first], [total // first, first], [total]])
        )
    elif kind == "Dropout":
        c["rate"] = draw(st.floats(0.0, 0.9))
    elif kind in ("BatchNormalization", "LayerNormalization"):
        _maybe(draw, c, "axis", st.sampled_from([-1, *range(1, rank + 1)]))
        _maybe(draw, c, "center", st.booleans())
        _maybe(draw, c, "scale", st.booleans())
        if kind == "BatchNormalization":
            _maybe(draw, c, "momentum", st.floats(0.0, 1.0))
    elif kind == "ZeroPadding2D":
        n = st.integers(0, 3)
        c["padding"] = draw(
            n
            | st.lists(n, min_size=2, max_size=2)
            | st.lists(st.lists(n, min_size=2, max_size=2), min_size=2, max_size=2)
        )
    elif kind == "UpSampling2D":
        _maybe(
            draw, c, "size", st.integers(1, 3) | st.lists(st.integers(1, 3), min_size=2, max_size=2)
        )
        _maybe(draw, c, "interpolation", st.sampled_from(["nearest", "bilinear"]))
    elif kind == "Activation":
        c["activation"] = draw(st.sampled_from(ACTIVATIONS[1:]))
    elif kind == "ReLU":
        _maybe(draw, c, "max_value", st.floats(0.0, 10.0))
        _maybe(draw, c, "negative_slope", st.floats(0.0, 1.0))
        _maybe(draw, c, "threshold", st.floats(-1.0, 1.0))
    elif kind == "LeakyReLU":
        _maybe(draw, c, "negative_slope", st.floats(0.0, 1.0))
    elif kind == "Softmax":
        _maybe(draw, c, "axis", st.sampled_from([-1, *range(1, rank + 1)]))
    elif kind in GENERIC:
        c.update(generic_fields(draw, kind))
    else:
        raise AssertionError(f"no generator for {kind}")
    return c


def _field_strategy(annotation):
    """A strategy for a field from its annotation alone, or None when there is no generic one."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        strategy = st.sampled_from(typing.get_args(annotation))
    elif annotation is bool:
        strategy = st.booleans()
    elif annotation is float:
        strategy = st.floats(-4.0, 4.0, allow_nan=False, width=32)
    elif annotation is int:
        strategy = st.integers(1, 6)
    elif optional and len(args) == 1:
        inner = _field_strategy(args[0])
        return None if inner is None else st.one_of(st.none(), inner)
    else:
        return None
    return st.one_of(st.none(), strategy) if optional else strategy


def generic_fields(draw, kind: str) -> dict:
    """Random values of every field of a layer type from its pydantic annotations (layers
    without a hand-written generator; specc's and Keras's verdicts are compared anyway)."""
    config: dict = {}
    for name, field in LAYER_TYPES[kind].model_fields.items():
        if name in ("type", "name", "inputs"):
            continue
        strategy = _field_strategy(field.annotation)
        if field.is_required():
            assert strategy is not None, f"no generic generator for {kind}.{name}: write one"
            config[name] = draw(strategy)
        elif strategy is not None:
            _maybe(draw, config, name, strategy)
    return config


# which single-input layers may follow a tensor of a given rank (specc's verdict decides the rest)
BY_RANK = {
    1: ["Dense", "Dropout", "Reshape", "BatchNormalization", "LayerNormalization", "Activation",
        "ReLU", "LeakyReLU", "Softmax"],
    2: ["Bidirectional", "Permute", "TimeDistributed", "Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
        "GlobalMaxPooling1D", "Dense", "Flatten", "Reshape", "Dropout", "BatchNormalization",
        "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "Softmax"],
    3: ["TimeDistributed", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "MaxPooling2D",
        "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D",
        "UpSampling2D", "Dense", "Flatten", "Reshape", "Dropout", "BatchNormalization",
        "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "Softmax"],
}  # fmt: skip


#: layer types without a hand-written generator: fields drawn from their annotations, at
#: every rank (specc's verdict is compared with Keras's)
#: layer types random stacks leave out: token ids (Embedding reads integers; random floats
#: are not ids) and attention over several inputs; their golden cases cover them (counts
#: against Keras, crosscheck of every target)
NOT_STACKED = {"Embedding", "MultiHeadAttention"}
GENERIC = sorted(
    set(LAYER_TYPES)
    - {k for kinds in BY_RANK.values() for k in kinds}
    - set(MERGES)
    - {"Input"}
    - NOT_STACKED
)
for _kinds in BY_RANK.values():
    _kinds.extend(GENERIC)


def test_generators_cover_the_whole_registry():
    """Every layer type is generated: by hand (above) or from its field annotations."""
    covered = {k for kinds in BY_RANK.values() for k in kinds} | set(MERGES) | {"Input"}
    covered |= NOT_STACKED
    assert covered == set(LAYER_TYPES)
    for kind in GENERIC:
        for name, field in LAYER_TYPES[kind].model_fields.items():
            if field.is_required() and name not in ("type", "name", "inputs"):
                assert _field_strategy(field.annotation) is not None, (
                    f"{kind}.{name} needs a hand-written generator in single_input_layer"
                )


class Mismatch(AssertionError):
    pass


def keras_layer(keras, ir_layer):
    from specc.targets.keras.codegen import keras_layer as build

    return build(keras, ir_layer.spec, ir_layer.name)


def compare(keras, ir_layer, klayer, tensor, context: dict) -> None:
    """Output shape, parameters and trainable parameters: specc's == Keras's."""
    import numpy as np

    keras_shape = tuple(tensor.shape)
    trainable = int(sum(np.prod(w.shape) for w in klayer.trainable_weights))
    got = {
        "output_shape": keras_shape,
        "params": klayer.count_params(),
        "trainable": trainable,
    }
    want = {
        "output_shape": (None, *ir_layer.output_shape),
        "params": ir_layer.params,
        "trainable": ir_layer.trainable_params,
    }
    if got != want:
        raise Mismatch(
            f"{ir_layer.type} {ir_layer.spec.keras_args()}: keras {got} != specc {want}\n{context}"
        )


def grown_spec(data, keras, dag: bool):
    """Grow a spec layer by layer; every candidate is judged by specc and by Keras.

    Draws from ``data`` (st.data(), so that Keras's own use of ``random`` happens in the
    test, not inside a strategy). Returns (spec dict, number of candidates both rejected).
    """
    draw = data.draw
    n_inputs = draw(st.sampled_from([1, 2])) if dag else 1
    inputs = []
    for j in range(n_inputs):
        rank = draw(st.sampled_from([1, 2, 3]))
        dims = st.integers(1, 12) if rank < 3 else st.integers(1, 20)
        shape = [draw(dims) for _ in range(rank - 1)] + [draw(st.integers(1, 6))]
        inputs.append({"name": f"in{j}", "shape": shape})
    as_input_layer = not dag and draw(st.booleans())  # cover type: Input too
    layers: list[dict] = []
    if as_input_layer:
        layers.append({"type": "Input", "name": "in0", "shape": inputs[0]["shape"]})
    tensors = {}
    for t in inputs:
        tensors[t["name"]] = keras.Input(shape=tuple(t["shape"]), name=t["name"])
    shapes = {t["name"]: tuple(t["shape"]) for t in inputs}
    previous = "in0"
    rejected = 0
    steps = draw(st.integers(1, 8))
    for step in range(steps):
        name = f"l{step}"
        merge = dag and len(shapes) >= 2 and draw(st.integers(0, 3)) == 0
        if merge:
            kind = draw(st.sampled_from(MERGES))
            first = draw(st.sampled_from(sorted(shapes)))
            same = [n for n in sorted(shapes) if n != first and shapes[n] == shapes[first]]
            other = [n for n in sorted(shapes) if n != first]
            pool = same if same and draw(st.integers(0, 4)) else other
            count = 2 if kind == "Subtract" else draw(st.integers(2, 3))
            refs = [first] + [draw(st.sampled_from(pool)) for _ in range(count - 1)]
            config = {"type": kind, "inputs": refs}
            if kind == "Concatenate":
                rank = len(shapes[first])
                _maybe(draw, config, "axis", st.sampled_from([-1, *range(1, rank + 1)]))
        else:
            source = draw(st.sampled_from(sorted(shapes))) if dag else previous
            shape = shapes[source]
            kind = draw(st.sampled_from(BY_RANK[min(len(shape), 3)]))
            config = single_input_layer(draw, kind, shape)
            if dag:
                config["inputs"] = [source]
        config["name"] = name
        candidate = {
            "version": 1,
            "name": "fuzz",
            "inputs": [] if as_input_layer else inputs,
            "layers": layers + [config],
            "outputs": [name],
        }
        result = check_data(candidate)
        refs = config.get("inputs", [previous])
        context = {"spec": candidate}
        klayer = None
        try:
            args = {k: v for k, v in config.items() if k not in ("type", "name", "inputs")}
            if result.ok:  # the IR's arguments, so the test checks keras_args() too
                klayer = keras_layer(keras, result.model.layer(name))
            else:
                cls = getattr(keras.layers, LAYER_TYPES[config["type"]].keras_class)
                klayer = cls(name=name, **_tuplify(args))
            ins = [tensors[r] for r in refs]
            out = klayer(ins if kind in MERGES else ins[0])
            keras_error = None
        except Exception as exc:  # noqa: BLE001 - any Keras refusal counts as "invalid"
            keras_error = exc
        if result.ok and keras_error is not None:
            raise Mismatch(f"specc accepts but Keras raises {keras_error!r}\n{context}")
        if not result.ok and keras_error is None and not specc_stricter(kind, result):
            message = "; ".join(d.format() for d in result.errors)
            raise Mismatch(f"specc rejects ({message}) but Keras builds {out.shape}\n{context}")
        if not result.ok:
            rejected += 1
            continue
        compare(keras, result.model.layer(name), klayer, out, context)
        event(f"accepted {kind}")
        layers.append(config)
        tensors[name] = out
        shapes[name] = tuple(out.shape[1:])
        previous = name
    assume(layers and layers[-1]["type"] != "Input")
    used = {r for layer in layers for r in layer.get("inputs", [])}
    final = {
        "version": 1,
        "name": "fuzz",
        "inputs": [] if as_input_layer else [t for t in inputs if not dag or t["name"] in used],
        "layers": layers,
    }
    if dag:
        consumed = {r for layer in layers for r in layer.get("inputs", [])}
        final["outputs"] = [x["name"] for x in layers if x["name"] not in consumed]
    return final, rejected


def specc_stricter(kind: str, result) -> bool:
    """Where specc refuses what Keras builds, on purpose: Keras's image preprocessing layers
    take a rank-2 sample (batch, h, w) as one unbatched image (h, w, channels), the batch
    axis read as the height, where specc wants a (height, width, channels) sample; and a
    recurrent layer's dropout / recurrent_dropout outside [0, 1), which Keras clamps
    silently (a rate of 1 would drop everything)."""
    if all(
        ("dropout must be" in d.message)
        or ("dropout must be" in d.message.replace("recurrent_", ""))
        for d in result.errors
    ):
        return True
    return kind in ("Resizing", "CenterCrop") and all(
        "expects a rank-3 input" in d.message for d in result.errors
    )


def _tuplify(args: dict) -> dict:
    """Spec lists -> tuples, as Keras constructors expect them."""
    out = {}
    for key, value in args.items():
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        out[key] = value
    return out


def keras_from_ir(keras, model):
    """The Keras functional model built from specc's IR: keras_class + keras_args()."""
    tensors = {t.name: keras.Input(shape=t.shape, name=t.name, dtype=t.dtype) for t in model.inputs}
    built = {}
    for layer in model.layers:
        klayer = keras_layer(keras, layer)
        ins = [tensors[r] for r in layer.inputs]
        tensors[layer.name] = klayer(ins if layer.spec.arity != 1 else ins[0])
        built[layer.name] = klayer
    kmodel = keras.Model(
        inputs=[tensors[t.name] for t in model.inputs],
        outputs=[tensors[n] for n in model.outputs],
    )
    return kmodel, tensors, built


def check_whole_model(keras, spec_dict: dict) -> None:
    result = check_data(spec_dict)
    assert result.ok, [d.format() for d in result.diagnostics]
    model = result.model
    kmodel, tensors, built = keras_from_ir(keras, model)
    for layer in model.layers:
        compare(keras, layer, built[layer.name], tensors[layer.name], {"spec": spec_dict})
    assert kmodel.count_params() == model.total_params
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in kmodel.trainable_weights))
    assert trainable == model.trainable_params
    assert kmodel.count_params() - trainable == model.non_trainable_params


@pytest.mark.slow
@PROFILE
@given(data=st.data())
def test_keras_agrees_on_random_stacks(keras, data):
    spec_dict, _ = grown_spec(data, keras, dag=False)
    check_whole_model(keras, spec_dict)


@pytest.mark.slow
@PROFILE
@given(data=st.data())
def test_keras_agrees_on_random_graphs(keras, data):
    spec_dict, _ = grown_spec(data, keras, dag=True)
    check_whole_model(keras, spec_dict)


@pytest.mark.slow
@PROFILE
@given(
    n=st.integers(1, 10),
    m=st.integers(1, 10),
    k=st.integers(1, 12),
    sd=strided_or_dilated(),
    kind=st.sampled_from(
        [
            "Conv1D",
            "Conv2D",
            "DepthwiseConv2D",
            "SeparableConv2D",
            "MaxPooling1D",
            "MaxPooling2D",
            "AveragePooling1D",
            "AveragePooling2D",
        ]
    ),  # fmt: skip
)
def test_keras_refusal_implies_specc_error(keras, n, m, k, sd, kind):
    """Kernels and pools that may not fit ('valid'): Keras raises exactly when specc reports."""
    s, d = sd
    rank = 1 if kind.endswith("1D") else 2
    shape = (n, 2) if rank == 1 else (n, m, 2)
    config: dict = {"type": kind}
    if "Pooling" in kind:
        config.update(pool_size=k, strides=s)
    else:
        config.update(kernel_size=k, strides=s, dilation_rate=d)
        if kind != "DepthwiseConv2D":
            config["filters"] = 2
    result = check_data(spec(shape, config))
    cls = getattr(keras.layers, kind)
    args = {key: v for key, v in config.items() if key != "type"}
    try:
        out = cls(**args)(keras.Input(shape=shape))
        keras_error = None
    except Exception as exc:  # noqa: BLE001
        keras_error = exc
    if keras_error is not None:
        assert not result.ok, f"Keras raises {keras_error!r}; specc accepts {config} on {shape}"
        assert any("does not fit" in e.message for e in result.errors)
    else:
        assert result.ok, [e.format() for e in result.errors]
        assert tuple(out.shape[1:]) == result.model.layers[-1].output_shape


# --------------------------------------------------------------------------- slow: edge values


def _from_schema(node: dict, defs: dict):
    """A strategy for the values a JSON-schema node allows, biased to its edges.

    Integers stay small (sizes up to 64) so that Keras never allocates much; floats reach
    their bounds and far beyond 1.
    """
    if "$ref" in node:
        return _from_schema(defs[node["$ref"].split("/")[-1]], defs)
    if "anyOf" in node:
        return st.one_of(*[_from_schema(n, defs) for n in node["anyOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    kind = node.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo = node.get("minimum", -(2**63))
        hi = min(node.get("maximum", 2**63 - 1), max(lo, 0) + 64)
        edges = [v for v in (lo, lo + 1, hi, -1, 0, 1, 2**31, 2**63 - 1) if v >= lo]
        edges = [v for v in edges if v <= node.get("maximum", 2**63 - 1)]
        return st.sampled_from(edges) | st.integers(max(lo, -64), hi)
    if kind == "number":
        lo = node.get("minimum", node.get("exclusiveMinimum", -1e6))
        hi = node.get("maximum", node.get("exclusiveMaximum", 1e6))
        return st.floats(
            lo,
            hi,
            exclude_min="exclusiveMinimum" in node,
            exclude_max="exclusiveMaximum" in node,
            allow_nan=False,
        )
    if kind == "array":
        if "prefixItems" in node:
            return st.tuples(*[_from_schema(n, defs) for n in node["prefixItems"]]).map(list)
        return st.lists(
            _from_schema(node.get("items", {"type": "integer"}), defs),
            min_size=node.get("minItems", 0),
            max_size=min(node.get("maxItems", 4), 4),
        )
    return st.nothing()


def _field_strategies(cls) -> dict:
    schema = cls.model_json_schema()
    defs = schema.get("$defs", {})
    return {
        field: _from_schema(node, defs)
        for field, node in schema["properties"].items()
        if field not in ("name", "inputs", "type")
    }


EDGE_TYPES = sorted(k for k in LAYER_TYPES if k != "Input" and k not in MERGES)
EDGE_SHAPES = {1: (12,), 2: (9, 3), 3: (9, 7, 4)}


@pytest.mark.slow
@settings(PROFILE, max_examples=PROFILE.max_examples * 4)
@given(kind=st.sampled_from(EDGE_TYPES), rank=st.sampled_from([1, 2, 3]), data=st.data())
def test_keras_accepts_what_specc_accepts_at_the_edges(keras, kind, rank, data):
    """Any field value specc accepts (schema edges: 0, bounds, 2**31, 2**63-1, big floats),
    Keras must build with the same output shape and parameters; a value Keras refuses must
    be refused by specc (the ReLU negative threshold was such a value)."""
    cls = LAYER_TYPES[kind]
    fields = _field_strategies(cls)
    chosen = data.draw(st.sets(st.sampled_from(sorted(fields)))) if fields else set()
    config = {"type": kind, "name": "edge"}
    for field in sorted(chosen):
        config[field] = data.draw(fields[field], label=field)
    shape = EDGE_SHAPES[rank]
    result = check_data(spec(shape, config))
    if result.ok:
        assume(result.model.total_params < 2_000_000)  # Keras allocates the weights
    args = {k: v for k, v in config.items() if k not in ("type", "name")}
    try:
        if result.ok:  # what specc would generate: every argument written explicitly
            klayer = keras_layer(keras, result.model.layers[-1])
        else:
            klayer = getattr(keras.layers, cls.keras_class)(name="edge", **_tuplify(args))
        out = klayer(keras.Input(shape=shape))
        keras_error = None
    except Exception as exc:  # noqa: BLE001
        keras_error = exc
    if result.ok:
        assert keras_error is None, f"specc accepts {config} on {shape}; Keras: {keras_error!r}"
        compare(keras, result.model.layers[-1], klayer, out, {"spec": config})
    elif keras_error is None:
        # specc may only be stricter than Keras where it says why on purpose
        messages = [d.message for d in result.errors]
        assert all(
            "strides > 1 cannot be combined with dilation_rate > 1" in m
            or "empty dimension" in m
            # the batch axis or one past the rank: Keras's Softmax does not check its axis
            # until it runs on data, its LayerNormalization takes axis 0 when there are no
            # weights; specc refuses both on purpose
            or (m.startswith("axis ") and "is out of range" in m)
            # Keras's image preprocessing layers read a (batch, h, w) input as one
            # unbatched image (specc_stricter)
            or (kind in ("Resizing", "CenterCrop") and "expects a rank-3 input" in m)
            # Keras builds any noise_shape; while training, one of a higher rank broadcasts
            # the output to another shape ((4, 12) becomes (1, 4, 12)): specc refuses it
            or (m.startswith("noise_shape has ") and "axes" in m)
            for m in messages
        ), f"specc rejects {config} on {shape} ({messages}) but Keras builds {out.shape}"
