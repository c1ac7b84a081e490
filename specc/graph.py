"""Stage 3, resolve: names, references, topological order, outputs.

Sequential by default (a layer reads the one listed before it); a DAG through named
``inputs``. Reports unknown references, duplicate names, cycles and wrong input counts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from . import diagcodes as codes
from .diagnostics import Diagnostic, did_you_mean
from .errors import layer_label
from .layers import keras_default_name
from .layers.base import Layer
from .source import Source
from .spec import Spec


@dataclass
class Node:
    index: int
    name: str
    layer: Layer
    inputs: list[str]


@dataclass
class Graph:
    inputs: list[tuple[str, tuple[int, ...], str]]  # (name, shape, dtype)
    nodes: list[Node]  # topological order (stable: spec order where possible)
    outputs: list[str]
    broken: set[str]  # nodes that could not be resolved (inference skips them)


class _Reporter:
    def __init__(self, source: Source):
        self.source = source
        self.items: list[Diagnostic] = []

    def at(
        self,
        path: tuple,
        message: str,
        *,
        index: int | None = None,
        name: str | None = None,
        hint: str | None = None,
        prefer_key: bool = False,
        severity: str | None = None,
        code: codes.Code = codes.GRAPH,
    ) -> None:
        label = layer_label(self.source.data, index, name) if index is not None else None
        self.items.append(
            Diagnostic.at(
                self.source,
                path,
                code,
                message,
                layer=label,
                hint=hint,
                severity=severity,
                prefer_key=prefer_key,
            )
        )


def assign_names(spec: Spec) -> list[str]:
    """Explicit names as written; the others as Keras names them (conv2d, conv2d_1, ...)."""
    taken = {layer.name for layer in spec.layers if layer.name} | {i.name for i in spec.inputs}
    counters: dict[str, int] = {}
    names = []
    for layer in spec.layers:
        if layer.name:
            names.append(layer.name)
            continue
        stem = keras_default_name(layer.layer_type)
        while True:
            n = counters.get(stem, 0)
            counters[stem] = n + 1
            candidate = stem if n == 0 else f"{stem}_{n}"
            if candidate not in taken:
                break
        taken.add(candidate)
        names.append(candidate)
    return names


def resolve(spec: Spec, source: Source) -> tuple[Graph, list[Diagnostic]]:
    report = _Reporter(source)
    names = assign_names(spec)
    broken: set[str] = set()

    # model inputs: the `inputs` section, then Input layers
    model_inputs: list[tuple[str, tuple[int, ...], str]] = [
        (i.name, tuple(i.shape), i.dtype) for i in spec.inputs
    ]
    owner: dict[str, tuple] = {}  # name -> path of its definition
    duplicates: set[int] = set()  # indices of layers whose name is taken
    for k, tensor in enumerate(spec.inputs):
        if tensor.name in owner:
            report.at(
                ("inputs", k, "name"),
                f"duplicate input name '{tensor.name}'",
                code=codes.DUPLICATE_NAME,
            )
        owner[tensor.name] = ("inputs", k, "name")
    for index, (layer, name) in enumerate(zip(spec.layers, names)):
        path = ("layers", index, "name") if layer.name else ("layers", index)
        if name in owner:
            first = owner[name]
            line, col = source.locate(first)
            report.at(
                path,
                f"duplicate name '{name}' (first defined at line {line}, column {col})",
                index=index,
                name=name,
                code=codes.DUPLICATE_NAME,
            )
            duplicates.add(index)
            continue
        owner[name] = path
        if layer.layer_type == "Input":
            if layer.inputs:
                report.at(
                    ("layers", index, "inputs"),
                    "an Input layer takes no inputs",
                    index=index,
                    name=name,
                    prefer_key=True,
                )
            model_inputs.append((name, tuple(layer.shape), layer.dtype))

    if not model_inputs:
        report.at(
            ("layers",),
            "the model has no inputs",
            hint="add an 'inputs:' section, e.g. inputs: [{name: image, shape: [28, 28, 1]}], "
            "or start 'layers' with {type: Input, shape: [...]}",
            prefer_key=True,
            code=codes.NO_INPUTS,
        )
    input_names = [t[0] for t in model_inputs]
    known = set(input_names) | set(names)

    # edges
    nodes: list[Node] = []
    previous: str | None = input_names[0] if len(input_names) == 1 else None
    for index, (layer, name) in enumerate(zip(spec.layers, names)):
        if index in duplicates:
            continue
        if layer.layer_type == "Input":
            previous = name
            continue
        if layer.inputs is not None:
            refs = list(layer.inputs)
            for j, ref in enumerate(refs):
                if ref not in known:
                    report.at(
                        ("layers", index, "inputs", j),
                        f"unknown layer or input '{ref}'",
                        index=index,
                        name=name,
                        hint=did_you_mean(ref, sorted(known - {name})),
                        code=codes.UNKNOWN_REFERENCE,
                    )
                    broken.add(name)
                elif ref == name:
                    report.at(
                        ("layers", index, "inputs", j),
                        "a layer cannot read its own output",
                        index=index,
                        name=name,
                        code=codes.CYCLE,
                    )
                    broken.add(name)
        elif previous is None:
            if input_names:
                report.at(
                    ("layers", index),
                    f"the model has {len(input_names)} inputs "
                    f"({', '.join(input_names)}); say which this layer reads",
                    index=index,
                    name=name,
                    hint="add 'inputs: [<name>]' to this layer",
                    code=codes.AMBIGUOUS_INPUT,
                )
            broken.add(name)
            refs = []
        else:
            refs = [previous]
        arity = type(layer).arity
        count = len(refs)
        if name not in broken:
            if arity == 1 and count != 1:
                report.at(
                    ("layers", index, "inputs"),
                    f"takes exactly one input, got {count}",
                    index=index,
                    name=name,
                    prefer_key=True,
                    hint="merge several inputs first with Concatenate or Add",
                    code=codes.ARITY,
                )
                broken.add(name)
            elif arity is None and count < 2:
                report.at(
                    ("layers", index, "inputs") if layer.inputs is not None else ("layers", index),
                    f"merges two or more inputs, got {count}",
                    index=index,
                    name=name,
                    prefer_key=True,
                    hint="list them: inputs: [a, b]",
                    code=codes.ARITY,
                )
                broken.add(name)
            elif arity == 2 and count != 2:
                report.at(
                    ("layers", index, "inputs"),
                    f"takes exactly two inputs, got {count}",
                    index=index,
                    name=name,
                    prefer_key=True,
                    code=codes.ARITY,
                )
                broken.add(name)
        nodes.append(Node(index, name, layer, refs))
        previous = name

    order, cyclic = _topological(nodes, set(input_names))
    cyclic_by_name = {n.name: n for n in cyclic}
    reported: set[str] = set()
    for node in cyclic:
        broken.add(node.name)
        loop = None if node.name in reported else _find_cycle(node, cyclic_by_name)
        if loop:
            reported.update(loop)
            report.at(
                ("layers", node.index, "inputs"),
                f"cycle: {' -> '.join(loop)}",
                index=node.index,
                name=node.name,
                prefer_key=True,
                hint="a layer may only read model inputs and layers that do not depend on it",
                code=codes.CYCLE,
            )

    # outputs
    if spec.outputs is not None:
        outputs = []
        for j, ref in enumerate(spec.outputs):
            if ref not in known:
                report.at(
                    ("outputs", j),
                    f"unknown output '{ref}'",
                    hint=did_you_mean(ref, sorted(known)),
                    code=codes.UNKNOWN_REFERENCE,
                )
            elif ref in outputs:
                report.at(
                    ("outputs", j), f"output '{ref}' is listed twice", code=codes.DUPLICATE_NAME
                )
            else:
                outputs.append(ref)
    else:
        outputs = [nodes[-1].name] if nodes else []

    # layers that no output depends on (not worth saying while the graph itself is wrong)
    if any(d.severity == "error" for d in report.items):
        return Graph(model_inputs, order, outputs, broken), report.items
    needed = ancestors(outputs, {n.name: n for n in nodes})
    for node in nodes:
        if node.name not in needed and node.name not in broken:
            report.at(
                ("layers", node.index),
                "does not reach any output; it will not be part of the model",
                index=node.index,
                name=node.name,
                hint="list it under 'outputs:' or remove it",
                code=codes.UNUSED,
            )
    for k, name in enumerate(input_names):
        if name not in needed and outputs:
            path = ("inputs", k) if k < len(spec.inputs) else ("layers",)
            report.at(path, f"input '{name}' is not used by any output", code=codes.UNUSED)

    return Graph(model_inputs, order, outputs, broken), report.items


def _topological(nodes: list[Node], sources: set[str]) -> tuple[list[Node], list[Node]]:
    """Kahn's algorithm, taking ready nodes in spec order. Returns (ordered, cyclic)."""
    by_name = {n.name: n for n in nodes}
    pending = {n.name: {r for r in n.inputs if r in by_name} for n in nodes}
    users: dict[str, list[str]] = {}
    for node in nodes:
        for ref in pending[node.name]:
            users.setdefault(ref, []).append(node.name)

    position = {n.name: i for i, n in enumerate(nodes)}
    ready = [position[n] for n, deps in pending.items() if not deps]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for user in users.get(node.name, ()):
            pending[user].discard(node.name)
            if not pending[user]:
                heapq.heappush(ready, position[user])
    done = {n.name for n in order}
    return order, [n for n in nodes if n.name not in done]


def _find_cycle(start: Node, cyclic: dict[str, Node]) -> list[str] | None:
    """A cycle through ``start`` among the cyclic nodes, as a list of names, if there is one."""
    stack = [(start.name, [start.name])]
    seen = set()
    while stack:
        name, path = stack.pop()
        for ref in cyclic[name].inputs:
            if ref == start.name:
                return list(reversed(path + [ref]))
            if ref in cyclic and ref not in seen:
                seen.add(ref)
                stack.append((ref, path + [ref]))
    return None


def ancestors(outputs: list[str], by_name: dict) -> set[str]:
    """Names of the outputs and everything they read, transitively (nodes have ``inputs``)."""
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in by_name:
            stack.extend(by_name[name].inputs)
    return seen
