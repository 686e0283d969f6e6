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

How a drop is judged (`mode`, the CLI's `--compare`):
- `exact`: the point values, with the `tol_pp` slack for accuracies and `tol_rel` for sizes
  (0 = any drop fails). Right where both rows were computed on the same numeric path: a moved
  number there is a changed program, not noise.
- `tolerance`: a drop counts only beyond the variation measured on the baseline's own jobs
  (`spread.py`: the numerics spread under a perturbed code path plus the seed spread, per
  experiment, attack and metric). Right where the numeric paths differ: another CPU rounds
  differently, and training on digits turns a rounding difference into points.
- `interval`: CUDA runs are not bit-reproducible (cuDNN/bf16 kernels pick reduction orders at
  run time), so a drop counts only when the baseline's value lies above the new value's 95 %
  Wilson interval (`stats.accuracy_interval` on the new row's `n`). Checking the baseline's
  value against the new interval, rather than asking the two intervals to be disjoint, keeps
  the gate's power at n = 100 (it fails from a drop of about 10 points).
- `auto` (default), row by row: `interval` for rows trained on CUDA; `exact` where the rows'
  numerics keys (`results` column `numerics`, `numerics.row_key`) are equal; `tolerance` where
  they differ or are unrecorded, or `interval` when the row's group has no measured spread.
Every row of the report names the rule it got and why (`gate`, `why`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from robustbench_lr import results, spread, stats

MATCH_KEY = results.PLACELESS_KEY
MODES = ("auto", "exact", "tolerance", "interval")
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


class DeviceMismatch(ValueError):
    """The baseline and the new results come from models trained on different devices."""


def _refuse_other_devices(merged: pd.DataFrame) -> None:
    """Fail loudly when matched rows were trained on different devices (empty = unrecorded)."""
    known = merged[(merged["device_baseline"] != "") & merged["device_new"].fillna("").ne("")]
    known = known[known["device_baseline"] != known["device_new"]]
    pairs = sorted(set(zip(known["device_baseline"], known["device_new"], strict=True)))
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
        ours, theirs = set(map(str, new[column])), set(map(str, baseline[column]))
        if not ours & theirs:
            return f"; {column}: {sorted(ours)[:3]} vs {sorted(theirs)[:3]}"
    return ""


@dataclass
class GateReport:
    """The joined comparison and whether the gate passed."""

    table: pd.DataFrame  # one row per compared metric with baseline, new, delta, status
    passed: bool


def _gate(mode: str, row: pd.Series, tolerance: float) -> tuple[str, str]:
    """The rule one row is judged by, and why: `mode`, or for `auto` what the row calls for."""
    device = row["device_new"] if isinstance(row["device_new"], str) else ""
    device = device or row["device_baseline"]
    old_key, new_key = row["numerics_baseline"], row["numerics_new"]
    new_key = new_key if isinstance(new_key, str) else ""
    if mode != "auto":
        return mode, f"--compare {mode}"
    if device not in DETERMINISTIC_DEVICES:
        return "interval", f"trained on {device}: not bit-reproducible"
    if old_key and old_key == new_key:
        return "exact", f"same numerics {old_key}"
    differ = f"numerics {old_key or 'unrecorded'} vs {new_key or 'unrecorded'}"
    if tolerance == tolerance:  # measured (not NaN)
        return "tolerance", f"{differ}: measured spread {tolerance:.4g}"
    return "interval", f"{differ}, and no measured spread for this group"


def _judge(
    row: pd.Series, gate: str, kind: str, tol: float, tol_pp: float, tol_rel: float
) -> tuple[str, str, float, float]:
    """Status of one matched row, the rule actually applied (an interval needs a proportion
    and its `n`, a tolerance a measured spread; otherwise the exact rule), and the new
    value's interval where one was used."""
    old, cur = row["value_baseline"], row["value_new"]
    lo, hi = float("nan"), float("nan")
    scale = stats.accuracy_scale(row["metric"]) if kind == "acc" else None
    n = 0 if pd.isna(row["n_new"]) else int(row["n_new"])
    if gate == "interval" and scale and n > 0 and not pd.isna(cur):
        lo, hi = stats.accuracy_interval(cur, n, scale)
        dropped = old > hi
    elif gate == "tolerance" and tol == tol and kind != "info":
        dropped = cur < old - tol
    else:
        gate = "exact"
        dropped = (kind == "acc" and cur < old - tol_pp) or (
            kind == "size" and cur < old * (1 - tol_rel)
        )
    if row["_merge"] == "left_only":
        return "MISSING", gate, lo, hi
    # A NaN accuracy where the baseline has a number measures nothing; a size may be NaN for
    # "not reached within the search's range", which is no drop.
    if dropped or (kind == "acc" and pd.isna(cur) and not pd.isna(old)):
        return "REGRESSED", gate, lo, hi
    same = cur == old or (pd.isna(cur) and pd.isna(old))  # "not reached" both times
    same = same and row["n_new"] == row["n_baseline"]  # or the number rests on other images
    return ("ok" if same else "changed"), gate, lo, hi


def compare(
    new: pd.DataFrame,
    baseline: pd.DataFrame,
    tol_pp: float = 2.0,
    tol_rel: float = 0.1,
    names: tuple[str, str] = ("the new results", "the baseline"),
    mode: str = "auto",
    spread_table: pd.DataFrame | None = None,
) -> GateReport:
    """Match `new` against `baseline` and judge every row (see the module docstring).

    `names` (new, baseline) say in error messages which inputs were refused, e.g. their files.
    `mode` is `auto`, `exact`, `tolerance` or `interval`; `spread_table` is the baseline's
    measured spread (`spread.measure`), which `tolerance` needs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "tolerance" and (spread_table is None or spread_table.empty):
        raise ValueError(
            "--compare tolerance needs the baseline's measured spread (a .spread.csv beside it, "
            "or --spread FILE); make one with --measure-spread"
        )
    _refuse_empty(new, baseline, names)
    old_rows, new_rows = results.placeless(baseline), results.placeless(new)
    merged = old_rows.merge(
        new_rows, on=MATCH_KEY, how="left", suffixes=("_baseline", "_new"), indicator=True
    )
    _refuse_disjoint(merged, new_rows, old_rows, names)
    _refuse_other_devices(merged)
    merged["tolerance"] = spread.tolerances(merged, spread_table)
    judged = []
    for _, row in merged.iterrows():
        kind, tolerance = judged_kind(row["metric"]), row["tolerance"]
        gate, why = _gate(mode, row, tolerance)
        status, gate, lo, hi = _judge(row, gate, kind, tolerance, tol_pp, tol_rel)
        judged.append((lo, hi, tolerance, gate, why, status))
    # The report's columns after the values, in its order (`tolerance` as each row was judged).
    verdicts = ["new_lo", "new_hi", "tolerance", "gate", "why", "status"]
    merged[verdicts] = pd.DataFrame(judged, index=merged.index, columns=verdicts)
    merged["delta"] = merged["value_new"] - merged["value_baseline"]
    values = ["value_baseline", "value_new", "delta", "n_baseline", "n_new"]
    table = merged[[*MATCH_KEY, *values, *verdicts]]
    failed = table["status"].isin(["MISSING", "REGRESSED"])
    return GateReport(table, not bool(failed.any()))


# Key columns the diff leaves out to stay readable: where and how a row was made (a checkpoint
# path, a black-box source, a backend) and settings the shown ones mostly imply (width, the step
# size alpha, the threat); both results files keep every row's full key.
_UNSHOWN = ("width", "checkpoint", "source", "backend", "alpha", "threat")


def render(report: GateReport, show_all: bool = False) -> str:
    """A Markdown diff of the rows that moved (all rows with `show_all`), plus a verdict line."""
    shown = report.table if show_all else report.table[report.table["status"] != "ok"]
    bounds = zip(shown["new_lo"], shown["new_hi"], strict=True)
    intervals = [stats.interval_text(lo, hi, 1) for lo, hi in bounds]
    shown = shown.assign(new_lo=intervals).rename(columns={"new_lo": "new interval"})
    columns = [c for c in shown.columns if c not in (*_UNSHOWN, "new_hi", "why")]
    counts = report.table["status"].value_counts().to_dict()
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    verdict = "PASS" if report.passed else "FAIL"
    reasons = report.table.groupby(["gate", "why"]).size()
    why = "\n".join(f"- {gate}: {n} rows ({reason})" for (gate, reason), n in reasons.items())
    body = (
        tabulate(shown[columns], headers="keys", tablefmt="github", showindex=False, floatfmt=".4g")
        if len(shown)
        else "(no changes)"
    )
    return (
        f"{body}\n\nwhich comparison each row got:\n{why}\n\n"
        f"regression gate: {verdict} ({len(report.table)} baseline rows; {summary})"
    )
