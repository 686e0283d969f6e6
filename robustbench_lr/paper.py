"""The paper's number beside each of ours, even where our setup is not the paper's.

`tables.compute` joins the packaged reference on dataset, architecture, method and the table's
columns, so on the cpu profile's digits networks (the paper used CIFAR) nothing matches and the
paper's numbers end up far from ours. Readers compare anyway; this module pairs each of our
cells with the paper's cell for the same method and setting, preferring the same dataset and
architecture, and says in words what differs, so the comparison is shown and qualified rather
than hidden.
"""

from __future__ import annotations

import pandas as pd

from robustbench_lr import tables


def _key(value: object) -> str:
    """A join key that survives float noise (ε = 32/255 read back from a CSV)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def counterparts(numbers: pd.DataFrame, spec: tables.TableSpec) -> pd.DataFrame:
    """`numbers` (from `tables.compute`) plus `paper_value` and `paper_setup` per row.

    `paper_setup` is '' where the paper measured the same dataset and architecture, else a
    phrase such as "paper: cifar10 resnet50". Rows the paper has no number for keep NaN.
    """
    ref = tables.reference()
    ref = tables.select(ref[ref["table"] == spec.name], {}, spec.from_param)
    out = numbers.copy()
    out["paper_value"] = float("nan")
    out["paper_setup"] = ""
    if ref.empty:
        return out
    join = ["method", *(c for c in spec.across if c in ref.columns)]
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
    notes = []
    for (setup, dataset, arch, width), _ in shown.groupby(
        ["paper_setup", "dataset", "arch", "width"], sort=True
    ):
        notes.append(
            f"ours: {dataset} {arch} (width {float(width):g}); {setup} at full width, with the "
            "paper's epochs: compare the trend across methods, not the values."
        )
    return notes
