"""PyTorch code with one ``nn.Module`` class per block, as a person writes torchvision.

For a spec with ``blocks:``, every block the model uses becomes a class (``Bottleneck``)
whose ``__init__`` takes the block's parameters its layers need (plus ``in_channels``, the
channel count of each block input, which torch modules need and Keras infers) and builds
its layers, and whose ``forward`` wires them. An instance is an attribute of its parent
(``self.conv2 = Stack(in_channels=64, filters=64, blocks=3, stride=1)``), a ``repeat:``
inside a block an ``nn.Sequential`` built in a loop, an ``if:`` layer a plain ``if`` on the
parameter in ``__init__`` and ``forward`` (the ``else`` passes the input through, as the
spec language does).

Nothing here is taken on trust: every instance of every block is lowered exactly as the
flat module is (the same :class:`LayerPlan` per layer), rendered with the block's local
names, and the class is written only when all its instances give the same ``forward``
lines and every constructor argument is an expression of the parameters that evaluates to
each instance's own value. Anything else raises :class:`Unsupported` and the caller writes
the flat module, which is always exact.

Initialization stays in the model's ``reset_parameters`` (one line per weight, with
Keras's fan counts, as torchvision models initialize in the top-level ``__init__``), so
the state-dict keys are the module paths ``conv2.block.0.x1_conv.weight`` that
:attr:`Hierarchy.attributes` gives every consumer (specc/weights.py).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field

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
    py_str,
)
from ...expr import ExprError, _template_parts, _tokens, evaluate, has_expression, substitute
from ...layers import lowering as lw

ATTRIBUTE_RESERVED = RESERVED | NN_MODULE_ATTRIBUTES
_I2 = INDENT * 2
_I3 = INDENT * 3

#: torch constructor arguments that are the channel count of the layer's input / output:
#: written from ``in_channels`` / the output's channel expression even when every instance
#: has the same value (any other constant argument is written as the literal)
IN_LIKE = frozenset(
    {"in_channels", "in_features", "num_features", "num_channels", "normalized_shape", "input_size"}
)
OUT_LIKE = frozenset({"out_channels", "out_features", "hidden_size", "embed_dim"})


class Unsupported(Exception):
    """What the class form cannot say exactly; the flat module is written instead."""


# --------------------------------------------------------------------------- values


def _eq(a, b) -> bool:
    """Equal values with their types (True is not 1; tuples and lists compare alike)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
            return False
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, lw.Expr) or isinstance(b, lw.Expr):
        return a == b
    return type(a) is type(b) and a == b


def _py(text: str, names: dict[str, str], used: set[str] | None = None) -> str:
    """Python source of an expression of the spec language, parameter names mapped."""
    out: list[str] = []
    previous = None
    for kind, tok, _ in _tokens(text):
        if kind == "end":
            break
        if kind == "op" and tok in ("+", "-", "*", "/", "//"):
            op = "//" if tok == "/" else tok
            unary = tok == "-" and (previous is None or previous[0] == "op" and previous[1] != ")")
            out.append("-" if unary else f" {op} ")
        elif kind == "op":
            out.append(str(tok))
        elif kind == "name":
            if tok not in names:
                raise Unsupported(f"unknown name '{tok}'")
            out.append(names[tok])
            if used is not None:
                used.add(tok)
        else:
            out.append(str(tok))
        previous = (kind, tok)
    return "".join(out)


def _inner(raw) -> str | None:
    """The expression text of a value that is one expression (``$x``, ``$(4 * x)``)."""
    if isinstance(raw, str) and has_expression(raw):
        parts = _template_parts(raw)
        if len(parts) == 1 and parts[0][0] == "expr":
            return parts[0][1]
    return None


def _py_value(raw, names: dict[str, str], used: set[str]) -> str:
    """Python source for a spec value that may hold expressions."""
    if isinstance(raw, str) and has_expression(raw):
        inner = _inner(raw)
        if inner is not None:
            return _py(inner, names, used)
        pieces = []
        for kind, piece, _ in _template_parts(raw):
            if kind == "text":
                text = py_str(piece)[1:-1]
                if '"' in text or "{" in piece or "}" in piece:
                    raise Unsupported("a name template with quotes or braces")
                pieces.append(text)
            else:
                pieces.append("{" + _py(piece, names, used) + "}")
        return 'f"' + "".join(pieces) + '"'
    if isinstance(raw, (list, tuple, dict)) and has_expression(str(raw)):
        raise Unsupported("an expression inside a list")
    return py_literal(tuple(raw) if isinstance(raw, list) else raw)


def _spec_value(raw, scope: dict):
    return substitute(raw, scope) if isinstance(raw, str) and has_expression(raw) else raw


def _compose(text: str, replace: dict[str, str]) -> str:
    """``text`` with names replaced by (parenthesized) expressions."""
    out = []
    for kind, tok, _ in _tokens(text):
        if kind == "end":
            break
        if kind == "name":
            if tok not in replace:
                raise Unsupported(f"'{tok}' cannot be written in the caller")
            sub = replace[tok]
            simple = all(k in ("name", "int") for k, _, _ in _tokens(sub)[:-1])
            out.append(sub if simple and len(_tokens(sub)) == 2 else f"({sub})")
        else:
            out.append(str(tok))
        out.append(" ")
    text = "".join(out).strip()
    if not any(kind == "name" for kind, _, _ in _tokens(text)):
        return str(evaluate(text, {}))  # a constant: its value
    return text


_FORMS = (
    (lambda e: e, "{}"),
    (lambda e: (e, e), "({0}, {0})"),
    (lambda e: (e,), "({},)"),
    (lambda e: (e, e, e), "({0}, {0}, {0})"),
    (lambda e: float(e) if isinstance(e, int) and not isinstance(e, bool) else None, "float({})"),
)


def _match(values: list, scopes: list[dict], texts: list[str]):
    """The first candidate expression (in some form) equal to every instance's value:
    (template, text) or None."""
    for text in texts:
        try:
            evaluated = [evaluate(text, s) for s in scopes]
        except (ExprError, TypeError, ZeroDivisionError):
            continue
        for form, template in _FORMS:
            try:
                if all(_eq(v, form(e)) for v, e in zip(values, evaluated)):
                    return template, text
            except TypeError:
                continue
    return None


# --------------------------------------------------------------------------- data


@dataclass
class _Entry:
    """One block entry as one instance has it."""

    present: bool
    lines: list[str] = field(default_factory=list)
    taps: list[tuple] = field(default_factory=list)  # (end, indent, key, variable, layout)
    layer: object = None
    plan: object = None
    kids: list = field(default_factory=list)  # child CallSites (repeat: several)
    refs: tuple = ()
    out: str = ""  # the local variable holding the result ('' : none)


@dataclass
class _Instance:
    call: object
    scope: dict
    entries: list[_Entry]
    chans: dict[str, int]
    states: list
    in_layouts: tuple
    out_layout: str
    out_var: str


@dataclass
class _Class:
    block: object
    name: str
    inputs: list[str]  # forward's parameter names
    chan_keys: list[str]  # scope keys of the inputs' channel counts
    vars: list[str]
    attrs: list[str]
    taken: set[str]
    suffix_attrs: dict = field(default_factory=dict)
    instances: list[_Instance] = field(default_factory=list)
    # after merging
    params: list[tuple[str, str, str]] = field(default_factory=list)  # (key, python, type)
    names: dict[str, str] = field(default_factory=dict)  # spec name -> python (in __init__)
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    forward_taps: list[tuple] = field(default_factory=list)
    out_chan: str | None = None  # channel expression of the output (spec language, keys)
    merged: bool = False

    def attr(self, m: int, suffix: str) -> str:
        if not suffix:
            return self.attrs[m]
        key = (m, suffix)
        if key not in self.suffix_attrs:
            self.suffix_attrs[key] = identifier(
                self.attrs[m], self.taken, ATTRIBUTE_RESERVED, suffix
            )
        return self.suffix_attrs[key]


@dataclass
class Hierarchy:
    """The class form of a model: per layer the module path of each of its modules, the
    classes, and the model's own __init__/reset/forward."""

    attributes: dict[str, dict[str, str]]
    python: dict[str, dict[str, str]]  # the same as Python expressions (self.a.b[0].c)
    classes: list[_Class]
    init: list[str]
    reset: list[str]
    params: list[str]
    body: list[str]
    results: list[str]
    root_taps: list[tuple]  # (layer, variable, layout, end)
    #: (module path, key) -> layer name, for the taps recorded inside block classes
    tap_names: dict[tuple[str, str], str]
    #: every layer's tap (layer, module path, key, layout), model order
    taps: list[tuple[str, str, str, str]]


def _local_var(raw_name: str, taken: set[str]) -> str:
    from ..keras.blocks import _var

    return _var(raw_name, taken)


# --------------------------------------------------------------------------- builder


class _Builder:
    def __init__(self, tp, helpers: set[str]):
        self.tp = tp
        self.model = tp.model
        self.ex = self.model.expansion
        self.plans = {lp.layer.name: lp for lp in tp.layers}
        self.classes: dict[str, _Class] = {}
        self.module_names = {tp.class_name, *helpers, "Tensor", "Module"}
        self.attributes: dict[str, dict[str, str]] = {}
        self.python: dict[str, dict[str, str]] = {}
        self.tap_names: dict[tuple[str, str], str] = {}
        self.layer_taps: dict[str, tuple] = {}
        layers = self.model.layers
        if [layer.index for layer in layers] != sorted(layer.index for layer in layers):
            raise Unsupported("layers out of order")
        self.calls = {c.path: c for c in self.ex.calls}
        self.layers_at: dict[tuple, dict[int, object]] = {}
        self.calls_at: dict[tuple, dict[int, list]] = {}
        self.root_items: list[tuple] = []
        opened: set[tuple] = set()
        for layer in layers:
            scope = self.ex.scope_of(layer.index)
            for n in range(1, len(scope) + 1):
                path = scope[:n]
                if path in opened:
                    continue
                opened.add(path)
                call = self.calls.get(path)
                if call is None:
                    raise Unsupported("an instance without its call site")
                if n == 1:
                    self.root_items.append(("call", call))
                else:
                    m = self._entry_index(call.site, self.calls[path[:-1]].block)
                    self.calls_at.setdefault(path[:-1], {}).setdefault(m, []).append(call)
            if not scope:
                self.root_items.append(("layer", layer))
                continue
            owner = self.calls[scope]
            m = self._entry_index(self.ex.paths[layer.index], owner.block)
            at = self.layers_at.setdefault(scope, {})
            if m in at:
                raise Unsupported("a repeated layer inside a block")
            at[m] = layer
        if opened != set(self.calls):
            raise Unsupported("an instance whose layers are all skipped")

    @staticmethod
    def _entry_index(site: tuple, block: str) -> int:
        if len(site) != 4 or site[:3] != ("blocks", block, "layers"):
            raise Unsupported("an entry outside its block")
        return site[3]

    # ------------------------------------------------------------------ classes
    def _class(self, bname: str) -> _Class:
        if bname in self.classes:
            return self.classes[bname]
        block = self.ex.blocks[bname]
        cname = class_name(bname)
        while cname in self.module_names or cname in RESERVED:
            cname += "Block" if not cname.endswith("Block") else "_"
        self.module_names.add(cname)
        taken_locals = set(RESERVED) - {"x"}
        inputs = []
        for name in block.inputs:
            if name in taken_locals or keyword.iskeyword(name) or name in inputs:
                raise Unsupported(f"input name '{name}'")
            inputs.append(name)
        taken_locals |= set(inputs)
        vars_ = []
        for entry in block.layers:
            raw = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(raw, str):
                raise Unsupported("an unnamed layer in a block")
            if "repeat" in entry and entry.get("type") not in self.ex.blocks:
                raise Unsupported("a repeated layer inside a block")
            vars_.append(_local_var(raw, taken_locals))
        taken: set[str] = set()
        attrs = [identifier(v, taken, ATTRIBUTE_RESERVED) for v in vars_]
        chan_keys = [f"_ch{k}" for k in range(len(inputs))]
        cls = _Class(block, cname, inputs, chan_keys, vars_, attrs, taken)
        self.classes[bname] = cls
        return cls

    def _render(self, call, in_layouts, mpath: str, pypath: str) -> str:
        """Render one instance (recursively); returns the layout of its output."""
        cls = self._class(call.block)
        block = cls.block
        model = self.model
        scope = dict(call.args)
        scope["name"] = call.path[-1]
        chans: dict[str, int] = {}
        for key, var, tensor in zip(cls.chan_keys, cls.inputs, call.inputs):
            chans[var] = scope[key] = model.shape_of(tensor)[-1]
        layout = dict(zip(cls.inputs, in_layouts))
        rank = {v: len(model.shape_of(t)) for v, t in zip(cls.inputs, call.inputs)}
        flat_of = dict(zip(cls.inputs, call.inputs))
        local = {name: name for name in cls.inputs}
        previous = cls.inputs[0] if len(cls.inputs) == 1 else None
        layers_at = self.layers_at.get(call.path, {})
        calls_at = self.calls_at.get(call.path, {})
        entries: list[_Entry] = []
        states = []
        for m, entry in enumerate(block.layers):
            raw_refs = entry.get("inputs")
            if raw_refs is None:
                if previous is None:
                    raise Unsupported("no previous layer")
                refs = [previous]
            else:
                try:
                    refs = [local[r] for r in raw_refs]
                except (KeyError, TypeError):
                    raise Unsupported("a reference written differently from the name") from None
            var = cls.vars[m]
            conditional = "if" in entry
            ind = _I3 if conditional else _I2
            is_block = entry.get("type") in self.ex.blocks
            kids = calls_at.get(m, [])
            layer = layers_at.get(m)
            if (is_block and not kids) or (not is_block and layer is None):
                if not conditional:
                    raise Unsupported("an entry missing from an instance")
                e = _Entry(False, refs=tuple(refs), out=var)
                layout[var] = layout[refs[0]]
                rank[var] = rank[refs[0]]
                flat_of[var] = flat_of[refs[0]]
                chans[var] = chans[refs[0]]
            elif is_block:
                pre: list[str] = []
                for r, want in zip(refs, self._wants(kids[0])):
                    if want is not None:
                        _convert(r, want, layout, rank, pre, ind)
                e = self._render_kids(cls, m, kids, refs, var, ind, layout, rank, flat_of, chans)
                e.lines = pre + e.lines
                out_l = ""
                for k, kid in enumerate(kids):
                    attr = cls.attrs[m]
                    sub = f".{k}" if "repeat" in entry else ""
                    sub_py = f"[{k}]" if "repeat" in entry else ""
                    in_l = tuple(layout[r] for r in refs) if k == 0 else (out_l,)
                    out_l = self._render(
                        kid, in_l, f"{mpath}.{attr}{sub}", f"{pypath}.{attr}{sub_py}"
                    )
                layout[var] = out_l
                rank[var] = len(model.shape_of(kids[-1].output))
                flat_of[var] = kids[-1].output
                chans[var] = model.shape_of(kids[-1].output)[-1]
            else:
                e = self._render_layer(
                    cls, m, layer, refs, var, ind, conditional, layout, rank, flat_of, mpath
                )
                chans[e.out] = model.shape_of(layer.name)[-1]
                chans[var] = chans[e.out]
                attrs = {}
                python = {}
                for module in e.plan.lowering.modules:
                    attr = cls.attr(m, module.suffix)
                    attrs[module.suffix] = f"{mpath}.{attr}"
                    python[module.suffix] = f"{pypath}.{attr}"
                self.attributes[layer.name] = attrs
                self.python[layer.name] = python
            entries.append(e)
            local[entry["name"]] = e.out or var
            previous = e.out or var
            states.append(tuple(sorted(layout.items())))
        if block.outputs:
            try:
                out = local[block.outputs[0]]
            except (KeyError, TypeError):
                raise Unsupported("the output is written differently from the name") from None
        else:
            out = previous
        if flat_of[out] != call.output:
            raise Unsupported("the class's output is not the instance's")
        inst = _Instance(call, scope, entries, chans, states, tuple(in_layouts), layout[out], out)
        cls.instances.append(inst)
        return layout[out]

    def _wants(self, call) -> list[str | None]:
        """Per input of an instance, the layout its first reader inside wants (None: no
        layer of the instance reads it first), so that every instance of a class starts
        from the same layouts: the caller converts."""
        block = self.ex.blocks[call.block]
        layers_at = self.layers_at.get(call.path, {})
        wants: list[str | None] = []
        for inp in block.inputs:
            want = None
            previous = block.inputs[0] if len(block.inputs) == 1 else None
            for m, entry in enumerate(block.layers):
                refs = entry.get("inputs")
                refs = refs if isinstance(refs, list) else [previous]
                if inp in refs:
                    layer = layers_at.get(m)
                    if layer is not None:
                        want = self.plans[layer.name].layout
                        break
                    if entry.get("type") in self.ex.blocks:
                        break
                previous = entry.get("name")
            wants.append(want)
        return wants

    def _render_kids(self, cls, m, kids, refs, var, ind, layout, rank, flat_of, chans):
        if [flat_of[r] for r in refs] != list(kids[0].inputs):
            raise Unsupported("an instance reading other tensors")
        for k in range(1, len(kids)):
            if tuple(kids[k].inputs) != (kids[k - 1].output,):
                raise Unsupported("a repetition not in sequence")
        lines = _call(f"self.{cls.attrs[m]}", list(refs), ind, f"{var} = ")
        return _Entry(True, lines, [], kids=list(kids), refs=tuple(refs), out=var)

    def _render_layer(self, cls, m, layer, refs, var, ind, conditional, layout, rank, flat_of, mp):
        lp = self.plans[layer.name]
        if [flat_of[r] for r in refs] != list(layer.inputs):
            raise Unsupported("a layer reading other tensors")
        lines: list[str] = []
        for r in refs:
            _convert(r, lp.layout, layout, rank, lines, ind)
        if lp.folded or not lp.lowering.steps:
            variable = refs[0]
            if lp.folded:
                (top, bottom), (left, right) = layer.spec.padding
                variable = f"torch.nn.functional.pad({refs[0]}, ({left}, {right}, {top}, {bottom}))"
            if conditional:
                lines.append(f"{ind}{var} = {refs[0]}")
                out = var
            else:
                out = refs[0]
            layout[var] = layout[refs[0]]
            rank[var] = rank[refs[0]]
            flat_of[var] = layer.name
            if out != var:
                flat_of[out] = flat_of[refs[0]]
            taps = [(len(lines), ind, var, variable, layout[refs[0]])]
            self._tap(layer.name, mp, var, layout[refs[0]])
            return _Entry(True, lines, taps, layer, lp, refs=tuple(refs), out=out)
        modules = {
            module.suffix: f"self.{cls.attr(m, module.suffix)}" for module in lp.lowering.modules
        }
        for index, step in enumerate(lp.lowering.steps):
            renderer = Renderer(list(refs) if index == 0 else [var], modules)
            lines.extend(renderer.lines(step, ind, f"{var} = "))
        layout[var] = lp.lowering.out_layout or lp.layout
        rank[var] = len(layer.output_shape)
        flat_of[var] = layer.name
        taps = [(len(lines), ind, var, var, layout[var])]
        self._tap(layer.name, mp, var, layout[var])
        return _Entry(True, lines, taps, layer, lp, refs=tuple(refs), out=var)

    def _tap(self, layer: str, mpath: str, key: str, layout: str) -> None:
        path = mpath.lstrip(".")
        self.tap_names[(path, key)] = layer
        self.layer_taps[layer] = (layer, path, key, layout)

    # ------------------------------------------------------------------ merging
    def _merge(self, cls: _Class) -> None:
        if cls.merged:
            return
        block = cls.block
        for entry in block.layers:
            if entry.get("type") in self.ex.blocks:
                self._merge(self.classes[entry["type"]])
        insts = cls.instances
        if len({(i.in_layouts, i.out_layout) for i in insts}) != 1:
            raise Unsupported("instances with different layouts")
        for m in range(len(block.layers)):
            if len({i.states[m] for i in insts}) != 1:
                raise Unsupported("instances with different layouts")
        scopes = [i.scope for i in insts]
        # the names expressions may use: block parameters, then the inputs' channel counts
        reserved_py = set(RESERVED) | self.module_names | {"i", "layers"}
        taken_py: set[str] = set()
        names: dict[str, str] = {}
        for pname in block.params:
            names[pname] = identifier(pname, taken_py, frozenset(reserved_py))
        chan_py = "in_channels" if len(cls.inputs) == 1 else None
        for key, inp in zip(cls.chan_keys, cls.inputs):
            names[key] = identifier(chan_py or f"{inp}_channels", taken_py, frozenset(reserved_py))
        cls.names = names
        used: set[str] = set()
        params_all = list(block.params)
        # channel expressions of every local variable, in the spec language
        chan: dict[str, str | None] = dict(zip(cls.inputs, cls.chan_keys))
        records: list[dict] = []
        cond_attrs: dict[str, str] = {}
        for m, entry in enumerate(block.layers):
            ents = [i.entries[m] for i in insts]
            present = [e for e in ents if e.present]
            if not present:
                raise Unsupported("a block layer that no instance keeps")
            first = present[0]
            if len({tuple(e.refs) for e in ents}) != 1:
                raise Unsupported("instances reading different variables")
            refs = list(first.refs)
            var = cls.vars[m]
            conditional = "if" in entry
            ind = _I3 if conditional else _I2
            if conditional:
                cond = entry["if"]
                for inst, e in zip(insts, ents):
                    if bool(_spec_value(cond, inst.scope)) != e.present:
                        raise Unsupported("a condition that is not the instances'")
                cond_init = "True" if cond is True else _py_value(cond, names, used)
                if isinstance(cond, bool):
                    cond_fwd = repr(cond)
                else:
                    cond_names = {}
                    for name in _condition_names(cond):
                        if name not in cond_attrs:
                            cond_attrs[name] = identifier(name, cls.taken, ATTRIBUTE_RESERVED)
                        cond_names[name] = f"self.{cond_attrs[name]}"
                    cond_fwd = _py_value(cond, cond_names, set())
            else:
                cond = cond_init = cond_fwd = None
            # forward: every present instance says the same
            if any(e.lines != first.lines or e.taps != first.taps for e in present):
                raise Unsupported("instances whose forward differs")
            record = {
                "cond": cond,
                "init": f"{_I2}if {cond_init}:",
                "fwd": f"{_I2}if {cond_fwd}:",
                "lines": list(first.lines),
                "taps": list(first.taps),
                "else": [f"{_I3}{var} = {refs[0]}"] if conditional else [],
            }
            records.append(record)
            # channel expression of the result (checked on every instance)
            values = [i.chans[var] for i in insts]
            ref_chans = [chan.get(r) for r in refs]
            if first.kids:
                record["init_lines"] = self._kids_init(
                    cls, m, entry, ents, insts, chan, refs, names, used, ind
                )
                kid_cls = self.classes[entry["type"]]
                candidates = []
                if kid_cls.out_chan is not None:
                    try:
                        candidates.append(self._compose_out(kid_cls, entry, chan, refs))
                    except Unsupported:
                        pass
            else:
                record["init_lines"] = self._modules_init(
                    cls, m, entry, ents, insts, chan, refs, names, used, ind
                )
                candidates = _field_texts(entry)
            candidates += [c for c in ref_chans if c is not None] + params_all
            found = _match(values, scopes, candidates)
            if found is not None:
                chan[var] = found[1] if found[0] == "{}" else None
            elif len(set(values)) == 1:
                chan[var] = str(values[0])
            else:
                chan[var] = None
        init, forward, ftaps = _assemble(records)
        out = insts[0].out_var
        cls.out_chan = chan.get(out)
        # the signature: the inputs' channel counts, then the parameters used, in order
        params = []
        for key in cls.chan_keys:
            if key in used:
                params.append((key, names[key], "int"))
        for pname, param in block.params.items():
            if pname in used or pname in cond_attrs:
                params.append((pname, names[pname], param.type))
        cls.params = params
        head = [f"{_I2}super().__init__()"]
        for pname, attr in cond_attrs.items():
            head.append(f"{_I2}self.{attr} = {names[pname]}")
        cls.init = head + init
        cls.forward = forward + [f"{_I2}return {out}"]
        cls.forward_taps = ftaps
        cls.merged = True

    def _modules_init(self, cls, m, entry, ents, insts, chan, refs, names, used, ind):
        present = [(i, e) for i, e in zip(insts, ents) if e.present]
        mods = [e.plan.lowering.modules for _, e in present]
        shape = [(mod.cls, mod.suffix, tuple(k for k, _ in mod.args)) for mod in mods[0]]
        for other in mods[1:]:
            if [(mod.cls, mod.suffix, tuple(k for k, _ in mod.args)) for mod in other] != shape:
                raise Unsupported("instances with different modules")
        scopes = [i.scope for i, _ in present]
        fields = _field_texts(entry)
        ins = [chan.get(r) for r in refs]
        ins = [c for c in ins if c is not None]
        out = []
        outs = []
        for _, e in present:
            outs.append(self.model.shape_of(e.layer.name)[-1])
        out_text = _match(outs, scopes, fields + ins + list(cls.block.params))
        out_texts = [out_text[1]] if out_text and out_text[0] == "{}" else []
        lines = []
        for k, (mcls, suffix, keys) in enumerate(shape):
            args = []
            for n, key in enumerate(keys):
                values = [mod[k].args[n][1] for mod in mods]
                constant = all(_eq(v, values[0]) for v in values)
                if key in IN_LIKE:
                    order = ins + out_texts + fields
                elif key in OUT_LIKE:
                    order = out_texts + fields + ins
                else:
                    order = [] if constant else fields + ins + out_texts
                if not constant:
                    order = order + list(cls.block.params)
                found = _match(values, scopes, order) if order else None
                if found is not None:
                    args.append((key, lw.Ref(found[0].format(_py(found[1], names, used)))))
                elif constant:
                    args.append((key, values[0]))
                else:
                    text = _lookup(values, scopes, _param_order(entry, cls.block), names, used)
                    if text is None:
                        text = _lookup_parts(
                            values, scopes, order, _param_order(entry, cls.block), names, used
                        )
                    if text is None:
                        raise Unsupported(f"argument '{key}' differs between instances")
                    args.append((key, lw.Ref(text)))
            helper = self.tp_helpers.get(mcls, mcls)
            attr = cls.attr(m, suffix)
            lines += call_block(helper, args, ind, f"self.{attr} = ")
        del out
        return lines

    def _kids_init(self, cls, m, entry, ents, insts, chan, refs, names, used, ind):
        kid = self.classes[entry["type"]]
        kblock = kid.block
        repeat = "repeat" in entry
        first = entry.get("first") or {}
        at = {int(k): v for k, v in (entry.get("at") or {}).items()}
        if not repeat and (first or at):
            raise Unsupported("first/at without repeat")
        if 0 in at:
            at[0] = {**first, **at[0]}
        elif first:
            at[0] = first
        loop_names = dict(names)
        local_i = "i"
        loop_names["i"] = local_i
        args = []
        # the inputs' channel counts
        for key, py in ((k, p) for k, p, _ in kid.params if k in kid.chan_keys):
            index = kid.chan_keys.index(key)
            firsts, laters, fscopes, lscopes = [], [], [], []
            for inst, e in zip(insts, ents):
                for k, call in enumerate(e.kids):
                    value = self.model.shape_of(call.inputs[index])[-1]
                    if k == 0:
                        firsts.append(value)
                        fscopes.append(inst.scope)
                    else:
                        laters.append(value)
                        lscopes.append(inst.scope)
            ref_chan = chan.get(refs[index])
            cands = ([ref_chan] if ref_chan else []) + _field_texts(entry) + list(cls.block.params)
            found = _match(firsts, fscopes, cands)
            if found is None:
                if len(set(firsts)) != 1:
                    raise Unsupported("input channels")
                text = str(firsts[0])
            else:
                text = found[0].format(_py(found[1], names, used))
            step = _step(insts, ents, index, self.model)
            if laters and step is not None:
                found = _match(
                    [step] * len(fscopes), fscopes, _field_texts(entry) + list(cls.block.params)
                )
                c = found[0].format(_py(found[1], names, used)) if found else str(step)
                text = (
                    f"{text} + {local_i} * {c}"
                    if " " not in text
                    else f"({text}) + {local_i} * {c}"
                )
            elif laters:
                later_cands = []
                try:
                    later_cands.append(self._compose_out(kid, entry, chan, refs, later=True))
                except Unsupported:
                    pass
                later_cands += _field_texts(entry) + list(cls.block.params)
                found = _match(laters, lscopes, later_cands)
                if found is not None:
                    later = found[0].format(_py(found[1], names, used))
                elif len(set(laters)) == 1:
                    later = str(laters[0])
                else:
                    raise Unsupported("input channels of repetitions")
                if later != text:
                    text = f"{text} if {local_i} == 0 else {later}"
            args.append(f"{py}={text}")
        # the block parameters the class takes
        for key, py, _ in kid.params:
            if key in kid.chan_keys:
                continue
            param = kblock.params[key]
            if key in entry:
                regular_raw = entry[key]
            elif param.has_default:
                regular_raw = param.default
            else:
                raise Unsupported("a parameter without value")
            text = _py_value(regular_raw, loop_names, used)
            for index in sorted(at, reverse=True):
                if key in at[index]:
                    text = f"{_py_value(at[index][key], loop_names, used)} if {local_i} == {index} else {text}"
            # checked against every instance's own argument
            for inst, e in zip(insts, ents):
                for k, call in enumerate(e.kids):
                    raw = at.get(k, {}).get(key, regular_raw) if repeat else regular_raw
                    s = {**inst.scope, "i": k} if repeat else inst.scope
                    value = _spec_value(raw, s)
                    if param.type == "float" and isinstance(value, int):
                        value = float(value)
                    if not _eq(value, dict(call.args)[key]):
                        raise Unsupported(f"argument '{key}' is not the instances'")
            args.append(f"{py}={text}")
        used.discard("i")
        attr = cls.attrs[m]
        if not repeat:
            return _call(kid.name, args, ind, f"self.{attr} = ")
        count = _py_value(entry["repeat"], names, used)
        for inst, e in zip(insts, ents):
            if e.present and _spec_value(entry["repeat"], inst.scope) != len(e.kids):
                raise Unsupported("a repeat count that is not the instances'")
        lines = [f"{ind}layers = []", f"{ind}for {local_i} in range({count}):"]
        one = _call(kid.name, args, ind + INDENT, "layers.append(", ")")
        if len(one) == 1:
            lines += one
        else:
            lines.append(f"{ind}{INDENT}layers.append(")
            lines += _call(kid.name, args, ind + _I2, "", "")
            lines.append(f"{ind}{INDENT})")
        lines.append(f"{ind}self.{attr} = nn.Sequential(*layers)")
        return lines

    def _compose_out(self, kid: _Class, entry, chan, refs, later: bool = False) -> str:
        """The output channels of a child instance as an expression of the caller's names."""
        if kid.out_chan is None:
            raise Unsupported("the output channels of a block")
        replace = {}
        for key in kid.chan_keys:
            if later:
                continue
            index = kid.chan_keys.index(key)
            c = chan.get(refs[index])
            if c is not None:
                replace[key] = c
        for pname, param in kid.block.params.items():
            raw = entry.get(pname, param.default if param.has_default else None)
            inner = _inner(raw)
            if inner is not None:
                replace[pname] = inner
            elif isinstance(raw, int) and not isinstance(raw, bool):
                replace[pname] = str(raw)
        return _compose(kid.out_chan, replace)

    # ------------------------------------------------------------------ the model
    def build(self) -> Hierarchy:
        model = self.model
        tp = self.tp
        self.tp_helpers = self.helpers
        taken: set[str] = set()
        init = [f"{_I2}super().__init__()"]
        # attributes and classes, model order
        root_attr: dict[tuple, str] = {}
        for kind, item in self.root_items:
            if kind == "layer":
                lp = self.plans[item.name]
                attrs = {}
                for module in lp.lowering.modules:
                    attrs[module.suffix] = identifier(
                        item.name, taken, ATTRIBUTE_RESERVED, module.suffix
                    )
                self.attributes[item.name] = dict(attrs)
                self.python[item.name] = dict(attrs)
            else:
                root_attr[item.path] = identifier(item.path[0], taken, ATTRIBUTE_RESERVED)
        body, params, results, root_taps = self._root_forward(root_attr)
        order = []

        def visit(bname):
            cls = self.classes[bname]
            for entry in cls.block.layers:
                if entry.get("type") in self.ex.blocks:
                    visit(entry["type"])
            if cls not in order:
                order.append(cls)

        for kind, item in self.root_items:
            if kind == "call":
                visit(item.block)
        for cls in order:
            self._merge(cls)
        for kind, item in self.root_items:
            if kind == "layer":
                lp = self.plans[item.name]
                for module in lp.lowering.modules:
                    cls_name = self.helpers.get(module.cls, module.cls)
                    attr = self.attributes[item.name][module.suffix]
                    init += call_block(cls_name, list(module.args), _I2, f"self.{attr} = ")
            else:
                cls = self.classes[item.block]
                scope = dict(item.args)
                for key, tensor in zip(cls.chan_keys, item.inputs):
                    scope[key] = model.shape_of(tensor)[-1]
                args = [f"{py}={py_literal(scope[key])}" for key, py, _ in cls.params]
                init += _call(cls.name, args, _I2, f"self.{root_attr[item.path]} = ")
        reset = self._reset()
        if reset:
            init.append(f"{_I2}self.reset_parameters()")
        taps = [self.layer_taps[layer.name] for layer in model.layers]
        for lp in tp.layers:
            lp.attributes = {s: a.lstrip(".") for s, a in self.attributes[lp.layer.name].items()}
        return Hierarchy(
            {k: {s: a.lstrip(".") for s, a in v.items()} for k, v in self.attributes.items()},
            self.python,
            order,
            init,
            reset,
            params,
            body,
            results,
            root_taps,
            self.tap_names,
            taps,
        )

    def _root_forward(self, root_attr):
        model = self.model
        local_taken: set[str] = set()
        var: dict[str, str] = {}
        for tensor in model.inputs:
            var[tensor.name] = identifier(tensor.name, local_taken)
        params = [var[t.name] for t in model.inputs]
        layout = {var[t.name]: lw.CL for t in model.inputs}
        rank = {var[t.name]: len(t.shape) for t in model.inputs}
        body: list[str] = []
        taps: list[tuple] = []
        for kind, item in self.root_items:
            if kind == "call":
                try:
                    in_vars = [var[n] for n in item.inputs]
                except KeyError:
                    raise Unsupported("an instance reading a layer inside another") from None
                for v, want in zip(in_vars, self._wants(item)):
                    if want is not None:
                        _convert(v, want, layout, rank, body, _I2)
                attr = root_attr[item.path]
                out_layout = self._render(
                    item, tuple(layout[v] for v in in_vars), f".{attr}", f"self.{attr}"
                )
                out = identifier(item.path[0], local_taken)
                body += _call(f"self.{attr}", in_vars, _I2, f"{out} = ")
                var[item.output] = out
                layout[out] = out_layout
                rank[out] = len(model.shape_of(item.output))
                continue
            layer = item
            lp = self.plans[layer.name]
            try:
                in_vars = [var[n] for n in layer.inputs]
            except KeyError:
                raise Unsupported("a layer reading a layer inside an instance") from None
            for v in in_vars:
                _convert(v, lp.layout, layout, rank, body, _I2)
            if lp.folded or not lp.lowering.steps:
                var[layer.name] = in_vars[0]
                variable = in_vars[0]
                if lp.folded:
                    (top, bottom), (left, right) = layer.spec.padding
                    variable = (
                        f"torch.nn.functional.pad({in_vars[0]}, ({left}, {right}, {top}, {bottom}))"
                    )
                taps.append((layer.name, variable, layout[in_vars[0]], len(body)))
                self._tap(layer.name, "", layer.name, layout[in_vars[0]])
                continue
            out = identifier(layer.name, local_taken)
            var[layer.name] = out
            attrs = self.attributes[layer.name]
            modules = {suffix: f"self.{attr}" for suffix, attr in attrs.items()}
            for index, step in enumerate(lp.lowering.steps):
                renderer = Renderer(in_vars if index == 0 else [out], modules)
                body.extend(renderer.lines(step, _I2, f"{out} = "))
            layout[out] = lp.lowering.out_layout or lp.layout
            rank[out] = len(layer.output_shape)
            taps.append((layer.name, out, layout[out], len(body)))
            self._tap(layer.name, "", layer.name, layout[out])
        try:
            for name in model.outputs:
                _convert(var[name], lw.CL, layout, rank, body, _I2)
            results = [var[name] for name in model.outputs]
        except KeyError:
            raise Unsupported("a model output inside an instance") from None
        return body, params, results, taps

    def _reset(self) -> list[str]:
        reset: list[str] = []
        for layer in self.model.layers:
            python = self.python.get(layer.name, {})
            for weight in layer.weights:
                if not weight.trainable:
                    continue
                how = lw.torch_init(weight.initializer, weight.shape)
                path = python[weight.torch_module]
                if not path.startswith("self."):
                    path = f"self.{path}"
                target = lw.Ref(f"{path}.{weight.torch_attr}")
                if how.comment:
                    reset.append(f"{_I2}# {layer.name}/{weight.name}: {comment_text(how.comment)}")
                expr = lw.call(how.func, target, **dict(how.kwargs))
                reset += Renderer([]).lines(expr, _I2)
        return reset


def _assemble(records: list[dict]):
    """__init__ and forward lines from the entries; consecutive entries under the same
    ``if:`` share one ``if`` (an ``if`` with nothing to build is left out of __init__)."""
    init: list[str] = []
    forward: list[str] = []
    taps: list[tuple] = []
    k = 0
    while k < len(records):
        record = records[k]
        if record["cond"] is None:
            init += record["init_lines"]
            start = len(forward)
            forward += record["lines"]
            taps += [(start + end, *rest) for end, *rest in record["taps"]]
            k += 1
            continue
        group = [record]
        while k + len(group) < len(records) and records[k + len(group)]["cond"] == record["cond"]:
            group.append(records[k + len(group)])
        built = [line for r in group for line in r["init_lines"]]
        if built:
            init += [record["init"], *built]
        forward.append(record["fwd"])
        for r in group:
            start = len(forward)
            forward += r["lines"]
            taps += [(start + end, *rest) for end, *rest in r["taps"]]
        if len(forward) and forward[-1] == record["fwd"]:
            forward.append(f"{_I3}pass")
        forward.append(f"{_I2}else:")
        forward += [line for r in group for line in r["else"]]
        k += len(group)
    return init, forward, taps


def _step(insts, ents, index, model) -> int | None:
    """c when the k-th repetition's input has (the first's + k * c) channels everywhere
    (a DenseNet dense block, each repetition concatenating c channels)."""
    steps = set()
    for _, e in zip(insts, ents):
        values = [model.shape_of(call.inputs[index])[-1] for call in e.kids]
        for k, v in enumerate(values[1:], 1):
            if (v - values[0]) % k:
                return None
            steps.add((v - values[0]) // k)
    if len(steps) != 1:
        return None
    step = steps.pop()
    return step if step > 0 else None


def _param_order(entry, block) -> list[str]:
    """The block's parameters, those the entry's fields use first."""
    first = []
    for key, raw in entry.items():
        if key in ("name", "if", "inputs", "type"):
            continue
        for name in _condition_names(raw):
            if name in block.params and name not in first:
                first.append(name)
    return first + [p for p in block.params if p not in first]


def _lookup(values, scopes, params, names, used) -> str | None:
    """``a if p == 'same' else b``: a value that one parameter determines (a string or bool
    choice, say padding 'same' or 'valid'), for at most three distinct values."""
    for pname in params:
        table: list[tuple[object, object]] = []
        ok = True
        for value, scope in zip(values, scopes):
            key = scope.get(pname)
            known = [v for k, v in table if _eq(k, key)]
            if known:
                ok = ok and _eq(known[0], value)
            else:
                table.append((key, value))
        if not ok or len(table) < 2 or len(table) > 3:
            continue
        if len({py_literal(v) for _, v in table}) != len(table):
            continue
        py = names[pname]
        used.add(pname)
        *head, (_, last) = table
        text = py_literal(last)
        for key, value in reversed(head):
            test = (
                py if key is True else f"not {py}" if key is False else f"{py} == {py_literal(key)}"
            )
            text = f"{py_literal(value)} if {test} else {text}"
        return text
    return None


def _parts(values: list, scopes: list[dict], texts: list[str]) -> list | None:
    """Tuple values of one length (a kernel size (kh, kw), its 'same' padding) written
    element by element: each element ``(constant,)`` or an expression text equal to it in
    every instance ('same' padding of an odd kernel k is (k - 1) // 2); else None."""
    if not all(isinstance(v, (tuple, list)) for v in values) or len({len(v) for v in values}) != 1:
        return None
    texts = [*texts, *(f"({t} - 1) // 2" for t in texts)]
    parts = []
    for j in range(len(values[0])):
        column = [v[j] for v in values]
        if all(_eq(c, column[0]) for c in column):
            parts.append((column[0],))
            continue
        found = _match(column, scopes, texts)
        if found is None or found[0] != "{}":
            return None
        parts.append(found[1])
    return parts


def _lookup_parts(values, scopes, texts, params, names, used) -> str | None:
    """A tuple argument written element by element from expressions, or a choice by one
    parameter between such tuples (``(0, 0) if padding == 'valid' else ((kh - 1) // 2,
    (kw - 1) // 2)``); every instance's value is checked. None when neither fits."""
    candidates = [None, *params]  # None: one form for every instance
    for pname in candidates:
        groups: dict[str, tuple[object, list, list]] = {}
        for value, scope in zip(values, scopes):
            key = None if pname is None else scope.get(pname)
            label = py_literal(key)
            groups.setdefault(label, (key, [], []))
            groups[label][1].append(value)
            groups[label][2].append(scope)
        if pname is not None and not 2 <= len(groups) <= 3:
            continue
        forms = []
        for key, group_values, group_scopes in groups.values():
            parts = _parts(group_values, group_scopes, texts)
            if parts is None:
                break
            forms.append((key, parts))
        else:
            rendered = []
            for key, parts in forms:
                items = [
                    py_literal(p[0]) if isinstance(p, tuple) else _py(p, names, used) for p in parts
                ]
                rendered.append(
                    (key, "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")")
                )
            if pname is None:
                return rendered[0][1]
            py = names[pname]
            used.add(pname)
            *head, (_, text) = rendered
            for key, form in reversed(head):
                test = (
                    py
                    if key is True
                    else f"not {py}"
                    if key is False
                    else f"{py} == {py_literal(key)}"
                )
                text = f"{form} if {test} else {text}"
            return text
    return None


def _condition_names(cond) -> list[str]:
    names = []
    if isinstance(cond, str) and has_expression(cond):
        for kind, piece, _ in _template_parts(cond):
            if kind == "expr":
                for k, tok, _ in _tokens(piece):
                    if k == "name" and tok not in names:
                        names.append(tok)
    return names


def _field_texts(entry) -> list[str]:
    texts = []
    for key, raw in entry.items():
        if key in ("name", "if", "inputs", "type", "repeat", "first", "at"):
            continue
        inner = _inner(raw)
        if inner is not None and inner not in texts:
            texts.append(inner)
    return texts


_LAYOUT_NAMES = {2: ("NLC", "NCL"), 3: ("NHWC", "NCHW"), 4: ("NDHWC", "NCDHW")}


def _convert(v: str, to: str, layout: dict, rank: dict, lines: list[str], ind: str) -> None:
    from .codegen import _permutation

    if rank[v] < 2 or layout[v] == to:
        return
    names = _LAYOUT_NAMES.get(rank[v], ("channels-last", "channels-first"))
    frm, dst = (names[0], names[1]) if to == lw.CF else (names[1], names[0])
    lines.append(f"{ind}# {frm} -> {dst}")
    permute = lw.call(lw.Attr(lw.X, "permute"), *_permutation(rank[v], to))
    lines.extend(Renderer([v]).lines(permute, ind, f"{v} = "))
    layout[v] = to


def _call(func: str, args: list[str], indent: str, prefix: str = "", suffix: str = ""):
    one = f"{indent}{prefix}{func}({', '.join(args)}){suffix}"
    if len(one) <= LINE_LENGTH:
        return [one]
    inner = indent + INDENT
    return [f"{indent}{prefix}{func}(", *(f"{inner}{a}," for a in args), f"{indent}){suffix}"]


def build(tp, helpers: dict[str, str]) -> Hierarchy | None:
    """The class form of ``tp``'s model, or None when it must stay flat."""
    ex = tp.model.expansion
    if ex is None or not ex.calls:
        return None
    try:
        builder = _Builder(tp, set(helpers.values()))
        builder.helpers = helpers
        return builder.build()
    except (Unsupported, ExprError, KeyError, IndexError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- rendering


def _signature(name: str, args: list[str], annotation: str) -> list[str]:
    line = f"{INDENT}def {name}({', '.join(args)}) -> {annotation}:"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"{INDENT}def {name}(", *(f"{_I2}{a}," for a in args), f"{INDENT}) -> {annotation}:"]


def _with_taps(lines: list[str], taps: list[tuple]) -> list[str]:
    out = list(lines)
    for end, ind, key, variable, layout in sorted(taps, key=lambda t: t[0], reverse=True):
        out.insert(end, f"{ind}self.taps[{key!r}] = ({variable}.clone(), {layout!r})")
    return out


def class_code(cls: _Class, taps: bool = False) -> str:
    """The source of one block class."""
    doc = cls.block.description or f"The block '{cls.block.name}' of the spec."
    args = ["self", *(f"{py}: {kind}" for _, py, kind in cls.params)]
    forward = _with_taps(cls.forward, cls.forward_taps) if taps else cls.forward
    fargs = ["self", *(f"{name}: torch.Tensor" for name in cls.inputs)]
    lines = [
        f"class {cls.name}(nn.Module):",
        docstring([doc], INDENT),
        "",
        *_signature("__init__", args, "None"),
        *cls.init,
        "",
        *_signature("forward", fargs, "torch.Tensor"),
        *forward,
    ]
    return "\n".join(lines)
