"""The leaderboard's columns for the threat tracks beside L∞, one row of `COLUMNS` each.

The leaderboard ranks by the L∞ threat; these columns sit beside it, each built from its own
rows so the threats never mix (an L2 row is selected by `threat = "L2"`, never by ε alone):
- `l2_pgd_acc`, `l2_autoattack_acc`: RobustBench's L2 track (`attacks.l2`) at each dataset's
  L2 ε (`data.l2_eps`), white-box.
- `cifar10.1_acc`, `cinic10_acc`: accuracy under natural distribution shifts (`shifts.py`).
- `train_seconds`, `train_peak_memory_mb`, `attack_seconds`, `audit_seconds`: what the model
  cost (`cost.py`; rows of the report's `cost.csv`, as FastAT Benchmark reports them).
Each entry is (kind, match): `kind` is "acc" (in %, with Wilson intervals) or "cost";
`match` selects the column's rows the way `tables.engine.select` reads it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from robustbench_lr import attacks

L2 = {"experiment": "attack", "box": "white", "metric": "acc", "threat": "L2"}
COST = {"experiment": "cost"}
COLUMNS: dict[str, tuple[str, dict[str, Any]]] = {
    "l2_pgd_acc": ("acc", {**L2, "attack": attacks.filling("l2_pgd_acc")}),
    "l2_autoattack_acc": ("acc", {**L2, "attack": attacks.filling("l2_autoattack_acc")}),
    "cifar10.1_acc": ("acc", {"experiment": "shift", "attack": "cifar10.1", "metric": "acc"}),
    "cinic10_acc": ("acc", {"experiment": "shift", "attack": "cinic10", "metric": "acc"}),
    "train_seconds": ("cost", {**COST, "attack": "train", "metric": "seconds"}),
    "train_peak_memory_mb": ("cost", {**COST, "attack": "train", "metric": "peak_memory_mb"}),
    "attack_seconds": ("cost", {**COST, "attack": "attacks", "metric": "seconds"}),
    "audit_seconds": ("cost", {**COST, "attack": "audit", "metric": "seconds"}),
}
ACCURACIES = tuple(name for name, (kind, _) in COLUMNS.items() if kind == "acc")
COSTS = tuple(name for name, (kind, _) in COLUMNS.items() if kind == "cost")


def info(row: pd.Series, number: Any) -> dict[str, Any]:
    """The model_info JSON fields of these columns (`number` rounds as the leaderboard does)."""
    fields = {name: number(row.get(name)) for name in ACCURACIES}
    fields["l2_eps"] = number(row.get("l2_eps"))
    fields["cost"] = {
        "training_time_s": number(row.get("train_seconds")),
        "peak_memory_mb": number(row.get("train_peak_memory_mb")),
        "training_device": row.get("device") or None,
        "attack_time_s": number(row.get("attack_seconds")),
        "audit_time_s": number(row.get("audit_seconds")),
    }
    return fields


def notes(table: pd.DataFrame) -> list[str]:
    """What the track columns present in `table` measure, one line each."""
    lines = []
    if "l2_eps" in table and table["l2_eps"].notna().any():
        shown = table.dropna(subset=["l2_eps"])
        eps = ", ".join(
            sorted({f"{d} {e:.3g}" for d, e in zip(shown["dataset"], shown["l2_eps"], strict=True)})
        )
        lines.append(
            "`l2_pgd_acc`, `l2_autoattack_acc`: the L2 threat (RobustBench's L2 track), "
            f"PGD-L2 and the authors' standard AutoAttack at each dataset's L2 ε ({eps})."
        )
    if any(c in table and table[c].notna().any() for c in COSTS):
        lines.append(
            "Cost: `train_seconds` and `train_peak_memory_mb` (process peak RSS on the CPU, "
            "CUDA max allocated on a GPU) from training; `attack_seconds` (attacks, minimum-ρ "
            "searches, L2) and `audit_seconds` from the bench's ledger (`cost.csv`)."
        )
    return lines
