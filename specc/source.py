"""Stage 1, parse: read YAML or JSON into plain data, remembering where every value came from.

YAML is loaded safely (only the standard tags; no Python objects), and JSON with a small
parser of our own so that both formats give the same line/column locations.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import diagcodes as codes
from .diagnostics import Diagnostic

Path_ = tuple  # a path into the data: ("layers", 3, "filters")

MAX_BYTES = 4 * 1024 * 1024
MAX_VALUES = 200_000  # guards against YAML alias bombs
MAX_DEPTH = 100


class ParseError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.format())


@dataclass
class Source:
    """Parsed spec data plus the position of every value and key in the text."""

    data: object
    file: str = "<spec>"
    values: dict = field(default_factory=dict)  # path -> (line, col) of the value
    keys: dict = field(default_factory=dict)  # path -> (line, col) of the mapping key
    text: str = ""  # the text it was parsed from ("" for Python data)
    _lines: list | None = field(default=None, repr=False, compare=False)

    def line_text(self, line: int) -> str | None:
        """Line ``line`` (1-based) of the text, without its newline; None when out of range."""
        if self._lines is None:
            self._lines = self.text.split("\n") if self.text else []
        if 1 <= line <= len(self._lines):
            return self._lines[line - 1].rstrip("\r")
        return None

    def locate(self, path: Path_, prefer_key: bool = False) -> tuple[int, int]:
        """Best position for ``path``: the value itself, else its nearest located parent."""
        path = tuple(path)
        while True:
            if prefer_key and path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return (1, 1)
            path = path[:-1]


def load_source(text: str | bytes, file: str = "<spec>", fmt: str | None = None) -> Source:
    """Parse YAML or JSON text. ``fmt`` is 'yaml', 'json' or None (guess from file name)."""
    if isinstance(text, bytes):
        text = _decode(text, file)
    if len(text) > MAX_BYTES:
        raise ParseError(
            Diagnostic(
                f"file is {len(text):,} characters; specs larger than {MAX_BYTES:,} are refused",
                file=file,
                code=codes.TOO_LARGE,
            )
        )
    if not text.strip():
        raise ParseError(
            Diagnostic(
                "file is empty",
                file=file,
                code=codes.EMPTY,
                hint="a spec needs at least 'inputs' and 'layers'; see docs/spec.md",
            )
        )
    if fmt is None:
        fmt = "json" if file.lower().endswith(".json") else "yaml"
    if fmt == "json":
        return _JsonParser(text, file).parse()
    return _load_yaml(text, file)


def read_source(path: str | Path) -> Source:
    """Read and parse a spec file. Raises ParseError (never OSError) with a located message."""
    path = Path(path)
    name = str(path)
    try:
        # at most one byte past the limit: /dev/zero, /dev/urandom or an endless pipe would
        # otherwise be read until memory runs out
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        hint = "to read a spec from stdin, give /dev/stdin" if name == "-" else None
        raise ParseError(Diagnostic("no such file", file=name, code=codes.IO, hint=hint)) from None
    except IsADirectoryError:
        raise ParseError(
            Diagnostic("is a directory, not a spec file", file=name, code=codes.IO)
        ) from None
    except OSError as exc:
        raise ParseError(
            Diagnostic(f"cannot read file: {exc.strerror}", file=name, code=codes.IO)
        ) from None
    if len(raw) > MAX_BYTES:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        shown = f"{size:,} bytes" if size > MAX_BYTES else f"more than {MAX_BYTES:,} bytes"
        raise ParseError(
            Diagnostic(
                f"file is {shown}; specs larger than {MAX_BYTES:,} bytes are refused",
                file=name,
                code=codes.TOO_LARGE,
            )
        )
    return load_source(raw, file=name)


def _decode(raw: bytes, file: str) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ParseError(
            Diagnostic(
                f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                file=file,
                line=line,
                column=col,
                code=codes.ENCODING,
            )
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ParseError(
            Diagnostic(
                "file contains NUL bytes: not a text spec",
                file=file,
                line=line,
                code=codes.ENCODING,
            )
        )
    return text


# --------------------------------------------------------------------------- YAML

_SAFE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


def _load_yaml(text: str, file: str) -> Source:
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            context = exc.context
            started = exc.context_mark
            if started is not None and (started.line, started.column) != (mark.line, mark.column):
                context += f" that starts at line {started.line + 1}, column {started.column + 1}"
            problem = f"{exc.problem} ({context})"
        raise ParseError(
            Diagnostic.from_position(
                Source(None, file, text=text), line, col, codes.SYNTAX, f"invalid YAML: {problem}"
            )
        ) from None
    except yaml.YAMLError as exc:
        raise ParseError(Diagnostic(f"invalid YAML: {exc}", file=file, code=codes.SYNTAX)) from None
    except RecursionError:
        raise ParseError(
            Diagnostic("YAML is nested too deeply", file=file, code=codes.TOO_DEEP)
        ) from None
    finally:
        loader.dispose()
    if root is None:
        raise ParseError(Diagnostic("file is empty", file=file, code=codes.EMPTY))
    source = Source(data=None, file=file, text=text)
    builder = _YamlBuilder(source, yaml)
    source.data = builder.build(root, ())
    return source


class _YamlBuilder:
    def __init__(self, source: Source, yaml_module):
        self.source = source
        self.yaml = yaml_module
        self.count = 0
        self.seen: set[int] = set()  # node ids built (the composer shares aliased nodes)
        self.aliased = False
        self.constructor = yaml_module.constructor.SafeConstructor()

    def _error(self, node, message: str, code: codes.Code = codes.SYNTAX) -> ParseError:
        mark = node.start_mark
        return ParseError(
            Diagnostic.from_position(self.source, mark.line + 1, mark.column + 1, code, message)
        )

    def build(self, node, path: tuple, depth: int = 0):
        self.count += 1
        if id(node) in self.seen:  # reached a second time: through an alias (*name)
            self.aliased = True
        else:
            self.seen.add(id(node))
        if self.count > MAX_VALUES:
            cause = (
                "expands to more than {:,} values through YAML aliases (*name reuses an anchor)"
                if self.aliased
                else "holds more than {:,} values, the most a spec may have"
            )
            raise self._error(node, "document " + cause.format(MAX_VALUES), code=codes.TOO_LARGE)
        if depth > MAX_DEPTH:
            raise self._error(node, f"nesting deeper than {MAX_DEPTH} levels", code=codes.TOO_DEEP)
        if node.tag not in _SAFE_TAGS:
            raise self._error(
                node,
                f"unsupported YAML tag '{node.tag}'; specs hold plain data only",
                code=codes.TAG,
            )
        mark = node.start_mark
        self.source.values[path] = (mark.line + 1, mark.column + 1)
        yaml = self.yaml
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.constructor.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError) as exc:
                raise self._error(node, f"invalid scalar: {exc}") from None
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self._error(
                    key_node, "YAML merge keys ('<<') are not supported", code=codes.TAG
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._error(key_node, "mapping keys must be plain strings")
            key = self.build(key_node, path + ("<key>",), depth + 1)
            self.source.values.pop(path + ("<key>",), None)
            if not isinstance(key, str):
                key = str(key) if key is not None else "null"
            if key in result:
                raise self._error(key_node, f"duplicate key '{key}'", code=codes.DUPLICATE_KEY)
            kmark = key_node.start_mark
            self.source.keys[path + (key,)] = (kmark.line + 1, kmark.column + 1)
            result[key] = self.build(value_node, path + (key,), depth + 1)
        return result


# --------------------------------------------------------------------------- JSON

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_WS = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _JsonParser:
    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.source = Source(data=None, file=file, text=text)
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.count = 0

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_left(self.newlines, offset)
        start = self.newlines[line - 1] + 1 if line else 0
        return line + 1, offset - start + 1

    def error(self, offset: int, message: str, code: codes.Code = codes.SYNTAX) -> ParseError:
        line, col = self.position(offset)
        return ParseError(
            Diagnostic.from_position(self.source, line, col, code, f"invalid JSON: {message}")
        )

    def parse(self) -> Source:
        pos = self.skip(0)
        self.source.data, pos = self.value(pos, (), 0)
        pos = self.skip(pos)
        if pos != len(self.text):
            raise self.error(pos, "extra data after the top-level value")
        return self.source

    def skip(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()

    def value(self, pos: int, path: tuple, depth: int):
        self.count += 1
        if depth > MAX_DEPTH:
            raise self.error(pos, f"nesting deeper than {MAX_DEPTH} levels", code=codes.TOO_DEEP)
        if self.count > MAX_VALUES:
            raise self.error(pos, f"more than {MAX_VALUES:,} values", code=codes.TOO_LARGE)
        text = self.text
        if pos >= len(text):
            raise self.error(pos, "unexpected end of file")
        self.source.values[path] = self.position(pos)
        ch = text[pos]
        if ch == "{":
            return self.obj(pos + 1, path, depth)
        if ch == "[":
            return self.array(pos + 1, path, depth)
        if ch == '"':
            return self.string(pos)
        for word, val in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                return val, pos + len(word)
        for word, val in (
            ("NaN", float("nan")),
            ("Infinity", float("inf")),
            ("-Infinity", float("-inf")),
        ):
            if text.startswith(word, pos):
                return val, pos + len(word)
        m = _NUMBER.match(text, pos)
        if m and m.end() > pos:
            literal = m.group(0)
            if m.group(1) or m.group(2):
                return float(literal), m.end()
            if len(literal) > 1000:  # int() refuses > 4300 digits with a ValueError
                raise self.error(pos, f"number with {len(literal):,} digits is too large")
            return int(literal), m.end()
        raise self.error(pos, f"unexpected character {text[pos]!r}")

    def string(self, pos: int):
        try:
            value, end = json.decoder.scanstring(self.text, pos + 1, True)
        except json.JSONDecodeError as exc:
            raise self.error(exc.pos, exc.msg) from None
        if _SURROGATE.search(value):  # '\\udc00' escapes: not text, and unprintable later
            raise self.error(pos, "string holds an unpaired UTF-16 surrogate escape")
        return value, end

    def obj(self, pos: int, path: tuple, depth: int):
        result: dict = {}
        pos = self.skip(pos)
        if self.text.startswith("}", pos):
            return result, pos + 1
        while True:
            comma = pos - 1
            pos = self.skip(pos)
            if self.text.startswith("}", pos) and self.text.startswith(",", comma):
                raise self.error(comma, "trailing comma before '}'")
            if not self.text.startswith('"', pos):
                raise self.error(pos, "expected a string key in double quotes")
            key_pos = pos
            key, pos = self.string(pos)
            if key in result:
                raise self.error(key_pos, f"duplicate key '{key}'", code=codes.DUPLICATE_KEY)
            self.source.keys[path + (key,)] = self.position(key_pos)
            pos = self.skip(pos)
            if not self.text.startswith(":", pos):
                raise self.error(pos, "expected ':' after a key")
            pos = self.skip(pos + 1)
            result[key], pos = self.value(pos, path + (key,), depth + 1)
            end = pos
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
                continue
            if self.text.startswith("}", pos):
                return result, pos + 1
            if "\n" in self.text[end:pos]:  # a missing comma: point after the value
                raise self.error(end, "expected ',' or '}' after this value")
            raise self.error(pos, "expected ',' or '}'")

    def array(self, pos: int, path: tuple, depth: int):
        result: list = []
        pos = self.skip(pos)
        if self.text.startswith("]", pos):
            return result, pos + 1
        while True:
            comma = pos - 1
            pos = self.skip(pos)
            if self.text.startswith("]", pos) and result and self.text.startswith(",", comma):
                raise self.error(comma, "trailing comma before ']'")
            item, pos = self.value(pos, path + (len(result),), depth + 1)
            result.append(item)
            end = pos
            pos = self.skip(pos)
            if self.text.startswith(",", pos):
                pos += 1
                continue
            if self.text.startswith("]", pos):
                return result, pos + 1
            if "\n" in self.text[end:pos]:  # a missing comma: point after the value
                raise self.error(end, "expected ',' or ']' after this value")
            raise self.error(pos, "expected ',' or ']'")
