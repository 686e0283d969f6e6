"""The paper's tables, each one declarative spec rendered from the results file.

`engine.py` selects, pools seeds and writes CSV + Markdown; `specs.py` declares the tables;
this module registers them in `TABLES`, in the order the report shows them.
"""

from __future__ import annotations

from robustbench_lr.registry import Registry
from robustbench_lr.tables.engine import (
    RenderedTable,
    TableSpec,
    cell_label,
    compute,
    paper_beside,
    render,
    setting_text,
)
from robustbench_lr.tables.specs import ALL_METHODS, LR_METHODS, SPECS

__all__ = [
    "ALL_METHODS",
    "LR_METHODS",
    "TABLES",
    "RenderedTable",
    "TableSpec",
    "cell_label",
    "compute",
    "paper_beside",
    "render",
    "setting_text",
]

TABLES: Registry[TableSpec] = Registry("table")
for _spec in SPECS:
    TABLES.add(_spec.name, _spec)
