"""The regression gate: fail when robustness numbers drop against a committed baseline.

Rows are matched on the results key without the machine-specific checkpoint path (a baseline
made in one folder must gate a run made in another). A metric is judged by its kind:
- accuracies (percent; `*acc*` metrics) may drop at most `tol_pp` points;
- perturbation sizes (`rho`, `eps*` metrics: bigger = more robust) may fall at most `tol_rel`;
- every other number is informational (shown in the diff when it changed, never fails).
A baseline row missing from the new results fails the gate too: silence is not a pass. For the
same reason a comparison of nothing is refused outright (a ValueError, not a verdict): an empty
baseline, empty new results, or two files that share no row at all.
Rows of models trained on different devices are not compared at all: bf16 training on CUDA
lands a few points away from float32 on the CPU (measured on the smoke profile: 1-LR clean
93.6 vs 95.8 %), which is not a regression. Keep one baseline per device.

How an accuracy drop is judged (`mode`, the CLI's `--compare`):
- `exact`: the point values, with the `tol_pp` slack (0 = any drop fails). A CPU run is
  deterministic, so a moved number there is a changed program, not noise.
- `interval`: CUDA runs are not bit-reproducible (cuDNN/bf16 kernels pick reduction orders at
  run time), so a drop counts only when the baseline's value lies above the new value's 95 %
  Wilson interval (`stats.accuracy_interval` on the new row's `n`): the baseline accuracy is
  then implausible for the new model's examples. Checking the baseline's value against the
  new interval, rather than asking the two intervals to be disjoint, keeps the gate's power
  at n = 100 (it fails from a drop of about 10 points, disjointness from about 20). Rows
  without `n` (or not proportions) fall back to the exact rule.
- `auto` (default): `exact` for rows trained on the CPU (device `cpu`, or unrecorded `''`),
  `interval` for every other device.
ρ/ε sizes keep their relative tolerance `tol_rel` in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from robustbench_lr import results, stats

MATCH_KEY = [c for c in results.KEY if c != "checkpoint"]
MODES = ("auto", "exact", "interval")
# Devices whose runs are reproducible bit for bit: `auto` compares their rows exactly.
DETERMINISTIC_DEVICES = ("cpu", "")


def judged_kind(metric: str) -> str:
    """'acc' (higher is better, in points), 'size' (higher is better, relative) or 'info'."""
    name = metric.lower()
    if "acc" in name:
        return "acc"
    if name.startswith(("rho", "eps", "min_eps", "min_rho")):
        return "size"
    return "info"


def _normalized(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    # A black-box source is a checkpoint path; keep only its model identity (last 4 parts).
    frame["source"] = frame["source"].map(lambda s: "/".join(Path(s).parts[-4:]) if s else s)
    return frame.drop_duplicates(subset=MATCH_KEY, keep="last")


class DeviceMismatch(ValueError):
    """The baseline and the new results come from models trained on different devices."""


def _refuse_other_devices(merged: pd.DataFrame) -> None:
    """Fail loudly when matched rows were trained on different devices (empty = unrecorded)."""
    known = merged[(merged["device_baseline"] != "") & merged["device_new"].fillna("").ne("")]
    pairs = sorted(
        {
            (b, n)
            for b, n in zip(known["device_baseline"], known["device_new"], strict=True)
            if b != n
        }
    )
    if pairs:
        shown = ", ".join(f"baseline {b} vs new {n}" for b, n in pairs)
        raise DeviceMismatch(
            f"models were trained on different devices ({shown}): their numbers differ without "
            "any regression; compare against a baseline made on the same device"
        )


def _refuse_empty(new: pd.DataFrame, baseline: pd.DataFrame, names: tuple[str, str]) -> None:
    """A gate over zero rows would print PASS having checked nothing (an empty baseline) or
    report every row MISSING for a run that wrote nothing (empty results): both are input errors."""
    new_name, baseline_name = names
    if baseline.empty:
        raise ValueError(f"{baseline_name} has no rows: a gate with nothing to compare cannot pass")
    if new.empty:
        raise ValueError(f"{new_name} has no rows to compare with {baseline_name}")


def _refuse_disjoint(
    merged: pd.DataFrame, new: pd.DataFrame, baseline: pd.DataFrame, names: tuple[str, str]
) -> None:
    """No matched row at all means the wrong pair of files, not a run that lost every number."""
    if (merged["_merge"] == "left_only").all():
        new_name, baseline_name = names
        raise ValueError(
            f"{new_name} shares no rows with {baseline_name} (rows match on every key column "
            f"but checkpoint{_disjoint_hint(new, baseline)}): is it the baseline for this run?"
        )


def _disjoint_hint(new: pd.DataFrame, baseline: pd.DataFrame) -> str:
    """Why nothing matched, when one key column alone explains it (values: new vs baseline)."""
    for column in MATCH_KEY:
        ours, theirs = set(new[column].astype(str)), set(baseline[column].astype(str))
        if not ours & theirs:
            return f"; {column}: {sorted(ours)[:3]} vs {sorted(theirs)[:3]}"
    return ""


@dataclass
class GateReport:
    """The joined comparison and whether the gate passed."""

    table: pd.DataFrame  # one row per compared metric with baseline, new, delta, status
    passed: bool


def _gate(mode: str, device: str) -> str:
    """The rule one row is judged by: `mode`, or for `auto` the one its device calls for."""
    if mode == "auto":
        return "exact" if device in DETERMINISTIC_DEVICES else "interval"
    return mode


def compare(
    new: pd.DataFrame,
    baseline: pd.DataFrame,
    tol_pp: float = 2.0,
    tol_rel: float = 0.1,
    names: tuple[str, str] = ("the new results", "the baseline"),
    mode: str = "auto",
) -> GateReport:
    """Match `new` against `baseline` and judge every row (see the module docstring).

    `names` (new, baseline) say in error messages which inputs were refused, e.g. their files.
    `mode` is `auto`, `exact` or `interval`: how accuracy drops are judged.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _refuse_empty(new, baseline, names)
    old_rows, new_rows = _normalized(baseline), _normalized(new)
    merged = old_rows.merge(
        new_rows, on=MATCH_KEY, how="left", suffixes=("_baseline", "_new"), indicator=True
    )
    _refuse_disjoint(merged, new_rows, old_rows, names)
    _refuse_other_devices(merged)
    statuses, gates, lows, highs = [], [], [], []
    for _, row in merged.iterrows():
        old, cur, kind = row["value_baseline"], row["value_new"], judged_kind(row["metric"])
        scale = stats.accuracy_scale(row["metric"]) if kind == "acc" else None
        n = 0 if pd.isna(row["n_new"]) else int(row["n_new"])
        device = row["device_new"] if isinstance(row["device_new"], str) else ""
        gate = _gate(mode, device or row["device_baseline"])
        lo, hi = (float("nan"), float("nan"))
        if gate == "interval" and scale and n > 0 and not pd.isna(cur):
            lo, hi = stats.accuracy_interval(cur, n, scale)
        else:
            gate = "exact"
        if row["_merge"] == "left_only":
            statuses.append("MISSING")
        elif kind == "acc" and (old > hi if gate == "interval" else cur < old - tol_pp):
            statuses.append("REGRESSED")
        elif kind == "size" and cur < old * (1 - tol_rel):
            statuses.append("REGRESSED")
        else:
            same = cur == old or (pd.isna(cur) and pd.isna(old))  # "not reached" both times
            statuses.append("ok" if same else "changed")
        gates.append(gate)
        lows.append(lo)
        highs.append(hi)
    merged["status"] = statuses
    merged["gate"] = gates
    merged["new_lo"], merged["new_hi"] = lows, highs
    merged["delta"] = merged["value_new"] - merged["value_baseline"]
    columns = ["value_baseline", "value_new", "delta", "new_lo", "new_hi", "gate", "status"]
    table = merged[[*MATCH_KEY, *columns]]
    failed = table["status"].isin(["MISSING", "REGRESSED"])
    return GateReport(table, not bool(failed.any()))


def render(report: GateReport, show_all: bool = False) -> str:
    """A Markdown diff of the rows that moved (all rows with `show_all`), plus a verdict line."""
    from tabulate import tabulate

    shown = report.table if show_all else report.table[report.table["status"] != "ok"]
    columns = [
        "dataset",
        "arch",
        "method",
        "seed",
        "experiment",
        "attack",
        "box",
        "eps",
        "steps",
        "param",
        "metric",
        "value_baseline",
        "value_new",
        "delta",
        "new interval",
        "gate",
        "status",
    ]
    shown = shown.assign(
        **{
            "new interval": [
                stats.interval_text(lo, hi, 1)
                for lo, hi in zip(shown["new_lo"], shown["new_hi"], strict=True)
            ]
        }
    )
    counts = report.table["status"].value_counts().to_dict()
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    verdict = "PASS" if report.passed else "FAIL"
    body = (
        tabulate(shown[columns], headers="keys", tablefmt="github", showindex=False, floatfmt=".4g")
        if len(shown)
        else "(no changes)"
    )
    return f"{body}\n\nregression gate: {verdict} ({len(report.table)} baseline rows; {summary})"
