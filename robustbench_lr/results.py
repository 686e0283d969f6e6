"""The one tidy long-format results file every table, plot, leaderboard and gate reads.

One row = one number: `value` of `metric` for one model (dataset, arch, width, method, seed,
checkpoint) under one experiment (attack, box, source, backend, eps, steps, alpha, param).
Rows are keyed by every column except `value` and `n`; appending a row whose key exists
replaces it, so re-running a command never duplicates and the bench can skip finished work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lr.io import atomic_write

COLUMNS = [
    "dataset",
    "arch",
    "width",
    "method",
    "seed",
    "checkpoint",
    "experiment",
    "attack",
    "box",
    "source",
    "backend",
    "eps",
    "steps",
    "alpha",
    "param",
    "metric",
    "value",
    "n",
    "device",
]
# `device` (where the model was trained: bf16 on CUDA, float32 on CPU) describes a row rather
# than identifying it, so a re-run elsewhere still replaces its row instead of doubling it.
KEY = [c for c in COLUMNS if c not in ("value", "n", "device")]
# Columns added after results files were first written, with what an older file implies.
LATER_COLUMNS = {"device": ""}
_NUMERIC = {
    "width": float,
    "seed": int,
    "eps": float,
    "steps": int,
    "alpha": float,
    "value": float,
    "n": int,
}
_DEFAULTS: dict[str, Any] = {"width": 1.0, "seed": 0, "eps": 0.0, "steps": 0, "alpha": 0.0, "n": 0}


def model_fields(meta: Mapping[str, Any], checkpoint: str | Path) -> dict[str, Any]:
    """The columns that identify a model, taken from its checkpoint's meta.json."""
    cfg = meta["config"]
    return {
        "dataset": cfg["dataset"],
        "arch": cfg["arch"],
        "width": float(cfg["width"]),
        "method": cfg["method"],
        "seed": int(cfg["seed"]),
        "checkpoint": str(checkpoint),
        "device": meta.get("device", ""),
    }


def make_row(**fields: Any) -> dict[str, Any]:
    """A complete row: unknown columns are an error, missing ones get neutral defaults."""
    stray = set(fields) - set(COLUMNS)
    if stray:
        raise KeyError(f"unknown result columns {sorted(stray)}; columns are {COLUMNS}")
    row = {c: fields.get(c, _DEFAULTS.get(c, "")) for c in COLUMNS}
    for column, kind in _NUMERIC.items():
        row[column] = kind(row[column])
    return row


def read(path: str | Path) -> pd.DataFrame:
    """The results file as a DataFrame with typed columns (empty frame if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=_NUMERIC.get(c, object)) for c in COLUMNS})
    frame = pd.read_csv(
        path, keep_default_na=False, dtype={c: str for c in COLUMNS if c not in _NUMERIC}
    )
    for column, implied in LATER_COLUMNS.items():
        if column not in frame.columns:
            frame[column] = implied
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a robustbench-lr results file: missing columns {missing}")
    for column, kind in _NUMERIC.items():
        frame[column] = frame[column].astype(kind)
    return frame


def read_many(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Several results files concatenated (leaderboards merge runs)."""
    frames = [read(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else read("/nonexistent")


def _key_strings(frame: pd.DataFrame, columns: list[str] = KEY) -> pd.Series:
    return frame[columns].astype(str).agg("\x1f".join, axis=1)


def append(
    path: str | Path, rows: Iterable[Mapping[str, Any]], trace: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Add rows, replacing any existing row with the same key; written atomically.

    `trace` names key columns along which the new rows are one whole trace (a bisection's
    evaluated ε): old rows that match a new row on every other key column are dropped too, so
    a re-run whose search visits other points leaves none of the old run's points behind.
    """
    new = pd.DataFrame([make_row(**r) for r in rows], columns=COLUMNS)
    if new.empty:
        return read(path)
    old = read(path)
    if not old.empty:
        old = old[~_key_strings(old).isin(set(_key_strings(new)))]
    if trace and not old.empty:
        scope = [c for c in KEY if c not in trace]
        old = old[~_key_strings(old, scope).isin(set(_key_strings(new, scope)))]
    merged = pd.concat([old, new], ignore_index=True) if not old.empty else new
    merged = merged.drop_duplicates(subset=KEY, keep="last")
    # NaN (e.g. an analysis with no examples to measure) is written as "nan", which `read`
    # parses back; pandas' default empty field would not survive `keep_default_na=False`.
    atomic_write(path, lambda tmp: merged.to_csv(tmp, index=False, na_rep="nan"))
    return merged


def has_rows(frame: pd.DataFrame, **match: Any) -> bool:
    """Whether any row matches every given column value (the bench's "already done?" test)."""
    if frame.empty:
        return False
    mask = pd.Series(True, index=frame.index)
    for column, value in match.items():
        mask &= frame[column] == (_NUMERIC[column](value) if column in _NUMERIC else str(value))
    return bool(mask.any())
