"""One page per paper table: ours / paper / difference in paired columns (ours alone where the
paper has no number for the table), and the protocol.

The cells are `tables.compute`'s numbers (mean over seeds, Wilson interval), the same as
`tableN.md`; `paper.counterparts` puts the paper's number for the same method and setting
beside each, and says where the setup differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from robustbench_lr import leaderboard, paper, results, stats, tables


@dataclass
class PaperTable:
    """A rendered table's page: header groups, body rows and the notes under it."""

    name: str
    title: str
    index: list[str]
    groups: list[str] = field(default_factory=list)  # one per across-label: ours/paper/Δ
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def paired(self) -> bool:
        """Whether any cell has the paper's number: a table the paper has none for (the
        corruption and shift tracks, or settings it did not measure) shows one column per
        setting, not empty paper and Δ ones."""
        return any(cell["paper"] is not None for row in self.rows for cell in row["cells"].values())


def _ours(row: pd.Series, digits: int) -> dict[str, Any]:
    if pd.isna(row["mean"]):
        return {"text": "—", "value": None, "hover": "run, but undefined"}
    text = stats.estimate_text(float(row["mean"]), float(row["std"]), int(row["count"]), digits)
    hover = stats.interval_text(row["lo"], row["hi"], digits)
    hover = f"95 % interval {hover}; " if hover else ""
    return {
        "text": text,
        "value": float(row["mean"]),
        "hover": f"{hover}{int(row['count'])} seed(s)",
    }


def build(frame: pd.DataFrame, spec: tables.TableSpec) -> PaperTable:
    """The page of one table spec ("not run" with the reason when this run has no rows)."""
    computed = tables.compute(frame, spec)
    page = PaperTable(spec.name, spec.title, list(spec.index))
    if computed.numbers is None:
        page.skipped = computed.skipped_reason
        return page
    numbers = tables.paper_beside(computed.numbers, spec)
    lines: dict[tuple, dict[str, Any]] = {}
    for _, row in numbers.iterrows():
        label = " ".join(tables.cell_label(c, row[c]) for c in spec.across) or "value"
        if label not in page.groups:
            page.groups.append(label)
        key = tuple(row[c] for c in spec.index)
        shown = [str(tables.setting_text(c, k)) for c, k in zip(spec.index, key, strict=True)]
        line = lines.setdefault(key, {"key": shown, "cells": {}})
        ours = _ours(row, spec.digits)
        ref = row["paper_value"]
        cell = {"ours": ours, "paper": None, "diff": None, "setup": row["paper_setup"]}
        if pd.notna(ref):
            cell["paper"] = f"{ref:g}"
            if ours["value"] is not None:
                cell["diff"] = f"{ours['value'] - ref:+.{spec.digits}f}"
        line["cells"][label] = cell
    page.rows = list(lines.values())
    page.notes = paper.setup_differences(numbers)
    if "box" in numbers and (numbers["box"] == "black").any():
        page.notes.append(results.black_box_note(frame))
    if spec.note:
        page.notes.append(spec.note)
    return page


def autoattack_note(board: pd.DataFrame) -> str:
    """Which AutoAttack the audit columns report (the authors' package or the port)."""
    if board.empty or "autoattack_source" not in board:
        return ""
    sources = sorted(set(board["autoattack_source"].dropna()))
    return "; ".join(f"AutoAttack: {leaderboard.AUTOATTACK_NAMES[s]}" for s in sources)


def build_all(frame: pd.DataFrame) -> list[PaperTable]:
    """Every registered table, in registry order."""
    return [build(frame, tables.TABLES.get(name)) for name in tables.TABLES.names()]
