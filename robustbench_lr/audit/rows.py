"""The audit's rows for the results file, all with experiment="audit"."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from robustbench_lr.attacks.harness import evaluation_rows, param_text
from robustbench_lr.audit.checks import CHECKS
from robustbench_lr.audit.report import AuditReport

# A check's verdict as a number, so the results file stays numeric (NaN: not run).
STATUS_CODE = {"pass": 0.0, "warn": 1.0, "fail": 2.0, "skip": math.nan}


def report_rows(
    report: AuditReport,
    model_columns: Mapping[str, Any],
    source: str = "",
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows for the results file, all with experiment="audit" and the audit's `threat` (an L2
    audit's DeepFool row is an L2 audit's, not the L∞ one's, though DeepFool has no ball).

    - every run: the harness rows (acc, clean_acc, rho, rho_fooled, success) of its attack;
    - `attack="audit"`: `worst_case_acc`, `autoattack_acc`, `whitebox_acc`, `clean_acc`,
      `failed_checks`, `warned_checks` (eps column = the audit ε; the leaderboard reads
      `worst_case_acc` and `failed_checks`);
    - `attack="check:<name>"`: `status` (0 pass, 1 warn, 2 fail, NaN skip), `a`, `b` (the two
      numbers compared), and for per-example checks `count` and `share` (% of the n examples
      flagged);
    - `attack=<run label>`, `metric="optimality"`: AttackBench's optimality of the attack
      setting that run starts (`optimality.py`; the IFSGM-20 row covers its sweep too).
    """
    b, o = report.battery, report.battery.options
    rows: list[dict[str, Any]] = []
    for label, run in b.runs.items():
        ev, src = b.evaluations[label], source if run.transfer else ""
        found = evaluation_rows(ev, model_columns, source=src, experiment="audit", extra=extra)
        rows += [{**row, "threat": b.threat} for row in found]
    base = {
        **model_columns,
        "experiment": "audit",
        "threat": b.threat,
        "eps": o.eps,
        "n": len(b.clean),
        "param": param_text(o.settings(), extra),
    }
    summary = {
        "worst_case_acc": report.worst_case_acc,
        "autoattack_acc": report.autoattack_acc,
        "whitebox_acc": report.whitebox_acc,
        "clean_acc": report.clean_acc,
        "failed_checks": float(report.count("fail")),
        "warned_checks": float(report.count("warn")),
    }
    if report.has_standard_autoattack:
        summary["autoattack_standard_acc"] = report.standard_autoattack_acc
        summary["autoattack_agreement"] = report.autoattack_agreement["agreement"]

    def metrics(attack: str, transfer: bool, values: Mapping[str, float]) -> list[dict[str, Any]]:
        """One row per metric of `attack`; `transfer`: it names the source model."""
        src = source if transfer else ""
        return [
            {**base, "attack": attack, "source": src, "metric": m, "value": v}
            for m, v in values.items()
        ]

    rows += metrics("audit", True, summary)
    for c in report.checks:
        values = {"status": STATUS_CODE[c.status], "a": c.a, "b": c.b}
        flagged = {"count": c.count, "share": c.share}
        values |= {k: float(v) for k, v in flagged.items() if v is not None}
        rows += metrics(f"check:{c.name}", CHECKS[c.name].transfer, values)
    for label, found in report.optimality.items():
        rows += metrics(label, b.runs[label].transfer, {"optimality": found.value})
    return rows
