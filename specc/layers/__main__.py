"""``python -m specc.layers``: rewrite ``_index.py`` from the layer modules."""

from pathlib import Path

from . import index_source

path = Path(__file__).with_name("_index.py")
path.write_text(index_source(), encoding="utf-8")
print(f"wrote {path}")
