"""Bad input never gives a traceback: every hostile input gets located diagnostics.

Mutations of the valid specs in specs/ (wrong types, negative / zero / huge numbers, NaN and
infinity, missing and unknown fields, strings where numbers belong, deep nesting, YAML
anchors and alias bombs, python object tags, non-UTF-8 and binary garbage, a 10 MB file,
an empty file, lists where mappings belong, unicode) go through the library
(``check_text``), the CLI in-process (typer's CliRunner) and, for a sample, the real
``specc`` executable in a subprocess with bounded time and memory.

tests/fuzz_corpus/ holds inputs that once crashed specc or got a misleading message; each
is replayed (see its ``.expect`` file).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from specc.cli import app
from specc.pipeline import check_file, check_text

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
CORPUS = Path(__file__).parent / "fuzz_corpus"
SPECC = Path(sys.executable).parent / "specc"

settings.register_profile(
    "specc-fuzz-fast",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "specc-fuzz-long",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile(
    "specc-fuzz-long" if os.environ.get("SPECC_FUZZ") == "long" else "specc-fuzz-fast"
)

LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): ", re.M)
TIME_LIMIT = 5.0  # seconds for one check, however hostile the input


def assert_clean_rejection(result, text_len: int | None = None) -> None:
    """Not ok, at least one error, every diagnostic located and printable."""
    assert not result.ok
    assert result.errors, "invalid but no error diagnostic"
    for diag in result.diagnostics:
        line = diag.format()
        assert LOCATED.match(line), line
        assert diag.line >= 1 and diag.column >= 1
        assert "Traceback" not in line
        line.encode("utf-8")  # printable on a UTF-8 terminal (no lone surrogates)


def timed_check(text, fmt: str = "yaml"):
    start = time.perf_counter()
    result = check_text(text, format=fmt, file=f"fuzz.{fmt}")
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT, f"check took {elapsed:.1f}s"
    return result


def check_never_crashes(text, fmt: str = "yaml"):
    """The property every input must satisfy; returns the result for further checks."""
    result = timed_check(text, fmt)
    if result.ok:
        assert result.model is not None and not result.errors
    else:
        assert_clean_rejection(result)
    return result


# --------------------------------------------------------------------------- data mutations

HOSTILE = [
    -1,
    0,
    -(2**63),
    2**64,
    10**30,
    1.5,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    True,
    None,
    "",
    "3",
    "relu; import os",
    "\u202eevil",
    "Ｄｅｎｓｅ",  # full-width look-alikes
    "x" * 5000,
    "é\u0301\U0001f600",
    [],
    [1, 2, 3],
    [[[[]]]],
    {},
    {"type": "Dense"},
    {"a": {"b": {"c": [1, {"d": None}]}}},
]
hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.recursive(
        st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=12,
    ),
)


def _paths(node, prefix=()):
    """Every path into the data, containers and leaves alike."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _get(node, path):
    for seg in path:
        node = node[seg]
    return node


def load_spec(path: Path):
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


SPEC_DATA = {p.name: load_spec(p) for p in SPECS}


@st.composite
def mutated(draw):
    """A spec from specs/ with one to four random mutations, as YAML or JSON text."""
    import copy

    data = copy.deepcopy(SPEC_DATA[draw(st.sampled_from(sorted(SPEC_DATA)))])
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        action = draw(st.sampled_from(["replace", "delete", "add", "wrap", "nest"]))
        key = path[-1]
        if action == "replace":
            parent[key] = copy.deepcopy(draw(hostile))  # HOSTILE's lists must stay intact
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = copy.deepcopy(draw(hostile))
        elif action == "wrap":  # a list where a mapping (or a value) belongs, and vice versa
            value = parent[key]
            parent[key] = [value] if not isinstance(value, list) else {"items": value}
        elif action == "nest":
            value = parent[key]
            for _ in range(draw(st.integers(1, 150))):
                value = [value]
            parent[key] = value
    fmt = draw(st.sampled_from(["yaml", "json"]))
    if fmt == "json":
        text = json.dumps(data, allow_nan=True, ensure_ascii=draw(st.booleans()))
    else:
        text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
    return text, fmt


@FUZZ
@given(case=mutated())
def test_mutated_specs_never_crash(case):
    text, fmt = case
    check_never_crashes(text, fmt)


@FUZZ
@given(data=st.data())
def test_text_mutations_never_crash(data):
    """Byte-level damage: truncation, flipped / inserted / deleted bytes, binary garbage."""
    path = data.draw(st.sampled_from(SPECS))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 5))):
        pos = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if action == "truncate":
            del raw[pos:]
        elif action == "flip" and pos < len(raw):
            raw[pos] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del raw[pos : pos + data.draw(st.integers(1, 20))]
    check_never_crashes(bytes(raw), "json" if path.suffix == ".json" else "yaml")


@FUZZ
@given(blob=st.binary(max_size=512), fmt=st.sampled_from(["yaml", "json"]))
def test_random_bytes_never_crash(blob, fmt):
    check_never_crashes(blob, fmt)


@FUZZ
@given(text=st.text(max_size=300), fmt=st.sampled_from(["yaml", "json"]))
def test_random_text_never_crashes(text, fmt):
    check_never_crashes(text, fmt)


# a number in a spec (block or flow style, YAML or JSON) -> something that is not a number
NUMBER = re.compile(r'(?P<key>"?[a-z_]+"?):\s*(?P<value>-?\d+(?:\.\d+)?)(?=[\s,}\]]|$)')
NOT_A_NUMBER = ["'3'", '"abc"', "[]", "{}", "[1, [2]]", "true", '"NaN"', '"1e3"']


def _number_sites():
    for path in SPECS:
        text = path.read_text()
        for m in NUMBER.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            if "#" in text[line_start : m.start()]:
                continue  # a comment
            if m.group("key").strip('"') in ("description",):
                continue
            yield path, m


SITES = list(_number_sites())


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 200))
@given(site=st.sampled_from(SITES), token=st.sampled_from(NOT_A_NUMBER))
def test_wrong_type_is_reported_on_its_line(site, token):
    """Replace one number by a non-number: an error on exactly that line."""
    path, m = site
    text = path.read_text()
    fmt = "json" if path.suffix == ".json" else "yaml"
    if fmt == "json":
        token = {"'3'": '"3"', "true": "true"}.get(token, token)
    mutated_text = text[: m.start("value")] + token + text[m.end("value") :]
    line = text[: m.start("value")].count("\n") + 1
    result = check_never_crashes(mutated_text, fmt)
    assert not result.ok, f"{path.name}:{line}: {m.group('key')}: {token} accepted"
    lines = {d.line for d in result.errors}
    assert line in lines, (line, [d.format() for d in result.errors])


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 200))
@given(site=st.sampled_from(SITES), value=st.sampled_from(["0", "-1", "-7", "1e400", "-.inf"]))
def test_out_of_range_numbers(site, value):
    """Zero, negative and infinite numbers: no crash; sizes that must be positive are refused."""
    path, m = site
    text = path.read_text()
    fmt = "json" if path.suffix == ".json" else "yaml"
    if fmt == "json" and value == "-.inf":
        value = "-Infinity"
    mutated_text = text[: m.start("value")] + value + text[m.end("value") :]
    result = check_never_crashes(mutated_text, fmt)
    key = m.group("key").strip('"')
    positive = {"filters", "units", "kernel_size", "pool_size", "epochs", "batch_size", "version"}
    if key in positive and value in ("0", "-1", "-7"):
        assert not result.ok
        line = text[: m.start("value")].count("\n") + 1
        assert line in {d.line for d in result.errors}


# --------------------------------------------------------------------------- named inputs


def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


VALID = (ROOT / "specs" / "mnist_cnn.yaml").read_text()

NAMED: dict[str, tuple[bytes | str, str]] = {
    "empty": ("", "yaml"),
    "whitespace": ("  \n\n\t\n", "yaml"),
    "comment_only": ("# nothing here\n", "yaml"),
    "null_document": ("~\n", "yaml"),
    "scalar_document": ("42\n", "yaml"),
    "list_document": ("- 1\n- 2\n", "yaml"),
    "json_scalar": ('"spec"', "json"),
    "alias_bomb": (_alias_bomb(), "yaml"),
    "alias_bomb_in_spec": (VALID + "description: &b " + _alias_bomb().split(": ", 1)[1], "yaml"),
    "recursive_alias": ("version: 1\nname: m\nlayers: &l [*l]\n", "yaml"),
    "merge_key": (
        "base: &b {type: Dense, units: 3}\nversion: 1\nname: m\n"
        "inputs: [{name: x, shape: [3]}]\nlayers:\n  - <<: *b\n",
        "yaml",
    ),
    "python_object": ("version: 1\nname: !!python/object/apply:os.system ['echo pwned']\n", "yaml"),
    "python_name": ("version: !!python/name:os.system\n", "yaml"),
    "custom_tag": ("version: 1\nname: !Ref m\n", "yaml"),
    "binary_tag": ("version: 1\nname: !!binary aGVsbG8=\n", "yaml"),
    "timestamp": ("version: 1\nname: 2024-01-01\n", "yaml"),
    "deep_list": ("version: 1\nname: m\nlayers: " + "[" * 10000 + "]" * 10000 + "\n", "yaml"),
    "deep_map": ("layers: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "yaml"),
    "deep_block": ("".join("  " * i + f"k{i}:\n" for i in range(400)) + "  " * 400 + "v\n", "yaml"),
    "deep_json": ('{"layers": ' + "[" * 100000 + "]" * 100000 + "}", "json"),
    "huge_int_yaml": ("version: " + "9" * 5000 + "\n", "yaml"),
    "huge_int_json": ('{"version": ' + "9" * 5000 + "}", "json"),
    "huge_float_json": ('{"version": 1' + "0" * 400 + ".5}", "json"),
    "nan_everywhere": (
        "version: .nan\nname: m\ninputs: [{name: x, shape: [.nan]}]\n"
        "layers: [{type: Dense, units: .inf}]\n",
        "yaml",
    ),
    "json_nan_infinity": (
        '{"version": 1, "name": "m", "inputs": [{"name": "x", "shape": [NaN]}],'
        ' "layers": [{"type": "Dropout", "rate": Infinity}]}',
        "json",
    ),
    "lone_surrogate_json": ('{"version": 1, "name": "\\ud800"}', "json"),
    "lone_surrogate_key_json": ('{"\\udfff": 1}', "json"),
    "latin1_bytes": ("version: 1\nname: caf\xe9\n".encode("latin-1"), "yaml"),
    "utf16_bytes": (VALID.encode("utf-16"), "yaml"),
    "nul_bytes": (b"version: 1\x00\nname: m\n", "yaml"),
    "binary_garbage": (bytes(range(256)) * 16, "yaml"),
    "png_header": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "yaml"),
    "control_chars": ("version: 1\nname: \x07\x1b[31m\n", "yaml"),
    "bidi_name": ("version: 1\nname: \u202emodel\nlayers: [{type: Dense, units: 1}]\n", "yaml"),
    "homoglyph_type": (VALID.replace("type: Flatten", "type: Flаtten"), "yaml"),  # Cyrillic a
    "tabs": ("version: 1\n\tname: m\n", "yaml"),
    "two_documents": (VALID + "---\n" + VALID, "yaml"),
    "duplicate_keys": ("version: 1\nversion: 1\nname: m\n", "yaml"),
    "complex_key": ("? [a, b]\n: 1\nversion: 1\n", "yaml"),
    "layers_mapping": ("version: 1\nname: m\nlayers: {type: Dense, units: 1}\n", "yaml"),
    "layer_list_entry": ("version: 1\nname: m\nlayers: [[Dense, 3]]\n", "yaml"),
    "layer_string_entry": ("version: 1\nname: m\nlayers: [Dense]\n", "yaml"),
    "inputs_string": ("version: 1\nname: m\ninputs: image\nlayers: [{type: Flatten}]\n", "yaml"),
    "shape_mapping": (
        "version: 1\nname: m\ninputs: [{name: x, shape: {h: 28}}]\nlayers: [{type: Flatten}]\n",
        "yaml",
    ),
    "units_string": (VALID.replace("units: 10", "units: ten"), "yaml"),
    "units_negative": (VALID.replace("units: 10", "units: -10"), "yaml"),
    "units_huge": (VALID.replace("units: 10", "units: 123456789012345678901234567890"), "yaml"),
    "filters_zero": (VALID.replace("filters: 32", "filters: 0"), "yaml"),
    "kernel_too_large": (VALID.replace("kernel_size: 3", "kernel_size: 99"), "yaml"),
    "kernel_short_list": (VALID.replace("kernel_size: 3", "kernel_size: [3]", 1), "yaml"),
    "kernel_float": (VALID.replace("kernel_size: 3", "kernel_size: 2.5", 1), "yaml"),
    "missing_type": (VALID.replace("type: Flatten", "kind: Flatten"), "yaml"),
    "unknown_field": (VALID.replace("units: 10", "units: 10\n    unitz: 3"), "yaml"),
    "unknown_optimizer_field": (
        VALID.replace("learning_rate: 0.001", "learning_rate: 0.001, lr: 1"),
        "yaml",
    ),
    "missing_layers": (VALID.split("layers:")[0], "yaml"),
    "unicode_everywhere": (
        "version: 1\nname: модель\ninputs: [{name: 入力, shape: [3]}]\n"
        "layers: [{type: Dense, units: 1, name: 層}]\n",
        "yaml",
    ),
    "emoji_keys": ("version: 1\nname: m\n\U0001f600: 1\nlayers: [{type: Flatten}]\n", "yaml"),
    "long_line": ("version: 1\nname: " + "a" * 1_000_000 + "\n", "yaml"),
    "many_layers_invalid": (
        "version: 1\nname: m\ninputs: [{name: x, shape: [4]}]\nlayers:\n"
        + "  - {type: Dense, units: 0}\n" * 5000,
        "yaml",
    ),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_hostile_input(name):
    text, fmt = NAMED[name]
    result = timed_check(text, fmt)
    assert_clean_rejection(result)


def test_ten_megabyte_file(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(VALID.encode() + b"# " + b"x" * (10 * 1024 * 1024) + b"\n")
    start = time.perf_counter()
    result = check_file(big)
    assert time.perf_counter() - start < TIME_LIMIT
    assert_clean_rejection(result)
    assert "larger than" in result.errors[0].message


# --------------------------------------------------------------------------- the CLI

runner = CliRunner()


def _write(tmp_path: Path, name: str, content: bytes | str, fmt: str) -> Path:
    path = tmp_path / f"{name}.{'json' if fmt == 'json' else 'yaml'}"
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", sorted(NAMED))
def test_cli_in_process(tmp_path, name):
    text, fmt = NAMED[name]
    path = _write(tmp_path, name, text, fmt)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert re.search(re.escape(str(path)) + r":\d+:\d+: ", result.output), result.output
    # the same through --format json: data a tool can read
    result = runner.invoke(app, ["validate", "--format", "json", str(path)])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    diags = payload[0]["diagnostics"]
    assert diags and all(d["line"] >= 1 and d["column"] >= 1 for d in diags)
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output


@FUZZ
@given(case=mutated())
def test_cli_on_mutated_specs(tmp_path_factory, case):
    text, fmt = case
    path = _write(tmp_path_factory.mktemp("m"), "spec", text, fmt)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert re.search(r":\d+:\d+: ", result.output)


def test_cli_usage_errors_exit_2(tmp_path):
    for args in (
        ["validate", str(tmp_path / "missing.yaml")],
        ["validate", str(tmp_path)],
        ["summary", "specs/mnist_cnn.yaml", "--format", "yaml"],
        ["validate"],
        ["frobnicate"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


SUBPROCESS_SAMPLE = [
    "alias_bomb",
    "binary_garbage",
    "deep_json",
    "empty",
    "python_object",
    "lone_surrogate_json",
    "huge_int_json",
    "latin1_bytes",
    "kernel_too_large",
]


def _limit_memory():  # pragma: no cover - runs in the child
    import resource

    limit = 2 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.skipif(not SPECC.exists(), reason="specc console script not installed")
def test_real_executable_bounded(tmp_path):
    """The installed `specc` under a 2 GB memory limit and a time limit: exit 1, no traceback."""
    paths = [_write(tmp_path, n, *NAMED[n]) for n in SUBPROCESS_SAMPLE]
    big = tmp_path / "ten_mb.yaml"
    big.write_bytes(b"version: 1\n" + b"a" * (10 * 1024 * 1024))
    paths.append(big)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "100"}
    proc = subprocess.run(
        [str(SPECC), "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        preexec_fn=_limit_memory if sys.platform.startswith("linux") else None,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    for path in paths:  # every file got its own located diagnostic
        assert re.search(re.escape(str(path)) + r":\d+:\d+: ", output), (path, output)


# --------------------------------------------------------------------------- regression corpus


def _corpus():
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".json"))


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_fuzz_corpus(path):
    """Inputs that once failed. ``<name>.expect`` holds 'ok' or lines 'error: <text>'."""
    expect_file = path.with_suffix(".expect")
    expected = expect_file.read_text().splitlines() if expect_file.exists() else []
    result = timed_check(path.read_bytes(), "json" if path.suffix == ".json" else "yaml")
    if expected == ["ok"]:
        assert result.ok, [d.format() for d in result.diagnostics]
        return
    assert_clean_rejection(result)
    messages = "\n".join(d.format() for d in result.diagnostics)
    for line in expected:
        kind, _, text = line.partition(": ")
        if kind == "error":
            assert text in messages, (text, messages)
        elif kind == "not":
            assert text not in messages, (text, messages)


def test_corpus_is_not_empty():
    assert len(_corpus()) >= 5
