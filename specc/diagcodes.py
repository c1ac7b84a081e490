"""Every diagnostic code specc reports, declared once: its name, severity and one line of
documentation (in the spirit of mypy's ``errorcodes.py``).

Program logic compares codes with these constants (``d.code == codes.IO``), never with
message text or string literals. ``docs/diagnostics.md`` is generated from this registry
(``make docs``; a test fails when it is stale), and a diagnostic with an unregistered code
cannot be constructed.
"""

from __future__ import annotations

ERROR = "error"
WARNING = "warning"

#: stage names, in pipeline order, for the generated documentation
STAGES = ("read", "parse", "fields", "graph", "shapes", "training", "target", "run")


class Code(str):
    """A registered diagnostic code. It *is* its name (a ``str``), so JSON output and
    comparisons use the name, and it carries its default severity, stage and documentation."""

    severity: str
    stage: str
    doc: str

    def __new__(cls, name: str, severity: str, stage: str, doc: str) -> Code:
        self = super().__new__(cls, name)
        self.severity = severity
        self.stage = stage
        self.doc = doc
        return self


REGISTRY: dict[str, Code] = {}


def _code(name: str, severity: str, stage: str, doc: str) -> Code:
    if name in REGISTRY:
        raise ValueError(f"diagnostic code {name!r} is declared twice")
    if severity not in (ERROR, WARNING) or stage not in STAGES:
        raise ValueError(f"diagnostic code {name!r}: bad severity or stage")
    REGISTRY[name] = code = Code(name, severity, stage, doc)
    return code


def lookup(name: str) -> Code:
    """The registered code called ``name``; ValueError for an unregistered one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unregistered diagnostic code {name!r}: declare it in specc/diagcodes.py"
        ) from None


# --------------------------------------------------------------------------- read / parse
IO = _code(
    "io", ERROR, "read", "The spec file cannot be read: missing, a directory, or unreadable."
)
TOO_LARGE = _code(
    "too-large",
    ERROR,
    "parse",
    "The file, its expanded YAML, or the model's weights or activations exceed a size limit.",
)
EMPTY = _code("empty", ERROR, "parse", "The file holds no document.")
ENCODING = _code("encoding", ERROR, "parse", "The file is not UTF-8 text (bad bytes or NUL bytes).")
SYNTAX = _code(
    "syntax", ERROR, "parse", "YAML or JSON syntax error, located at the offending character."
)
TOO_DEEP = _code("too-deep", ERROR, "parse", "The document nests more than 100 levels.")
TAG = _code(
    "tag", ERROR, "parse", "A YAML tag or merge key (`!!python/...`, `<<`): specs hold plain data."
)
DUPLICATE_KEY = _code("duplicate-key", ERROR, "parse", "A mapping holds the same key twice.")

# --------------------------------------------------------------------------- fields
TOP_LEVEL = _code(
    "top-level", ERROR, "fields", "The document is not a mapping with 'version', 'name', 'layers'."
)
VERSION = _code("version", ERROR, "fields", "The spec format version is not 1.")
MISSING_FIELD = _code("missing-field", ERROR, "fields", "A required field is missing.")
UNKNOWN_FIELD = _code(
    "unknown-field", ERROR, "fields", "A field the layer or section does not have (with a hint)."
)
UNKNOWN_TYPE = _code(
    "unknown-type", ERROR, "fields", "An unknown layer, optimizer, schedule or dataset type."
)
INVALID_TYPE = _code(
    "invalid-type", ERROR, "fields", "A value of the wrong kind (a string where a number goes)."
)
INVALID_VALUE = _code(
    "invalid-value", ERROR, "fields", "A value out of range or not one of the allowed choices."
)
INVALID_NAME = _code(
    "invalid-name", ERROR, "fields", "A name that is not an identifier of at most 64 characters."
)
INVALID = _code("invalid", ERROR, "fields", "Any other value the spec language does not accept.")

# --------------------------------------------------------------------------- blocks
BLOCK = _code(
    "block",
    ERROR,
    "fields",
    "A `blocks:` definition or instance that is malformed (name, inputs, layers, outputs).",
)
EXPRESSION = _code(
    "expression", ERROR, "fields", "A block expression (`${...}`) that cannot be evaluated."
)
RECURSIVE_BLOCK = _code(
    "recursive-block", ERROR, "fields", "A block that instantiates itself, directly or not."
)
UNKNOWN_PARAMETER = _code(
    "unknown-parameter", ERROR, "fields", "A block instance passes a parameter the block lacks."
)
MISSING_PARAMETER = _code(
    "missing-parameter",
    ERROR,
    "fields",
    "A block instance omits a parameter that has no default.",
)
PARAMETER_TYPE = _code(
    "parameter-type", ERROR, "fields", "A block argument of the wrong type for its parameter."
)
UNSUPPORTED_LAYER = _code(
    "unsupported-layer",
    ERROR,
    "fields",
    "A Keras layer type that specc knows of but does not support (with what to use instead).",
)

# --------------------------------------------------------------------------- graph
GRAPH = _code("graph", ERROR, "graph", "A problem with the layer graph not covered below.")
DUPLICATE_NAME = _code(
    "duplicate-name", ERROR, "graph", "Two layers or inputs share a name, or an output is repeated."
)
NO_INPUTS = _code("no-inputs", ERROR, "graph", "The spec declares no model input.")
UNKNOWN_REFERENCE = _code(
    "unknown-reference", ERROR, "graph", "A layer input or output names no layer or input."
)
CYCLE = _code("cycle", ERROR, "graph", "Layers feed each other in a cycle.")
AMBIGUOUS_INPUT = _code(
    "ambiguous-input", ERROR, "graph", "The first layer has several inputs to choose from."
)
ARITY = _code("arity", ERROR, "graph", "A layer gets the wrong number of inputs.")
UNUSED = _code("unused", WARNING, "graph", "A layer or input that no output depends on.")

# --------------------------------------------------------------------------- shapes
SHAPE = _code(
    "shape", ERROR, "shapes", "A layer cannot accept its input shape (rank, size, kernel)."
)

MASK_DROPPED = _code(
    "mask-dropped",
    WARNING,
    "shapes",
    "A layer Keras does not mask receives an Embedding's mask_zero mask and drops it (as Keras "
    "warns): the layers after it see the padding steps.",
)

MASK_CLEARED = _code(
    "mask-cleared",
    WARNING,
    "shapes",
    "An attention layer can run after a MultiHeadAttention that received an Embedding's mask: "
    "Keras's MultiHeadAttention clears the masks of the tensors it reads, so in Keras this "
    "layer may attend to the padding steps.",
)

# --------------------------------------------------------------------------- training
TRAINING = _code("training", ERROR, "training", "The training section does not fit the model.")
LOSS_OUTPUT = _code(
    "loss-output",
    ERROR,
    "training",
    "The loss does not fit the model's output: rank, units per class, binary vs categorical.",
)
LOSS_ACTIVATION = _code(
    "loss-activation",
    WARNING,
    "training",
    "The output activation contradicts `from_logits` (softmax/sigmoid with logits or without).",
)
DATASET_INPUT = _code(
    "dataset-input",
    ERROR,
    "training",
    "The dataset's samples do not fit the model input: shape, values, channels or dtype.",
)
DATASET_OUTPUT = _code(
    "dataset-output",
    ERROR,
    "training",
    "The dataset feeds one input and one output; the model has another number.",
)
METRIC_TASK = _code(
    "metric-task", ERROR, "training", "A metric that does not fit the task (accuracy with mse)."
)
TRAINING_SETTING = _code(
    "training-setting",
    ERROR,
    "training",
    "A validation split, batch size or augmentation that cannot work with the dataset.",
)
NO_TRAINING = _code(
    "no-training", ERROR, "run", "`specc train` was given a spec without a 'training:' section."
)

# --------------------------------------------------------------------------- targets
UNSUPPORTED = _code(
    "unsupported", ERROR, "target", "The chosen target cannot express a layer or setting."
)
ONNX_OPSET = _code(
    "onnx-opset", ERROR, "target", "The ONNX opset is out of range or too old for a layer."
)
ONNX_UNSUPPORTED = _code(
    "onnx-unsupported", ERROR, "target", "A layer or dtype has no ONNX lowering."
)
ONNX_WEIGHTS = _code(
    "onnx-weights", ERROR, "target", "A weights file does not fit the spec (missing, shape, dtype)."
)


EXAMPLE = "tests/cases/error_all_at_once/spec.yaml"  # relative to the repository


def _example_output() -> list[str]:
    """What `specc validate EXAMPLE` prints (run from the repository root)."""
    from .pipeline import check_file

    return [line for d in check_file(EXAMPLE).diagnostics for line in d.format().splitlines()]


def markdown() -> str:
    """docs/diagnostics.md: the registry as a table per stage."""
    lines = [
        "# Diagnostics",
        "",
        "<!-- generated from specc/diagcodes.py by `make docs`; do not edit -->",
        "",
        "Every problem specc reports is a *diagnostic*: a severity, a code from the table",
        "below, a message, the file, line and column, and the JSON path of the value",
        "(`layers[3].filters`, `training.optimizer`). The text format shows the source line",
        "with a caret under the value; `--format json` gives every field. Every independent",
        "problem is reported in one run, each once:",
        "",
        "<!-- runnable exit=1 -->",
        "```console",
        f"$ specc validate {EXAMPLE}",
        *_example_output(),
        "```",
        "",
        "`specc validate --strict` makes warnings fail too (exit 1).",
        "",
    ]
    titles = {
        "read": "Reading the file",
        "parse": "Parsing YAML / JSON",
        "fields": "Fields and values",
        "graph": "The layer graph",
        "shapes": "Shapes",
        "training": "Training section vs model",
        "target": "Targets (compile, ONNX)",
        "run": "Runs",
    }
    for stage in STAGES:
        rows = [c for c in REGISTRY.values() if c.stage == stage]
        if not rows:
            continue
        lines += [f"## {titles[stage]}", "", "| code | severity | meaning |", "|---|---|---|"]
        lines += [f"| `{c}` | {c.severity} | {c.doc.replace('|', chr(92) + '|')} |" for c in rows]
        lines.append("")
    return "\n".join(lines)
