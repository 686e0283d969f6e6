"""The paper's tables, each one declarative spec rendered from the results file.

`engine.py` selects, pools seeds and writes CSV + Markdown; `specs.py` declares the tables;
this module registers them in `TABLES`, in the order the report shows them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustbench_lr.registry import Registry
from robustbench_lr.tables.engine import (
    MODEL_INDEX,
    ModelColumn,
    RenderedTable,
    TableSpec,
    cell_label,
    compute,
    paper_beside,
    render,
    setting_text,
    summarize,
)
from robustbench_lr.tables.specs import ALL_METHODS, LR_METHODS, SPECS

__all__ = [
    "ALL_METHODS",
    "LR_METHODS",
    "MODEL_INDEX",
    "TABLES",
    "ModelColumn",
    "RenderedTable",
    "TableSpec",
    "cell_label",
    "compute",
    "paper_beside",
    "render",
    "render_all",
    "setting_text",
    "summarize",
]

TABLES: Registry[TableSpec] = Registry("table")
for _spec in SPECS:
    TABLES.add(_spec.name, _spec)


def render_all(
    frame: pd.DataFrame, out_dir: Path, names: list[str] | None = None
) -> list[RenderedTable]:
    """Render every table (or `names`); tables without data come back with a skip reason."""
    return [render(frame, TABLES.get(name), out_dir) for name in (names or TABLES.names())]
