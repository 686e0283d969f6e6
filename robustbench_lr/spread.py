"""Measured variation for the regression gate: how far a number moves when only the rounding or
the seed changes.

The gate compares bit for bit only rows computed on the same numeric path
(`numerics.comparison_key`); elsewhere a drop counts only beyond the variation measured on the
baseline's own jobs: the numerics spread (the same jobs re-run under `numerics.PERTURBED`,
`regress --measure-spread`) plus the seed spread (models differing only by their seed). Each is
the largest absolute move in its (experiment, attack, metric) group, so no tolerance is a
constant typed in; a group with nothing measured has none (NaN), and the gate says so and falls
back to the statistical rule.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustbench_lr import results
from robustbench_lr.files import atomic_write_text

GROUP = ["experiment", "attack", "metric"]
COLUMNS = [*GROUP, "numerics_spread", "seed_spread", "tolerance", "rows"]
SUFFIX = ".spread.csv"


class SpreadFileError(ValueError):
    """A spread file that is not one this module wrote."""


def path_for(baseline: str | Path) -> Path:
    """Where a baseline's spread lives: `smoke.csv` -> `smoke.spread.csv` beside it."""
    baseline = Path(baseline)
    return baseline.with_name(baseline.stem + SUFFIX)


def _identity(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows indexed by their key wherever they were made (`results.placeless`)."""
    return results.placeless(frame).set_index(results.PLACELESS_KEY)


def _largest_move(moves: pd.DataFrame, column: str) -> pd.Series:
    finite = moves.dropna(subset=[column])
    return finite.groupby(GROUP)[column].max() if len(finite) else pd.Series(dtype=float)


def numerics_spread(baseline: pd.DataFrame, perturbed: list[pd.DataFrame]) -> pd.Series:
    """Per group, the largest |value| move of a baseline row re-run under another code path."""
    base = _identity(baseline)["value"]
    moves = []
    for frame in perturbed:
        other = _identity(frame)["value"]
        joined = base.to_frame("a").join(other.to_frame("b"), how="inner")
        moves.append((joined["a"] - joined["b"]).abs().rename("move"))
    if not moves:
        return pd.Series(dtype=float)
    return _largest_move(pd.concat(moves).reset_index(), "move")


def seed_spread(frame: pd.DataFrame) -> pd.Series:
    """Per group, the largest |value| difference between seeds of one configuration."""
    rows = _identity(frame).reset_index()
    config = [c for c in results.KEY if c not in ("checkpoint", "seed", "source")]
    spans = rows.groupby(config, dropna=False)["value"].agg(["max", "min", "count"]).reset_index()
    spans = spans[spans["count"] > 1]
    spans["move"] = spans["max"] - spans["min"]
    return _largest_move(spans, "move")


def measure(baseline: pd.DataFrame, perturbed: list[pd.DataFrame]) -> pd.DataFrame:
    """The spread table of `baseline` (one row per group of it)."""
    groups = baseline.groupby(GROUP).size().rename("rows")
    table = groups.to_frame()
    table["numerics_spread"] = numerics_spread(baseline, perturbed)
    table["seed_spread"] = seed_spread(baseline)
    measured = table[["numerics_spread", "seed_spread"]]
    table["tolerance"] = measured.fillna(0).sum(axis=1).where(measured.notna().any(axis=1))
    return table.reset_index()[COLUMNS]


def write(path: str | Path, table: pd.DataFrame) -> None:
    atomic_write_text(Path(path), table[COLUMNS].to_csv(index=False, float_format="%.6g"))


def read(path: str | Path) -> pd.DataFrame:
    """A spread file; a header that is not `COLUMNS` is refused, naming the file."""
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SpreadFileError(f"spread file {path} is not a CSV ({err})") from None
    if list(table.columns) != COLUMNS:
        raise SpreadFileError(
            f"spread file {path} has columns {list(table.columns)}; expected {COLUMNS}"
        )
    # An empty name (the analyses' rows have no attack) is "", as in results files, not NaN:
    # read as NaN it would match no row, and those rows would lose their measured tolerance.
    table[GROUP] = table[GROUP].astype(object).where(table[GROUP].notna(), "")
    return table


def tolerances(rows: pd.DataFrame, table: pd.DataFrame | None) -> pd.Series:
    """Each row's measured tolerance (NaN where its group was not measured)."""
    if table is None or table.empty:
        return pd.Series(float("nan"), index=rows.index)
    lookup = table.set_index(GROUP)["tolerance"]
    keys = pd.MultiIndex.from_frame(rows[GROUP].astype(str))
    lookup.index = pd.MultiIndex.from_frame(lookup.index.to_frame().astype(str))
    return pd.Series(lookup.reindex(keys).to_numpy(), index=rows.index, dtype=float)
