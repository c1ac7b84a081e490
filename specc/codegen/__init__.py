"""Code generation shared by the code targets (specc/targets/keras, specc/targets/pytorch):
a ModelIR lowered to a plain render model per target, rendered by the jinja2 templates in
``templates/<target>/`` (StrictUndefined; templates only format what Python prepared), and
the training scripts (``training.py``). Never imports a framework.

    from specc.codegen import generate
    code = generate(model, "pytorch")          # raises CodegenError with diagnostics
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..diagnostics import Diagnostic, SpecError
from ..ir import ModelIR

#: the targets whose output is Python code
TARGETS = ("keras", "pytorch")


class CodegenError(SpecError):
    """The spec is valid but a target cannot express it exactly; carries located diagnostics."""


def template_dir() -> Path:
    """Templates shipped in the package (``specc/templates``), else the repository's."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "keras").is_dir():
            return candidate
    raise FileNotFoundError(f"specc templates not found next to {package}")


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: dict) -> str:
    return _environment().get_template(template).render(**context)


def generate(model: ModelIR, target: str, source=None, with_training: bool = False) -> str:
    """The source code of ``model`` for ``target`` ('keras' or 'pytorch').

    ``source`` (the parsed spec, optional) locates refusals at a line and column.
    ``with_training``: append a runnable training script for the spec's ``training:``
    section (``specc.codegen.training``); refused when the spec has none.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    from ..targets import get

    return get(target).emit(model, source, with_training=with_training)


def generate_code(model: ModelIR, target: str, lower, source=None, with_training=False) -> str:
    """Render ``lower(model, source)`` (a target's (template, context)), with the training
    script appended when asked."""
    template, context = lower(model, source)
    if with_training:
        from .training import training_context

        template, context = training_context(model, target, source, template, context)
    return render(template, context)


def refusal(
    model: ModelIR,
    source,
    message: str,
    *,
    layer=None,
    field: str | None = None,
    path: tuple | None = None,
    hint: str | None = None,
) -> Diagnostic:
    """A located diagnostic for something the target cannot express."""
    from ..errors import layer_label

    if path is None and layer is not None:
        path = ("layers", layer.index) + ((field,) if field else ())
    source = source if source is not None else model.source
    line, column = source.locate(path or ()) if source is not None else (1, 1)
    label = None
    if layer is not None:
        data = source.data if source is not None else None
        label = layer_label(data, layer.index, layer.name)
    diagnostic = Diagnostic(
        message,
        file=model.file,
        line=line,
        column=column,
        layer=label,
        hint=hint,
        code="unsupported",
    )
    if getattr(model, "expansion", None) is not None:  # inside a block: name the instance
        from ..blocks import attach_context

        (diagnostic,) = attach_context([diagnostic], model.expansion)
    return diagnostic
