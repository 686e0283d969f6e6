"""The paper's number beside each of ours, even where our setup is not the paper's.

The packaged reference holds the paper's numbers for CIFAR networks; the cpu profile measures
digits networks at a quarter width, so an exact join on dataset and architecture finds nothing
and the paper's numbers would sit apart from ours. Readers compare anyway; this module pairs
each of our cells with the paper's cell for the same method and setting, preferring the same
dataset and architecture, and says in words what differs, so the comparison is shown and
qualified rather than hidden. The Markdown tables and the HTML site both use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def _key(value: object) -> str:
    """A join key that survives float noise (ε = 32/255 read back from a CSV)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def counterparts(numbers: pd.DataFrame, ref: pd.DataFrame, across: Sequence[str]) -> pd.DataFrame:
    """`numbers` plus `paper_value` and `paper_setup` per row, from the reference rows `ref`
    of the same table (with the table's `across` columns, e.g. box, eps, steps, p).

    `paper_setup` is '' where the paper measured the same dataset and architecture, else a
    phrase such as "paper: cifar10 resnet50". Rows the paper has no number for keep NaN.
    """
    out = numbers.copy()
    out["paper_value"] = float("nan")
    out["paper_setup"] = ""
    if ref.empty:
        return out
    join = ["method", *(c for c in across if c in ref.columns)]
    lookup: dict[tuple, list[pd.Series]] = {}
    for _, row in ref.iterrows():
        lookup.setdefault(tuple(_key(row[c]) for c in join), []).append(row)
    for index, row in out.iterrows():
        found = lookup.get(tuple(_key(row[c]) for c in join), [])
        if not found:
            continue
        best = max(
            found,
            key=lambda r: (r["dataset"] == row["dataset"]) * 2 + (r["arch"] == row["arch"]),
        )
        out.at[index, "paper_value"] = float(best["value"])
        if (best["dataset"], best["arch"]) != (row["dataset"], row["arch"]):
            out.at[index, "paper_setup"] = f"paper: {best['dataset']} {best['arch']}"
    return out


def setup_differences(numbers: pd.DataFrame) -> list[str]:
    """One sentence per distinct way our setup differs from the paper's (`counterparts` rows)."""
    shown = numbers[numbers["paper_setup"] != ""]
    return [
        f"ours: {dataset} {arch} (width {float(width):g}); {setup} at full width, with the "
        "paper's epochs: compare the trend across methods, not the values."
        for (setup, dataset, arch, width), _ in shown.groupby(
            ["paper_setup", "dataset", "arch", "width"], sort=True
        )
    ]
