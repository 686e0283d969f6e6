"""Audit one loaded model: a `target.Target` (the model, its test subset, the transfer source)
in, the audit, its rows and audit.md out.

The faces (`robustbench-lr audit`, `robustbench_lr.audit` and `benchmark`, the bench's audit
jobs) load the target, so each says once which model, subset and source it audits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from robustbench_lr.audit.markdown import audit_filename, model_title, render_markdown
from robustbench_lr.audit.options import AuditOptions, default_eps
from robustbench_lr.audit.report import AuditReport
from robustbench_lr.audit.rows import report_rows
from robustbench_lr.audit.runner import audit_model
from robustbench_lr.experiments import Outcome
from robustbench_lr.files import atomic_write_text
from robustbench_lr.target import Target


@dataclass(frozen=True)
class CheckpointAudit:
    """An audited model: the report, its result rows, audit.md and that file's name."""

    report: AuditReport
    rows: list[dict[str, Any]]
    markdown: str
    filename: str


def audit_target(target: Target, options: AuditOptions) -> CheckpointAudit:
    """Audit `target`'s model on its test subset (the face draws it with `options.n` and
    `options.seed`); `options.eps=None` audits at `default_eps(dataset, options.threat)`.

    `target.source` is the model transfer attacks are crafted on (the N-LR model of the same
    dataset, as for the paper's black-box columns); without one the transfer check is skipped.
    CPU runs are bit-for-bit repeatable.
    """
    if options.eps is None:
        dataset = target.meta["config"]["dataset"]
        options = replace(options, eps=default_eps(dataset, options.threat))
    report = audit_model(target.model, target.x, target.y, options, target.source)
    columns = target.columns
    rows = report_rows(report, columns, target.source_path, target.subset_extra)
    filename = audit_filename(columns, options.eps, options.threat)
    return CheckpointAudit(report, rows, render_markdown(report, model_title(columns)), filename)


def run_audit(target: Target, options: AuditOptions) -> Outcome:
    """`audit_target` as an experiment: its rows, one line per check, and audit.md written
    beside `options.results` (when set)."""
    done = audit_target(target, options)
    lines = [f"{c.status.upper():4s}  {c.name}: {c.detail}" for c in done.report.checks]
    if options.results is None:
        return Outcome(done.rows, lines)
    path = atomic_write_text(Path(options.results).parent / done.filename, done.markdown)
    return Outcome(done.rows, lines, [path])
