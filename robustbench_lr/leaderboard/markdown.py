"""`leaderboard.md` and the per-model JSON files: the Markdown view of `build`'s numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

import robustbench_lr.leaderboard.tracks as board_tracks
from robustbench_lr import stats
from robustbench_lr.files import atomic_write_json, atomic_write_text
from robustbench_lr.leaderboard.build import model_info, model_name
from robustbench_lr.leaderboard.columns import (
    ACCURACIES,
    AUTOATTACK_NAMES,
    MODEL,
    ONE_PLACE,
    OPTIMALITY,
    OPTIMALITY_WIDTH,
    REPORTED,
    SIZES,
    SPREADS,
    Threat,
)


def _cell(row: pd.Series, column: str) -> str:
    """`mean ± std [lo, hi]` as the tables show it ('' when the model has no such number)."""
    mean = row[column]
    if pd.isna(mean):
        return ""
    places = 1 if column in ONE_PLACE else 3
    std, seeds = row[f"{column}_std"], int(row[f"{column}_seeds"])
    text = stats.estimate_text(mean, std, seeds, places, row[f"{column}_lo"], row[f"{column}_hi"])
    if column == "autoattack_acc" and row.get("autoattack_source") == "port":
        text += " †"
    return text


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    """The Markdown view of `build`'s numbers: one formatted cell per column."""
    head = ["rank", *MODEL, "seeds"]
    shown = table[head].astype(object).where(table[head].notna(), "")
    shown["seeds"] = table["seeds"].map(lambda s: "" if pd.isna(s) else str(int(s)))
    for column in (*ACCURACIES, *SIZES, *SPREADS, *board_tracks.COSTS):
        if table[column].notna().any():
            shown[column] = [_cell(row, column) for _, row in table.iterrows()]
    for column in REPORTED.values():
        if table[column].notna().any():
            shown[column] = table[column].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    shown["audit"] = table["audit"].astype(object).where(table["audit"].notna(), "")
    return shown


def _optimality_block(table: pd.DataFrame) -> str:
    """Attacks (rows) by models (columns): how close each audit attack came to the best one,
    `OPTIMALITY_WIDTH` models per table so it stays readable in a diff or a terminal."""
    columns = [c for c in table.columns if c.startswith(OPTIMALITY)]
    if not columns:
        return ""
    names = [model_name(row) for _, row in table.iterrows()]
    parts = []
    for start in range(0, len(names), OPTIMALITY_WIDTH):
        chunk = slice(start, start + OPTIMALITY_WIDTH)
        body = [
            [column.removeprefix(OPTIMALITY), *map(stats.number_text, table[column].iloc[chunk])]
            for column in columns
        ]
        headers = ["attack", *names[chunk]]
        parts.append(tabulate(body, headers, "github", disable_numparse=True, missingval=""))
    return (
        "\n## Attack optimality\n\nPer audit attack and model, the attack's optimality "
        "(in [0, 1], 1 = as strong as the best attack the audit ran; mean over seeds), "
        f"{OPTIMALITY_WIDTH} models per table in leaderboard order.\n\n" + "\n\n".join(parts) + "\n"
    )


def _notes(table: pd.DataFrame) -> str:
    """What the columns mean, where this table alone cannot say it."""
    lines = [
        "Accuracies in %: `mean ± std [lo, hi]` = mean over seeds ± their std (models with "
        "several seeds), and the 95 % Wilson interval of all seeds' test examples pooled.",
    ]
    if table.attrs.get("blackbox"):
        lines.append(f"`blackbox_acc`: {table.attrs['blackbox']}")
    sources = set(table["autoattack_source"].dropna())
    if "standard" in sources:
        lines.append(f"`autoattack_acc` = {AUTOATTACK_NAMES['standard']}, at the audit's ε.")
    if "port" in sources:
        mark = "† = " if "standard" in sources else "all from "
        lines.append(f"`autoattack_acc`: {mark}{AUTOATTACK_NAMES['port']}, at the audit's ε.")
    lines += board_tracks.notes(table)
    spread = table["numerics_spread"] if "numerics_spread" in table else pd.Series(dtype=float)
    if spread.notna().any():
        diverged = "; inf = that retraining diverged (its loss became non-finite)."
        lines.append(
            "`numerics_spread`: points the clean accuracy moved when the model was trained "
            "again under another code path (`numerics.PERTURBED`, same seed and data); a "
            "difference between two models smaller than it is noise"
            + (diverged if (spread == math.inf).any() else ".")
        )
    return "\n".join(f"- {line}" for line in lines)


def write(table: pd.DataFrame, threat: Threat, out: Path) -> list[Path]:
    """Write the Markdown leaderboard and one JSON per model (in `<out stem>_models/`)."""
    out = Path(out)
    eps = f"{threat.eps * 255:g}/255"
    if table.empty:
        text = f"# Leaderboard\n\nNo models with results for {threat.attack} at ε = {eps}.\n"
        return [atomic_write_text(out, text)]
    body = tabulate(
        _shown(table), headers="keys", tablefmt="github", showindex=False, disable_numparse=True
    )
    rank_by = table.attrs.get("rank_by", "robust_acc")
    text = (
        f"# Leaderboard\n\nThreat: L∞ {threat.attack}, ε = {eps}, {threat.steps} steps, white-box. "
        f"Ranked by `{rank_by}` (worst case per example over the audit's attacks when audited), then clean accuracy. "
        f"`audit` = fail flags models whose gradient-masking checks failed.\n\n{body}\n\n"
        f"{_notes(table)}\n{_optimality_block(table)}"
    )
    files = [atomic_write_text(out, text)]
    folder = out.parent / f"{out.stem}_models"
    for _, row in table.iterrows():
        info = model_info(row, threat)
        files.append(atomic_write_json(folder / (info["name"].replace("/", "__") + ".json"), info))
    return files
