"""PyTorch target: an ``nn.Module`` named after the spec, layers in ``__init__``, a forward
that reads like hand-written code.

Layout: the module takes and returns channels-last tensors, exactly the arrays the Keras
model takes and returns. Inside it works channels-first (NCHW / NCL) wherever a
convolution, pooling or BatchNorm needs it, converting with one ``permute`` where the layout
changes; Flatten, Reshape, Dense and LayerNorm see channels-last tensors, so Flatten keeps
Keras's element order and Keras Dense kernels load without any row permutation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ...codegen import CodegenError, refusal
from ...codegen.pyformat import (
    INDENT,
    LINE_LENGTH,
    NN_MODULE_ATTRIBUTES,
    RESERVED,
    Renderer,
    call_block,
    class_name,
    comment_text,
    docstring,
    identifier,
    py_literal,
)
from ...ir import LayerIR, ModelIR
from ...layers import lowering as lw

ATTRIBUTE_RESERVED = RESERVED | NN_MODULE_ATTRIBUTES


@dataclass
class LayerPlan:
    layer: LayerIR
    layout: str  # the layout its inputs are brought to
    lowering: lw.TorchLowering
    attributes: dict[str, str] = field(default_factory=dict)  # module suffix -> attribute
    folded: bool = False  # a ZeroPadding2D done by the padding of the layer that follows
    #: for each input, the Embedding (mask_zero) whose Keras mask this layer takes into
    #: account ("use"; None: that input carries no mask); empty when it takes none
    masks: tuple[str | None, ...] = ()


@dataclass
class TorchPlan:
    """Every decision of the PyTorch backend, shared by the code generator and weights.py."""

    model: ModelIR
    class_name: str
    layers: list[LayerPlan]
    #: the class form (one nn.Module per block, specc/targets/pytorch/blocks.py), or None
    hierarchy: object = None

    def weights(self):
        """(layer name, module path, Weight) for every declared weight, in model order; the
        path (``conv2.block.0.x1_conv`` in the class form) is what ``get_submodule`` takes."""
        for plan in self.layers:
            for weight in plan.layer.weights:
                yield plan.layer.name, plan.attributes[weight.torch_module], weight


def _permutation(rank: int, to: str) -> tuple[int, ...]:
    """Batch-included permutation between channels-last and channels-first for a sample rank."""
    if to == lw.CF:
        return (0, rank, *range(1, rank))
    return (0, *range(2, rank + 1), 1)


_LAYOUT_NAMES = {2: ("NLC", "NCL"), 3: ("NHWC", "NCHW"), 4: ("NDHWC", "NCDHW")}


def _input_path(model: ModelIR, source, index: int) -> tuple:
    data = source.data if source is not None else None
    name = model.inputs[index].name
    if isinstance(data, dict):
        for k, item in enumerate(data.get("inputs") or []):
            if isinstance(item, dict) and item.get("name") == name:
                return ("inputs", k, "dtype")
        for k, item in enumerate(data.get("layers") or []):
            if isinstance(item, dict) and item.get("type") == "Input":
                return ("layers", k, "dtype")
    return ()


#: activations whose outputs are never negative (max pooling may then pad with zeros or -inf)
_NON_NEGATIVE = {"relu", "sigmoid", "softmax", "softplus"}
#: modules whose ``padding`` argument pads with zeros before the operation
_ZERO_PADDED = {"nn.Conv2d"}


def _non_negative(layer: LayerIR | None) -> bool:
    """Whether every output of ``layer`` is >= 0 whatever its input (NaN aside)."""
    if layer is None:
        return False
    spec = layer.spec
    if layer.type == "ReLU":
        return spec.negative_slope == 0
    return getattr(spec, "activation", None) in _NON_NEGATIVE


def _fold_padding(model: ModelIR, layer: LayerIR, lowering: lw.TorchLowering, producers):
    """``lowering`` with a symmetric ZeroPadding2D just before ``layer`` added to the padding
    of its first module, when that is exactly the same computation; None otherwise.

    A convolution's ``padding`` pads with zeros, as ZeroPadding2D does. Max pooling pads with
    -inf, which equals zero padding only when the input is never negative (every window keeps
    a real value: torch allows at most half the window as padding).
    """
    if len(layer.inputs) != 1 or not lowering.steps:
        return None
    pad = producers.get(layer.inputs[0])
    if pad is None or pad.type != "ZeroPadding2D":
        return None
    (top, bottom), (left, right) = pad.spec.padding
    if top != bottom or left != right:
        return None
    first = lowering.steps[0]
    if not (
        isinstance(first, lw.Call)
        and isinstance(first.func, lw.Module)
        and first.args == (lw.X,)
        and not first.kwargs
    ):
        return None
    index, module = next(
        ((k, m) for k, m in enumerate(lowering.modules) if m.suffix == first.func.suffix),
        (None, None),
    )
    if module is None:
        return None
    args = dict(module.args)
    padding = args.get("padding")
    if not (isinstance(padding, tuple) and len(padding) == 2):
        return None
    if module.cls == "nn.MaxPool2d":
        if not _non_negative(producers.get(pad.inputs[0])):
            return None
        new = (padding[0] + top, padding[1] + left)
        if any(2 * p > k for p, k in zip(new, args["kernel_size"])):
            return None
    elif module.cls in _ZERO_PADDED and args.get("padding_mode") == "zeros":
        new = (padding[0] + top, padding[1] + left)
    else:
        return None
    args["padding"] = new
    modules = list(lowering.modules)
    modules[index] = lw.TorchModule(module.cls, tuple(args.items()), module.suffix)
    return dataclasses.replace(lowering, modules=tuple(modules))


def _consumers(model: ModelIR) -> dict[str, int]:
    count: dict[str, int] = {name: 1 for name in model.outputs}
    for layer in model.layers:
        for name in layer.inputs:
            count[name] = count.get(name, 0) + 1
    return count


def mask_placeholder(embedding: str) -> str:
    """Stands for the variable holding the mask of ``embedding`` (mask_zero) in the steps of
    a layer that takes Keras masks ("<" cannot start a Python name, so no spec name produces
    it; the same Embedding, the same placeholder); _forward writes the variable's name."""
    return f"<mask:{embedding}>"


def plan(model: ModelIR, source=None) -> TorchPlan:
    """Choose layouts, lower every layer and name every attribute; refuse what torch cannot
    express exactly (raises CodegenError listing every problem)."""
    problems = []
    for k, tensor in enumerate(model.inputs):
        readers = [layer for layer in model.layers if tensor.name in layer.inputs]
        ids_only = readers and all(
            getattr(layer.spec, "accepts_integer_input", False) for layer in readers
        )
        if tensor.dtype in ("int32", "int64") and ids_only:
            continue  # token ids read only by layers taking integers (Embedding)
        if tensor.dtype != "float32":
            problems.append(
                refusal(
                    model,
                    source,
                    f"pytorch target: input '{tensor.name}' has dtype {tensor.dtype}; "
                    "only float32 inputs, and int32/int64 ids read only by Embedding layers, "
                    "are supported",
                    path=_input_path(model, source, k),
                    hint="use dtype: float32",
                )
            )
    layouts = {t.name: lw.CL for t in model.inputs}
    ranks = {t.name: len(t.shape) for t in model.inputs}
    taken: set[str] = set()
    plans = []
    consumers = _consumers(model)
    producers: dict[str, LayerIR] = {}
    by_name: dict[str, LayerPlan] = {}
    from ...infer import input_masks, keras_runtime_mask_problems

    masks = input_masks(model)  # layer -> per input, the Embedding whose mask it carries
    runtime_problems = keras_runtime_mask_problems(model)
    for layer in model.layers:
        producers[layer.name] = layer
        shapes = [model.shape_of(name) for name in layer.inputs]
        want = layer.spec.torch_layout
        if want == lw.ANY:
            seen = {layouts[n] for n in layer.inputs if ranks[n] >= 2}
            want = seen.pop() if len(seen) == 1 else lw.CF if seen else lw.CL
        try:
            lowering = layer.spec.torch_lowering(shapes, layer.output_shape, want)
        except lw.Unsupported as exc:
            problems.append(
                refusal(
                    model,
                    source,
                    f"pytorch target: {exc.message}",
                    layer=layer,
                    field=exc.field,
                    hint=exc.hint,
                )
            )
            # keep planning what follows, to report every refusal at once
            layouts[layer.name] = want
            ranks[layer.name] = len(layer.output_shape)
            continue
        in_masks = masks.get(layer.name, ())
        used: tuple[str | None, ...] = ()
        if in_masks:
            try:
                lw.check_masks(layer, in_masks, runtime_problems.get(layer.name), "PyTorch")
                if layer.spec.keras_masking == "use":
                    refs = tuple(
                        None if m is None else lw.Ref(mask_placeholder(m)) for m in in_masks
                    )
                    steps = layer.spec.torch_mask_steps(lowering, refs, layer.output_shape)
                    lowering = dataclasses.replace(lowering, steps=steps)
                    used = in_masks
            except lw.Unsupported as problem:
                problems.append(
                    refusal(
                        model,
                        source,
                        f"pytorch target: {problem.message}",
                        layer=layer,
                        field=problem.field,
                        hint=problem.hint,
                    )
                )
                layouts[layer.name] = want
                ranks[layer.name] = len(layer.output_shape)
                continue
        padding = by_name.get(layer.inputs[0]) if layer.inputs else None
        if padding is not None and not _same_scope(model, padding.layer, layer):
            padding = None  # a block instance's boundary: each side stays whole
        if padding is not None and consumers.get(padding.layer.name) == 1:
            folded = _fold_padding(model, layer, lowering, producers)
            if folded is not None:
                lowering = folded
                padding.folded = True
                padding.lowering = lw.TorchLowering()
                taken.difference_update(padding.attributes.values())
                padding.attributes = {}
        attributes = {}
        for module in lowering.modules:
            attributes[module.suffix] = identifier(
                layer.name, taken, ATTRIBUTE_RESERVED, module.suffix
            )
        by_name[layer.name] = LayerPlan(layer, want, lowering, attributes, False, used)
        plans.append(by_name[layer.name])
        layouts[layer.name] = lowering.out_layout or want
        ranks[layer.name] = len(layer.output_shape)
    if problems:
        raise CodegenError(problems)
    tp = TorchPlan(model, class_name(model.name), plans)
    if model.expansion is not None and model.expansion.calls and not masks:  # flat with masks
        from .blocks import build

        tp.hierarchy = build(tp, _helpers(tp))
    return tp


def _same_scope(model: ModelIR, a: LayerIR, b: LayerIR) -> bool:
    ex = model.expansion
    if ex is None or not ex.calls:
        return True
    return ex.scope_of(a.index) == ex.scope_of(b.index)


# --------------------------------------------------------------------------- rendering

_I2 = INDENT * 2


@dataclass(frozen=True)
class Tap:
    """Where one layer's output lives in the generated ``forward``: the local ``variable``
    holds it, in ``layout``, once the first ``end`` lines of forward's body have run (until
    the variable is reassigned)."""

    layer: str
    variable: str
    layout: str
    end: int
    #: in the class form: the module recording it (a path as named_modules gives it, '' for
    #: the model) and its key in that module's ``taps``
    module: str = ""
    key: str = ""


def forward_taps(model: ModelIR) -> list[Tap]:
    """Every layer's :class:`Tap` in model order."""
    tp = plan(model)
    if tp.hierarchy is not None:
        root = {t[0]: t for t in tp.hierarchy.root_taps}
        taps = []
        for layer, path, key, layout in tp.hierarchy.taps:
            if layer in root:
                _, variable, layout, end = root[layer]
                taps.append(Tap(layer, variable, layout, end, "", layer))
            else:
                taps.append(Tap(layer, key, layout, -1, path, key))
        return taps
    taps: list[Tap] = []
    _forward(tp, taps)
    return taps


def tap_names(model: ModelIR) -> dict[tuple[str, str], str]:
    """(module path, key in that module's ``taps``) -> layer name, for the tapped variant."""
    return {(t.module, t.key or t.layer): t.layer for t in forward_taps(model)}


def _with_taps(body: list[str], taps: list[Tap]) -> list[str]:
    """forward's body recording each layer's output in ``self.taps`` (a dict the caller
    sets) as soon as it is computed: the tapped variant ``specc crosscheck`` builds."""
    out = list(body)
    for tap in sorted(taps, key=lambda t: t.end, reverse=True):
        line = f"{_I2}self.taps[{tap.layer!r}] = ({tap.variable}.clone(), {tap.layout!r})"
        out.insert(tap.end, line)
    return out


def _forward(
    tp: TorchPlan, taps: list[Tap] | None = None
) -> tuple[list[str], list[str], str, list[str]]:
    """(parameter names, body lines, return annotation, docstring lines) of forward;
    appends each layer's :class:`Tap` to ``taps`` when given."""
    model = tp.model
    sequential = model.is_sequential
    local_taken: set[str] = set()
    var: dict[str, str] = {}
    mask_var: dict[str, str] = {}  # Embedding (mask_zero) -> the variable holding its mask
    for tensor in model.inputs:
        var[tensor.name] = "x" if sequential else identifier(tensor.name, local_taken)
    params = [var[t.name] for t in model.inputs]
    layout = {var[t.name]: lw.CL for t in model.inputs}
    rank = {t.name: len(t.shape) for t in model.inputs}
    body: list[str] = []

    def convert(name: str, to: str) -> None:
        v = var[name]
        if rank[name] < 2 or layout[v] == to:
            return
        names = _LAYOUT_NAMES.get(rank[name], ("channels-last", "channels-first"))
        frm, dst = (names[0], names[1]) if to == lw.CF else (names[1], names[0])
        body.append(f"{_I2}# {frm} -> {dst}")
        permute = lw.call(lw.Attr(lw.X, "permute"), *_permutation(rank[name], to))
        body.extend(Renderer([v]).lines(permute, _I2, f"{v} = "))
        layout[v] = to

    for lp in tp.layers:
        layer = lp.layer
        for name in layer.inputs:
            convert(name, lp.layout)
        in_vars = [var[n] for n in layer.inputs]
        rank[layer.name] = len(layer.output_shape)
        if lp.folded:  # the next layer's own padding does it: no tensor of its own
            var[layer.name] = in_vars[0]
            if taps is not None:  # the tapped variant pads a copy to record the output
                (top, bottom), (left, right) = layer.spec.padding
                padded = (
                    f"torch.nn.functional.pad({in_vars[0]}, ({left}, {right}, {top}, {bottom}))"
                )
                taps.append(Tap(layer.name, padded, layout[in_vars[0]], len(body)))
            continue
        if not lp.lowering.steps:  # an identity (linear activation): the same tensor
            var[layer.name] = in_vars[0]
            if taps is not None:
                taps.append(Tap(layer.name, in_vars[0], layout[in_vars[0]], len(body)))
            continue
        out = "x" if sequential else identifier(layer.name, local_taken)
        if getattr(layer.spec, "mask_zero", False):  # a step is real where its id is not 0
            mask_var[layer.name] = identifier(f"{layer.name}_mask", local_taken)
            body.append(f"{_I2}{mask_var[layer.name]} = {in_vars[0]} != 0  # Keras's mask_zero")
        var[layer.name] = out
        modules = {suffix: f"self.{attr}" for suffix, attr in lp.attributes.items()}
        for index, step in enumerate(lp.lowering.steps):
            renderer = Renderer(in_vars if index == 0 else [out], modules)
            lines = renderer.lines(step, _I2, f"{out} = ")
            for embedding in sorted({m for m in lp.masks if m is not None}):
                placeholder = mask_placeholder(embedding)
                lines = [line.replace(placeholder, mask_var[embedding]) for line in lines]
            body.extend(lines)
        layout[out] = lp.lowering.out_layout or lp.layout
        if taps is not None:
            taps.append(Tap(layer.name, out, layout[out], len(body)))
    for name in model.outputs:
        convert(name, lw.CL)
    results = [var[name] for name in model.outputs]
    return _returns(model, params, body, results)


def _returns(model: ModelIR, params: list[str], body: list[str], results: list[str]):
    """forward's (parameters, body with its return, return annotation, docstring lines)."""
    if len(results) == 1:
        body.append(f"{_I2}return {results[0]}")
        annotation = "torch.Tensor"
    else:
        line = f"{_I2}return {', '.join(results)}"
        if len(line) <= LINE_LENGTH:
            body.append(line)
        else:
            body += [f"{_I2}return (", *(f"{_I2}{INDENT}{r}," for r in results), f"{_I2})"]
        annotation = "tuple[" + ", ".join(["torch.Tensor"] * len(results)) + "]"
    doc = ["Channels-last in and out, as the Keras model: the same arrays give the same outputs."]
    doc.append("")
    for tensor, param in zip(model.inputs, params):
        shape = ", ".join(["batch", *(str(d) for d in tensor.shape)])
        doc.append(f"{param}: input '{tensor.name}', shape ({shape}).")
    for name in model.outputs:
        shape = ", ".join(["batch", *(str(d) for d in model.shape_of(name))])
        doc.append(f"Returns '{name}', shape ({shape}).")
    return params, body, annotation, doc


def _signature(params: list[str], annotation: str) -> list[str]:
    args = ["self", *(f"{p}: torch.Tensor" for p in params)]
    line = f"{INDENT}def forward({', '.join(args)}) -> {annotation}:"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [
        f"{INDENT}def forward(",
        *(f"{_I2}{a}," for a in args),
        f"{INDENT}) -> {annotation}:",
    ]


def _helpers(tp: TorchPlan) -> dict[str, str]:
    """Module classes the generated file defines itself -> their name there (renamed with a
    trailing ``_`` should the model's own class have the same name), in first-use order."""
    names: dict[str, str] = {}
    for lp in tp.layers:
        for module in lp.lowering.modules:
            if module.cls in lw.HELPER_TEMPLATES and module.cls not in names:
                names[module.cls] = module.cls + ("_" if module.cls == tp.class_name else "")
    return names


def _init(tp: TorchPlan, helpers: dict[str, str]) -> tuple[list[str], list[str]]:
    """(__init__ body lines, reset_parameters body lines)."""
    init = [f"{_I2}super().__init__()"]
    reset: list[str] = []
    for lp in tp.layers:
        for module in lp.lowering.modules:
            attr = lp.attributes[module.suffix]
            cls = helpers.get(module.cls, module.cls)
            init += call_block(cls, list(module.args), _I2, f"self.{attr} = ")
        for weight in lp.layer.weights:
            if not weight.trainable:  # statistics: torch's buffers start as Keras's (0 and 1)
                continue
            how = lw.torch_init(weight.initializer, weight.shape)
            target = lw.Ref(f"self.{lp.attributes[weight.torch_module]}.{weight.torch_attr}")
            if how.comment:
                reset.append(f"{_I2}# {lp.layer.name}/{weight.name}: {comment_text(how.comment)}")
            expr = lw.call(how.func, target, **dict(how.kwargs))
            reset += Renderer([]).lines(expr, _I2)
    if reset:
        init.append(f"{_I2}self.reset_parameters()")
    return init, reset


def _regularization(tp: TorchPlan) -> list[str]:
    """Body lines of ``regularization_loss`` (empty without regularizers): every regularized
    weight's ``l1 * sum(|w|) + l2 * sum(w ** 2)``, as Keras adds it to the loss. Sums of
    absolute values and squares do not depend on the layout, so torch's tensors serve."""
    terms = []
    for plan in tp.layers:
        factors = plan.layer.spec.regularizers()
        for weight in plan.layer.weights:
            if weight.name not in factors:
                continue
            if tp.hierarchy is not None:  # the class form: a Python path (self.a.b[0].c)
                path = tp.hierarchy.python[plan.layer.name][weight.torch_module]
                module = path if path.startswith("self.") else f"self.{path}"
            else:
                module = f"self.{plan.attributes[weight.torch_module]}"
            tensor = f"{module}.{weight.torch_attr}"
            l1, l2 = factors[weight.name]
            if l1:
                terms.append(f"{py_literal(float(l1))} * {tensor}.abs().sum()")
            if l2:
                terms.append(f"{py_literal(float(l2))} * {tensor}.square().sum()")
    if not terms:
        return []
    if len(terms) == 1:
        return [f"{_I2}return {terms[0]}"]
    return [
        f"{_I2}return (",
        f"{_I2}{INDENT}{terms[0]}",
        *(f"{_I2}{INDENT}+ {t}" for t in terms[1:]),
        f"{_I2})",
    ]


def lower(model: ModelIR, source=None, taps: bool = False) -> tuple[str, dict]:
    """(template, context) of the module; ``taps``: the variant whose forward records every
    layer's output in ``self.taps`` (for per-layer comparisons; not for users)."""
    tp = plan(model, source)
    helpers = _helpers(tp)
    h = tp.hierarchy
    block_code: list[str] = []
    if h is not None:
        from .blocks import class_code

        recorded = [Tap(*t) for t in h.root_taps]
        params, forward, annotation, forward_doc = _returns(model, h.params, h.body, h.results)
        init, reset = h.init, h.reset
        block_code = [class_code(cls, taps) for cls in h.classes]
    else:
        recorded = []
        params, forward, annotation, forward_doc = _forward(tp, recorded)
        init, reset = _init(tp, helpers)
    if taps:
        forward = _with_taps(forward, recorded)
    from ...codegen import render

    helper_code = [
        render(lw.HELPER_TEMPLATES[cls], {"name": name}).rstrip("\n")
        for cls, name in helpers.items()
    ]
    spec_file = Path(model.file).name
    head = [
        f"PyTorch model '{model.name}', generated by specc from {spec_file}.",
        "",
    ]
    if model.description:
        head += [*model.description.split("\n"), ""]
    head += [
        "Inputs and outputs are channels-last, as in Keras; inside, convolutions run",
        "channels-first. Flatten keeps Keras's channels-last order. Every backend-sensitive",
        "default (padding, BatchNorm momentum/epsilon, initializers) is written out.",
    ]
    body = "\n".join(init + reset + forward + helper_code + block_code)
    uses_f = "F." in body
    imports = ["import torch"]
    if uses_f:
        imports.append("import torch.nn.functional as F")
    imports.append("from torch import nn")
    context = {
        "module_doc": docstring(head),
        "imports": imports,
        "helpers": helper_code,
        "block_classes": block_code,
        "class_name": tp.class_name,
        "class_doc": docstring([f"{model.name} (specc spec {spec_file})."], _I2[:4]),
        "init_lines": init,
        "reset_doc": docstring(
            ["Initialize as Keras does, with Keras's fan counts and distributions."], _I2
        ),
        "reset_lines": reset,
        "regularization_doc": docstring(
            [
                "The weight regularizers' penalty, which training adds to the loss as Keras",
                "does: l1 * sum(|w|) + l2 * sum(w ** 2) for each regularized weight.",
            ],
            _I2,
        ),
        "regularization_lines": _regularization(tp),
        "forward_signature": _signature(params, annotation),
        "forward_doc": docstring(forward_doc, _I2),
        "forward_lines": forward,
    }
    return "pytorch/model.py.j2", context
