"""Blocks: reusable, parameterized groups of layers, expanded before graph resolution.

A spec may define ``blocks:`` (name -> {params, inputs, layers, outputs}) and use a block
name as a layer ``type`` to instantiate it, once or ``repeat: N`` times in sequence. This
stage turns such a spec into a plain one (every later stage sees ordinary layers) and keeps,
for every expanded layer, where it came from: the block definition (its positions are
copied, so diagnostics point at the line inside the block) and the chain of instantiation
sites with their arguments, which :func:`attach_context` adds to diagnostics.

See docs/spec.md, "Blocks", for the language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from . import diagcodes as codes
from .diagnostics import Diagnostic, did_you_mean, json_path
from .expr import ExprError, has_expression, substitute
from .source import Source

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
PARAM_TYPES = {"int", "float", "str", "bool"}
RESERVED = {"name", "i"}
BLOCK_KEYS = {"description", "params", "inputs", "layers", "outputs"}
INSTANCE_KEYS = {"type", "name", "inputs", "repeat", "first", "at", "if"}
MAX_REPEAT = 10_000
MAX_LAYERS = 200_000
#: blocks inside blocks, at most this deep (deeper recursed past Python's stack limit)
MAX_NESTING = 100


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: object = None
    has_default: bool = False
    description: str = ""


@dataclass
class Block:
    name: str
    params: dict[str, Param]
    inputs: list[str]
    layers: list
    outputs: list | None
    description: str = ""


@dataclass(frozen=True)
class Frame:
    """One instantiation site: block ``block`` instantiated as ``instance`` at file:line:col."""

    block: str
    instance: str
    file: str
    line: int
    column: int
    args: tuple[tuple[str, object], ...]

    def describe(self) -> str:
        text = (
            f"in block '{self.block}' instantiated as '{self.instance}' "
            f"at {self.file}:{self.line}:{self.column}"
        )
        if self.args:
            text += " with " + ", ".join(f"{k}={_show(v)}" for k, v in self.args)
        return text


@dataclass(frozen=True)
class CallSite:
    """One instance: its block, path of instance names, every argument, the tensors it read
    and its output."""

    block: str
    path: tuple[str, ...]
    args: tuple[tuple[str, object], ...]
    inputs: tuple
    output: str
    #: the path of the entry it was written as (("layers", k) or ("blocks", b, "layers", m))
    site: tuple = ()


@dataclass
class Expansion:
    """What expansion produced: per flat layer, its instantiation frames (outermost first)
    and its index in the original ``layers`` list when it was written there."""

    blocks: dict[str, Block]
    frames: list[tuple[Frame, ...]] = field(default_factory=list)
    top_index: list[int | None] = field(default_factory=list)
    #: instance path (outermost first, as instance names) -> (block name, output layer name)
    instances: dict[tuple[str, ...], tuple[str, str]] = field(default_factory=dict)
    #: per flat layer written in a block: the parameter values it was expanded with
    scopes: list[dict | None] = field(default_factory=list)
    #: every instantiation, in order
    calls: list[CallSite] = field(default_factory=list)
    #: per flat layer: the path of the entry it was written as (in `layers` or a block)
    paths: list[tuple] = field(default_factory=list)
    #: per flat layer: its name (automatic names included)
    names: list[str | None] = field(default_factory=list)

    def scope_of(self, flat_index: int) -> tuple[str, ...]:
        """The instance names enclosing a flat layer, outermost first."""
        return tuple(f.instance for f in self.frames[flat_index])


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value)


class _Ref:
    """The (not yet known) automatic name of an unnamed top-level layer."""

    def __init__(self, index: int):
        self.index = index


class _Expander:
    def __init__(self, source: Source, blocks: dict[str, Block]):
        self.source = source
        self.blocks = blocks
        self.diags: list[Diagnostic] = []
        self.flat: list[dict] = []
        self.paths: list[tuple] = []
        self.frames: list[tuple[Frame, ...]] = []
        self.top_index: list[int | None] = []
        self.instances: dict[tuple[str, ...], tuple[str, str]] = {}
        self.scopes: list[dict | None] = []
        self.calls: list[CallSite] = []
        self.failed = False

    # -------------------------------------------------------------- diagnostics
    def error(self, path: tuple, message: str, frames=(), hint=None, code=codes.BLOCK, key=False):
        line, col = self.source.locate(path, prefer_key=key)
        if frames:
            message += "".join("\n  " + f.describe() for f in reversed(frames))
        self.diags.append(
            Diagnostic.from_position(
                self.source, line, col, code, message, path=json_path(path), hint=hint
            )
        )
        self.failed = True

    def value(self, raw, scope, path, frames):
        """``raw`` with every expression in it evaluated (recursively through lists/dicts)."""
        if isinstance(raw, str):
            if not has_expression(raw):
                return raw
            try:
                return substitute(raw, scope)
            except ExprError as exc:
                self.error(
                    path, f"bad expression {raw!r}: {exc.message}", frames, code=codes.EXPRESSION
                )
                return None
        if isinstance(raw, list):
            return [self.value(v, scope, path + (k,), frames) for k, v in enumerate(raw)]
        if isinstance(raw, dict):
            return {k: self.value(v, scope, path + (k,), frames) for k, v in raw.items()}
        return raw

    def condition(self, raw, scope, path, frames) -> bool | None:
        """The value of an ``if:``: a bool or an int (non-zero keeps the layer); None after
        an error (reported here when the value has another type, YAML null included)."""
        cond = self.value(raw, scope, path, frames)
        if cond is None and raw is not None:
            return None  # the expression's error is already reported
        if not isinstance(cond, (bool, int)):
            self.error(
                path,
                f"'if' must be a bool or an integer, got {_show(cond)!r}",
                frames,
                hint="write true/false, or an expression such as $(stride - 1)",
            )
            return None
        return bool(cond)

    # -------------------------------------------------------------- the model's layers
    def top(self, data: dict) -> dict | None:
        layers = data.get("layers")
        if not isinstance(layers, list):
            return None
        inputs = data.get("inputs")
        previous: object = None
        if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict):
            previous = inputs[0].get("name")
        aliases: dict[str, object] = {}
        after_instance = False
        for k, entry in enumerate(layers):
            path = ("layers", k)
            if isinstance(entry, dict) and _is_block(entry.get("type"), self.blocks):
                refs = entry.get("inputs")
                if refs is None:
                    if previous is None:
                        self.error(
                            path,
                            f"block instance of '{entry['type']}' has no input to read",
                            hint="add 'inputs: [<name>]'",
                            code=codes.AMBIGUOUS_INPUT,
                        )
                        continue
                    ins = [previous]
                elif isinstance(refs, list) and all(isinstance(r, str) for r in refs):
                    ins = [aliases.get(r, r) for r in refs]
                else:
                    self.error(path + ("inputs",), "'inputs' must be a list of names")
                    continue
                out = self.instantiate(entry, path, {}, (), (), ins)
                if out is None:
                    continue
                for name, output in out:
                    aliases[name] = output
                previous = out[-1][1]
                after_instance = True
                continue
            item = dict(entry) if isinstance(entry, dict) else entry
            if isinstance(item, dict):
                refs = item.get("inputs")
                if isinstance(refs, list):
                    item["inputs"] = [aliases.get(r, r) if isinstance(r, str) else r for r in refs]
                elif refs is None and after_instance and item.get("type") != "Input":
                    item["inputs"] = [previous]
                after_instance = False
            j = self._emit(item, path, (), k)
            name = item.get("name") if isinstance(item, dict) else None
            previous = name if isinstance(name, str) else _Ref(j)
        new = {k: v for k, v in data.items() if k != "blocks"}
        new["layers"] = self.flat
        outs = data.get("outputs")
        if isinstance(outs, list):
            new["outputs"] = [aliases.get(r, r) if isinstance(r, str) else r for r in outs]
        return new

    def _emit(self, entry, path: tuple, frames: tuple, top: int | None, scope=None) -> int:
        self.scopes.append(scope)
        self.flat.append(entry)
        self.paths.append(path)
        self.frames.append(frames)
        self.top_index.append(top)
        if len(self.flat) > MAX_LAYERS:
            raise _TooLarge
        return len(self.flat) - 1

    # -------------------------------------------------------------- instances
    def instantiate(self, entry: dict, path, scope, chain, frames, inputs):
        """Expand one instance entry (maybe repeated); returns [(instance name, output)]."""
        bname = entry["type"]
        block = self.blocks[bname]
        if bname in chain:
            loop = " -> ".join((*chain[chain.index(bname) :], bname))
            self.error(
                path + ("type",),
                f"block '{bname}' uses itself ({loop}); blocks cannot be recursive",
                frames,
                code=codes.RECURSIVE_BLOCK,
            )
            return None
        if len(chain) >= MAX_NESTING:
            self.error(
                path + ("type",),
                f"blocks nested more than {MAX_NESTING} deep ({' -> '.join(chain[:3])} -> ... "
                f"-> {bname})",
                frames[-3:],
                hint="flatten some levels: a block may hold the layers of the blocks it uses",
            )
            return None
        for key in entry:
            if key not in INSTANCE_KEYS and key not in block.params:
                self.error(
                    path + (key,),
                    f"block '{bname}' has no parameter '{key}'",
                    frames,
                    hint=did_you_mean(key, sorted(block.params))
                    or ("its parameters: " + ", ".join(block.params) if block.params else None),
                    code=codes.UNKNOWN_PARAMETER,
                    key=True,
                )
        repeated = "repeat" in entry
        count = self.value(entry.get("repeat", 1), scope, path + ("repeat",), frames)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_REPEAT:
            self.error(
                path + ("repeat",),
                f"'repeat' must be an integer from 1 to {MAX_REPEAT:,}, got {count!r}",
                frames,
            )
            return None
        overrides: dict[int, tuple[dict, tuple]] = {}
        if "first" in entry:
            if not isinstance(entry["first"], dict):
                self.error(path + ("first",), "'first' must be a mapping of arguments", frames)
            else:
                overrides[0] = (entry["first"], path + ("first",))
        if "at" in entry:
            at = entry["at"]
            if not isinstance(at, dict):
                self.error(path + ("at",), "'at' must map an index to arguments", frames)
            else:
                for key, args in at.items():
                    index = int(key) if isinstance(key, str) and key.isdigit() else key
                    if isinstance(index, bool) or not isinstance(index, int):
                        self.error(path + ("at", key), f"'at' key {key!r} is not an index", frames)
                    elif not 0 <= index < count:
                        self.error(
                            path + ("at", key),
                            f"index {index} is outside repeat: {count} (0 to {count - 1})",
                            frames,
                            key=True,
                        )
                    elif not isinstance(args, dict):
                        self.error(path + ("at", key), "must be a mapping of arguments", frames)
                    else:
                        overrides[index] = (args, path + ("at", key))
        for args, where in overrides.values():
            for key in args:
                if key not in block.params:
                    self.error(
                        where + (key,),
                        f"block '{bname}' has no parameter '{key}'",
                        frames,
                        hint=did_you_mean(key, sorted(block.params)),
                        code=codes.UNKNOWN_PARAMETER,
                        key=True,
                    )
        results = []
        current = inputs
        line, col = self.source.locate(path)
        for idx in range(count):
            s = dict(scope)
            if repeated:
                s["i"] = idx
            if "if" in entry:
                cond = self.condition(entry["if"], s, path + ("if",), frames)
                if cond is None:
                    return None
                if not cond:
                    continue
            raw_name = entry.get("name")
            if raw_name is None:
                name = f"{bname}_{len(self.instances) + 1}"
            else:
                name = self.value(raw_name, s, path + ("name",), frames)
                if repeated and isinstance(name, str) and not has_expression(raw_name):
                    name = f"{name}_{idx + 1}"
            if not isinstance(name, str) or not NAME_RE.match(name):
                self.error(
                    path + ("name",),
                    f"instance name {name!r} is not a valid name (letters, digits, _)",
                    frames,
                )
                return None
            args: dict[str, object] = {}
            given: dict[str, object] = {}
            for pname, param in block.params.items():
                where = path + (pname,)
                if idx in overrides and pname in overrides[idx][0]:
                    where = overrides[idx][1] + (pname,)
                    raw = overrides[idx][0][pname]
                elif pname in entry:
                    raw = entry[pname]
                elif param.has_default:
                    args[pname] = param.default
                    continue
                else:
                    self.error(
                        path,
                        f"block '{bname}' needs parameter '{pname}' ({param.type})",
                        frames,
                        code=codes.MISSING_PARAMETER,
                    )
                    return None
                value = self.value(raw, s, where, frames)
                if not _typed(value, param.type):
                    if value is not None or raw is None:
                        self.error(
                            where,
                            f"parameter '{pname}' of block '{bname}' is {param.type}, "
                            f"got {_show(value)!r}",
                            frames,
                            code=codes.PARAMETER_TYPE,
                        )
                    return None
                if param.type == "float":
                    value = float(value)
                args[pname] = value
                given[pname] = value
            frame = Frame(bname, name, self.source.file, line, col, tuple(given.items()))
            inner = (*frames, frame)
            scope_path = tuple(f.instance for f in inner)
            output = self.expand_block(
                block, {**args, "name": name}, (*chain, bname), inner, current, path
            )
            if output is None:
                return None
            self.instances[scope_path] = (bname, output)
            self.calls.append(
                CallSite(bname, scope_path, tuple(args.items()), tuple(current), output, path)
            )
            results.append((name, output))
            current = [output]
        if not results:  # every repetition skipped by `if`: the input passes through
            return [(entry.get("name", bname), inputs[0])] if inputs else None
        return results

    def expand_block(self, block: Block, scope, chain, frames, inputs, site):
        if len(inputs) != len(block.inputs):
            self.error(
                site,
                f"block '{block.name}' takes {len(block.inputs)} input(s) "
                f"({', '.join(block.inputs)}), got {len(inputs)}",
                frames[:-1],
                code=codes.ARITY,
            )
            return None
        local: dict[str, object] = dict(zip(block.inputs, inputs))
        previous = inputs[0] if len(inputs) == 1 else None
        base = ("blocks", block.name, "layers")
        auto: dict[str, int] = {}
        for m, entry in enumerate(block.layers):
            lpath = (*base, m)
            if not isinstance(entry, dict):
                self.error(lpath, "a block layer must be a mapping with a 'type'", frames)
                return None
            if "if" in entry:
                cond = self.condition(entry["if"], scope, lpath + ("if",), frames)
                if cond is None:
                    return None
                if not cond:
                    # skipped: its name passes its (first) input through
                    refs = self._refs(entry, scope, lpath, frames, local, previous)
                    through = refs[0] if refs else previous
                    raw_name = entry.get("name")
                    if isinstance(raw_name, str):
                        local[str(self.value(raw_name, scope, lpath + ("name",), frames))] = through
                    previous = through
                    continue
            refs = self._refs(entry, scope, lpath, frames, local, previous)
            if refs is None:
                return None
            if _is_block(entry.get("type"), self.blocks):
                inst = {k: v for k, v in entry.items() if k not in ("inputs", "if")}
                out = self.instantiate(inst, lpath, scope, chain, frames, refs)
                if out is None:
                    return None
                for name, output in out:
                    local[name] = output
                previous = out[-1][1]
                continue
            count = 1
            if "repeat" in entry:
                count = self.value(entry["repeat"], scope, lpath + ("repeat",), frames)
                if (
                    isinstance(count, bool)
                    or not isinstance(count, int)
                    or not 1 <= count <= MAX_REPEAT
                ):
                    self.error(
                        lpath + ("repeat",),
                        f"'repeat' must be an integer from 1 to {MAX_REPEAT:,}, got {count!r}",
                        frames,
                    )
                    return None
            for idx in range(count):
                s = {**scope, "i": idx} if "repeat" in entry else scope
                item = {}
                for key, raw in entry.items():
                    if key in ("if", "inputs", "repeat"):
                        continue
                    item[key] = self.value(raw, s, lpath + (key,), frames)
                name = item.get("name")
                if name is None:
                    from .layers import keras_default_name

                    stem = keras_default_name(str(item.get("type", "layer")))
                    n = auto.get(stem, 0)
                    auto[stem] = n + 1
                    name = f"{scope['name']}_{stem}" + (f"_{n}" if n else "")
                    item = {"name": name, **item}
                elif (
                    "repeat" in entry
                    and isinstance(name, str)
                    and not has_expression(entry["name"])
                ):
                    name = item["name"] = f"{name}_{idx + 1}"
                if item.get("type") == "Input":
                    self.error(lpath + ("type",), "a block cannot contain an Input layer", frames)
                    return None
                item["inputs"] = refs if idx == 0 else [previous]
                self._emit(item, lpath, frames, None, s)
                if isinstance(name, str):
                    local[name] = name
                previous = name
        outs = block.outputs
        if outs is None:
            if previous is None:
                self.error(site, f"block '{block.name}' has no layers left", frames)
                return None
            return previous
        ref = self.value(outs[0], scope, ("blocks", block.name, "outputs", 0), frames)
        if not isinstance(ref, str) or ref not in local:
            self.error(
                ("blocks", block.name, "outputs", 0),
                f"block output '{ref}' is not one of its inputs or layers",
                frames,
                hint=did_you_mean(ref, [k for k in local if isinstance(k, str)]),
                code=codes.UNKNOWN_REFERENCE,
            )
            return None
        return local[ref]

    def _refs(self, entry, scope, lpath, frames, local, previous):
        raw = entry.get("inputs")
        if raw is None:
            if previous is None:
                self.error(
                    lpath,
                    "the block has several inputs; say which this layer reads",
                    frames,
                    hint="add 'inputs: [<name>]'",
                    code=codes.AMBIGUOUS_INPUT,
                )
                return None
            return [previous]
        if not isinstance(raw, list):
            self.error(lpath + ("inputs",), "'inputs' must be a list of names", frames)
            return None
        out = []
        for j, r in enumerate(raw):
            ref = self.value(r, scope, lpath + ("inputs", j), frames)
            if not isinstance(ref, str) or ref not in local:
                self.error(
                    lpath + ("inputs", j),
                    f"unknown name '{ref}': a block layer reads the block's inputs "
                    "and its own layers only",
                    frames,
                    hint=did_you_mean(str(ref), [k for k in local if isinstance(k, str)]),
                    code=codes.UNKNOWN_REFERENCE,
                )
                return None
            out.append(local[ref])
        return out


class _TooLarge(Exception):
    pass


def _is_block(kind: object, blocks: dict) -> bool:
    return isinstance(kind, str) and kind in blocks


def _typed(value, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float))
    return isinstance(value, str)


# ------------------------------------------------------------------ definitions


def _definitions(source: Source, raw) -> tuple[dict[str, Block], list[Diagnostic]]:
    diags: list[Diagnostic] = []

    def err(path, message, hint=None, key=False, code=codes.BLOCK):
        line, col = source.locate(path, prefer_key=key)
        diags.append(
            Diagnostic.from_position(
                source, line, col, code, message, path=json_path(path), hint=hint
            )
        )

    if not isinstance(raw, dict):
        err(("blocks",), "'blocks' must be a mapping of block name to definition")
        return {}, diags
    from .layers import LAYER_TYPES

    blocks: dict[str, Block] = {}
    for bname, body in raw.items():
        path = ("blocks", bname)
        if not isinstance(bname, str) or not NAME_RE.match(bname):
            err(path, f"block name {bname!r} is not a valid name", key=True)
            continue
        if bname in LAYER_TYPES:
            err(path, f"block name '{bname}' is a layer type; choose another", key=True)
            continue
        if not isinstance(body, dict):
            err(path, "a block is a mapping with 'params', 'inputs', 'layers', 'outputs'")
            continue
        for key in body:
            if key not in BLOCK_KEYS:
                err(
                    path + (key,),
                    f"unknown block field '{key}'",
                    hint=did_you_mean(key, sorted(BLOCK_KEYS)),
                    key=True,
                )
        params: dict[str, Param] = {}
        rawp = body.get("params", {}) or {}
        if not isinstance(rawp, dict):
            err(path + ("params",), "'params' must map a parameter name to its type")
            rawp = {}
        for pname, spec in rawp.items():
            ppath = path + ("params", pname)
            if not isinstance(pname, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", pname):
                err(ppath, f"parameter name {pname!r} is not a valid name", key=True)
                continue
            if pname in RESERVED or pname in INSTANCE_KEYS:
                err(ppath, f"'{pname}' is reserved and cannot be a parameter name", key=True)
                continue
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict) or not _is_block(spec.get("type"), PARAM_TYPES):
                err(
                    ppath,
                    f"parameter '{pname}' needs a type: one of {', '.join(sorted(PARAM_TYPES))}",
                    hint="write 'filters: int' or 'stride: {type: int, default: 1}'",
                )
                continue
            extra = set(spec) - {"type", "default", "description"}
            if extra:
                err(ppath, f"unknown parameter field(s): {', '.join(sorted(map(str, extra)))}")
            has_default = "default" in spec
            if has_default and not _typed(spec["default"], spec["type"]):
                err(ppath + ("default",), f"default {spec['default']!r} is not {spec['type']}")
                continue
            default = spec.get("default")
            if spec["type"] == "float" and has_default:
                default = float(default)
            params[pname] = Param(
                pname, spec["type"], default, has_default, str(spec.get("description", ""))
            )
        inputs = body.get("inputs", ["x"])
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(n, str) and NAME_RE.match(n) for n in inputs)
        ):
            err(path + ("inputs",), "a block's 'inputs' is a non-empty list of names")
            inputs = ["x"]
        layers = body.get("layers")
        if not isinstance(layers, list) or not layers:
            err(path + ("layers",) if "layers" in body else path, "a block needs 'layers'")
            layers = []
        outputs = body.get("outputs")
        if outputs is not None and (
            not isinstance(outputs, list) or len(outputs) != 1 or not isinstance(outputs[0], str)
        ):
            err(path + ("outputs",), "a block has exactly one output: 'outputs: [<name>]'")
            outputs = None
        blocks[bname] = Block(
            bname, params, list(inputs), layers, outputs, str(body.get("description", ""))
        )
    return blocks, diags


# ------------------------------------------------------------------ entry point


def uses_blocks(data: object) -> bool:
    return isinstance(data, dict) and "blocks" in data


def expand(source: Source) -> tuple[Source, Expansion | None, list[Diagnostic]]:
    """The spec with every block instance replaced by its layers (or the diagnostics)."""
    data = source.data
    if not uses_blocks(data):
        return source, None, []
    blocks, diags = _definitions(source, data["blocks"])
    if diags:
        return source, None, diags
    ex = _Expander(source, blocks)
    try:
        new = ex.top(data)
    except _TooLarge:
        line, col = source.locate(("layers",))
        return (
            source,
            None,
            [
                Diagnostic.from_position(
                    source,
                    line,
                    col,
                    codes.TOO_LARGE,
                    f"blocks expand to more than {MAX_LAYERS:,} layers",
                    path="layers",
                )
            ],
        )
    if ex.failed or new is None:
        return source, None, _dedupe(ex.diags) if ex.diags else []
    # unnamed top-level layers referenced by an instance: their automatic (Keras) names
    names = _auto_names(ex.flat)
    for entry in ex.flat:
        if isinstance(entry, dict) and isinstance(entry.get("inputs"), list):
            entry["inputs"] = [
                names[r.index] if isinstance(r, _Ref) else r for r in entry["inputs"]
            ]
    out = Source(data=new, file=source.file, text=source.text)  # positions are the text's
    by_prefix: dict[tuple, list] = {}
    for table, target in ((source.values, out.values), (source.keys, out.keys)):
        by_prefix.clear()
        for path, pos in table.items():
            if path and path[0] == "layers" and len(path) >= 2:
                by_prefix.setdefault(path[:2], []).append((path, pos))
            elif path and path[0] == "blocks" and len(path) >= 4 and path[2] == "layers":
                by_prefix.setdefault(path[:4], []).append((path, pos))
                target[path] = pos
            else:
                target[path] = pos
        for j, opath in enumerate(ex.paths):
            n = len(opath)
            for path, pos in by_prefix.get(opath, ()):
                target[("layers", j, *path[n:])] = pos
    for call in ex.calls:  # names of unnamed top-level layers an instance reads
        if any(isinstance(r, _Ref) for r in call.inputs):
            ex.calls[ex.calls.index(call)] = replace(
                call,
                inputs=tuple(names[r.index] if isinstance(r, _Ref) else r for r in call.inputs),
            )
    expansion = Expansion(
        blocks, ex.frames, ex.top_index, ex.instances, ex.scopes, ex.calls, ex.paths, names
    )
    return out, expansion, []


def _auto_names(flat: list) -> list[str | None]:
    from .layers import keras_default_name

    taken = {e.get("name") for e in flat if isinstance(e, dict) and isinstance(e.get("name"), str)}
    counters: dict[str, int] = {}
    names: list[str | None] = []
    for entry in flat:
        if not isinstance(entry, dict):
            names.append(None)
            continue
        if isinstance(entry.get("name"), str):
            names.append(entry["name"])
            continue
        stem = keras_default_name(str(entry.get("type", "layer")))
        while True:
            n = counters.get(stem, 0)
            counters[stem] = n + 1
            candidate = stem if n == 0 else f"{stem}_{n}"
            if candidate not in taken:
                break
        taken.add(candidate)
        names.append(candidate)
    return names


_LABEL = re.compile(r"^layers\[(\d+)\]")


def attach_context(diagnostics: list[Diagnostic], expansion: Expansion | None) -> list[Diagnostic]:
    """Name each expanded layer's instantiation chain in its diagnostics; top-level layers
    get back their index in the spec as written."""
    if expansion is None:
        return diagnostics
    out = []
    for d in diagnostics:
        d = _source_path(d, expansion)
        m = _LABEL.match(d.layer or "")
        if not m or int(m.group(1)) >= len(expansion.frames):
            out.append(d)
            continue
        j = int(m.group(1))
        frames = expansion.frames[j]
        if not frames:
            top = expansion.top_index[j]
            out.append(replace(d, layer=f"layers[{top}]" + d.layer[m.end() :]))
            continue
        label = d.layer[m.end() :].strip()
        context = "".join("\n  " + f.describe() for f in reversed(frames))
        out.append(replace(d, layer=label or None, message=d.message + context))
    return _dedupe(out)


def _source_path(d: Diagnostic, expansion: Expansion) -> Diagnostic:
    """The JSON path of a diagnostic on an expanded layer, as written: ``layers[i]...`` of
    the spec or ``blocks.NAME.layers[k]...`` of a block definition."""
    m = _LABEL.match(d.path or "")
    if not m or int(m.group(1)) >= len(expansion.paths):
        return d
    written = json_path(expansion.paths[int(m.group(1))])
    return replace(d, path=written + d.path[m.end() :])


def _dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per block-definition position and message, counting the other instances."""
    seen: dict[tuple, int] = {}
    counts: dict[int, int] = {}
    out: list[Diagnostic] = []
    for d in diagnostics:
        head, sep, _ = d.message.partition("\n  in block '")
        if not sep:
            out.append(d)
            continue
        key = (d.file, d.line, d.column, head, d.code, d.severity)
        if key in seen:
            counts[seen[key]] = counts.get(seen[key], 0) + 1
            continue
        seen[key] = len(out)
        out.append(d)
    for k, n in counts.items():
        d = out[k]
        more = f"\n  (and {n} more instance{'s' if n > 1 else ''})"
        out[k] = replace(d, message=d.message + more)
    return out
