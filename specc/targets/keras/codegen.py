"""Keras target: a module whose ``build_model()`` returns a ``keras.Model``: a
``keras.Sequential`` for a plain stack, the Functional API for graphs. Every constructor
argument is written out (the layer classes' ``keras_args()``), so no Keras default is left
implicit."""

from __future__ import annotations

from pathlib import Path

from ...codegen.pyformat import (
    INDENT,
    LINE_LENGTH,
    Renderer,
    call_block,
    docstring,
    identifier,
    py_literal,
    py_str,
)
from ...ir import ModelIR
from ...layers import lowering as lw

_I2 = INDENT * 2


def _input_args(tensor) -> list[tuple[str, object]]:
    return [("shape", tuple(tensor.shape)), ("dtype", tensor.dtype), ("name", tensor.name)]


def _layer_args(layer) -> list[tuple[str, object]]:
    return [(k, _keras_value(v)) for k, v in layer.spec.keras_args().items()] + [
        ("name", layer.name)
    ]


def _keras_value(value):
    """A Keras config mapping ({'class_name', 'config'[, 'module']}, e.g. an initializer or
    a regularizer) as its constructor call: ``keras.initializers.VarianceScaling(...)``,
    ``keras.regularizers.L2(l2=0.01)``."""
    if isinstance(value, dict) and set(value) - {"module"} == {"class_name", "config"}:
        module = value.get("module", "keras.initializers")
        return lw.call(f"{module}.{value['class_name']}", **value["config"])
    if isinstance(value, lw.Lit) and isinstance(value.value, dict):
        converted = _keras_value(value.value)
        return converted if isinstance(converted, lw.Call) else value
    if isinstance(value, lw.Call):  # a wrapped layer (Bidirectional's): its arguments too
        kwargs = tuple((k, _keras_value(v)) for k, v in value.kwargs)
        return lw.Call(value.func, value.args, kwargs)
    return value


def _cls(spec) -> str:
    """The constructor: keras.layers.<keras_class>, or a class the generated file defines."""
    if getattr(spec, "keras_helper", ""):
        return spec.keras_class
    return f"keras.layers.{spec.keras_class}"


def _call_items(spec, args: list[str]) -> list[str] | None:
    """The call's items when it takes call arguments (use_causal_mask) or positional tensors
    (MultiHeadAttention): [tensors..., key=value...]; None for a plain tensor or list call."""
    kwargs = getattr(spec, "keras_call_kwargs", dict)()
    if getattr(spec, "keras_call_style", "") == "positional":
        tensors = list(args)
    elif kwargs:
        tensors = [Renderer([]).flat(lw.ListOf(tuple(lw.Ref(a) for a in args)))]
    else:
        return None
    return [*tensors, *(f"{k}={Renderer([]).flat(lw.Lit(v))}" for k, v in kwargs.items())]


def _sequential(model: ModelIR) -> list[str]:
    lines = [f"{INDENT}return keras.Sequential(", f"{_I2}["]
    inner = _I2 + INDENT
    lines += call_block("keras.Input", _input_args(model.inputs[0]), inner, suffix=",")
    for layer in model.layers:
        lines += call_block(_cls(layer.spec), _layer_args(layer), inner, suffix=",")
    lines += [f"{_I2}],", f"{_I2}name={py_str(model.name)},", f"{INDENT})"]
    return lines


def _functional(model: ModelIR, calls=None) -> list[str]:
    """The Functional API; with ``calls`` (the top-level block instances), each instance is
    one call of its block's function (specc/targets/keras/blocks.py)."""
    taken: set[str] = set(model.expansion.blocks) if calls else set()
    var: dict[str, str] = {}
    lines: list[str] = []
    for tensor in model.inputs:
        var[tensor.name] = identifier(tensor.name, taken)
        lines += call_block(
            "keras.Input", _input_args(tensor), INDENT, f"{var[tensor.name]} = ", explode=True
        )
    last: dict[str, object] = {}
    if calls:
        from .blocks import call_lines

        ex = model.expansion
        for call in calls:
            members = [m for m in model.layers if ex.scope_of(m.index)[:1] == call.path]
            if members:
                last[members[-1].name] = call
    for layer in model.layers:
        if calls and model.expansion.frames[layer.index]:
            call = last.get(layer.name)
            if call is None:
                continue
            out = identifier(call.path[0], taken)
            args = [var[r] for r in call.inputs]
            args += [f"{k}={py_literal(v)}" for k, v in call.args]
            args.append(f"name={py_str(call.path[0])}")
            lines += call_lines(call.block, args, INDENT, f"{out} = ")
            var[call.output] = out
            continue
        out = identifier(layer.name, taken)
        cls = _cls(layer.spec)
        # as ruff lays it out: the right-hand side in parentheses when its head is too long
        wrap = len(f"{INDENT}{out} = {cls}(") > LINE_LENGTH
        indent = _I2 if wrap else INDENT
        block = call_block(
            cls, _layer_args(layer), indent, "" if wrap else f"{out} = ", explode=True
        )
        args = [var[name] for name in layer.inputs]
        items = _call_items(layer.spec, args)
        operand = lw.Ref(args[0])
        if len(args) > 1 or layer.spec.arity != 1:
            operand = lw.ListOf(tuple(lw.Ref(a) for a in args))
        text = ", ".join(items) if items is not None else Renderer([]).flat(operand)
        call = f"{block[-1]}({text})"
        if len(call) <= LINE_LENGTH:
            block[-1] = call
        elif items is not None:
            block[-1] += "("
            block += [f"{indent + INDENT}{item}," for item in items]
            block.append(f"{indent})")
        else:
            block[-1] += "("
            block += Renderer([]).lines(operand, indent + INDENT, suffix=",")
            block.append(f"{indent})")
        lines += [f"{INDENT}{out} = (", *block, f"{INDENT})"] if wrap else block
        var[layer.name] = out

    def group(names: list[str]) -> lw.Expr:
        if len(names) == 1:
            return lw.Ref(var[names[0]])
        return lw.ListOf(tuple(lw.Ref(var[n]) for n in names))

    result = lw.call(
        "keras.Model",
        inputs=group([t.name for t in model.inputs]),
        outputs=group(model.outputs),
        name=model.name,
    )
    lines += Renderer([]).lines(result, INDENT, "return ")
    return lines


def lower(model: ModelIR, source=None) -> tuple[str, dict]:
    spec_file = Path(model.file).name
    kind = "keras.Sequential" if model.is_sequential else "Functional API"
    head = [f"Keras model '{model.name}', generated by specc from {spec_file}.", ""]
    if model.description:
        head += [*model.description.split("\n"), ""]
    head += [
        "Every layer argument is written out; inputs and outputs are channels-last.",
    ]
    functions: list[str] = []
    planned = None
    if model.expansion is not None:
        from .blocks import lower_blocks

        planned = lower_blocks(model, lambda calls: _functional(model, calls))
    if planned is not None:
        functions, body = planned
        kind = "Functional API, one function per block"
    else:
        body = _sequential(model) if model.is_sequential else _functional(model)

    from ...codegen import render

    helpers = []
    for layer in model.layers:
        template = getattr(layer.spec, "keras_helper", "")
        if template:
            code = render(template, {"name": layer.spec.keras_class}).rstrip("\n")
            if code not in helpers:
                helpers.append(code)
    context = {
        "helpers": helpers,
        "block_lines": functions,
        "module_doc": docstring(head),
        "build_doc": docstring([f"Build '{model.name}' ({kind})."], INDENT),
        "body_lines": body,
    }
    return "keras/model.py.j2", context


def keras_layer(keras, spec, name: str | None = None):
    """``keras.layers.<keras_class>(**keras_args())`` built in this process (tests, tools):
    a nested layer argument (a Bidirectional's ``layer``) is built too."""

    def value(v):
        if isinstance(v, lw.Call):
            cls = getattr(keras.layers, str(v.func).rsplit(".", 1)[-1])
            return cls(**{k: value(a) for k, a in v.kwargs})
        if isinstance(v, lw.Lit):
            return v.value
        return v

    args = {k: value(v) for k, v in spec.keras_args().items()}
    if name is not None:
        args["name"] = name
    if getattr(spec, "keras_helper", ""):
        from ...codegen import render

        scope = {"keras": keras}
        exec(render(spec.keras_helper, {"name": spec.keras_class}), scope)  # noqa: S102
        return scope[spec.keras_class](**args)
    return getattr(keras.layers, spec.keras_class)(**args)


def keras_apply(keras_layer_object, spec, tensors: list):
    """Call a built layer on its input tensors as the generated code does."""
    if getattr(spec, "keras_call_style", "") == "positional":
        return keras_layer_object(*tensors, **spec.keras_call_kwargs())
    kwargs = getattr(spec, "keras_call_kwargs", dict)()
    if len(tensors) > 1 or spec.arity != 1:
        return keras_layer_object(tensors, **kwargs)
    return keras_layer_object(tensors[0], **kwargs)
