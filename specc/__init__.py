"""specc: a declarative model-spec compiler for neural networks.

Library API (imports nothing heavy; no framework is imported):

    import specc
    result = specc.check_file("specs/mnist_cnn.yaml")   # never raises for a bad spec
    if result.ok:
        print(specc.summarize(result.model)["total_params"])
    for d in result.diagnostics:
        print(d.format())

    model = specc.load("specs/mnist_cnn.yaml")          # raises specc.SpecError
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "check_file": "pipeline",
    "check_text": "pipeline",
    "check_data": "pipeline",
    "Result": "pipeline",
    "load": "api",
    "loads": "api",
    "summarize": "summary",
    "Diagnostic": "diagnostics",
    "SpecError": "diagnostics",
    "ModelIR": "ir",
    "LayerIR": "ir",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    # Lazy so that `import specc` stays fast: pydantic is imported on first use.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"specc.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'specc' has no attribute {name!r}")
