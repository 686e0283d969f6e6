"""Audit one checkpoint: its `target.Target` (test subset, transfer source), the audit, the
rows and audit.md."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from robustbench_lr.audit.markdown import audit_filename, model_title, render_markdown
from robustbench_lr.audit.options import AuditOptions, default_eps
from robustbench_lr.audit.report import AuditReport
from robustbench_lr.audit.rows import report_rows
from robustbench_lr.audit.runner import audit_model
from robustbench_lr.data import LoadOptions


@dataclass(frozen=True)
class CheckpointAudit:
    """An audited checkpoint: the report, its result rows, audit.md and that file's name."""

    report: AuditReport
    rows: list[dict[str, Any]]
    markdown: str
    filename: str


def audit_checkpoint(
    checkpoint: str | Path,
    options: AuditOptions | None = None,
    *,
    source: str | Path | None = None,
    device: str = "cpu",
    load_options: LoadOptions | None = None,
) -> CheckpointAudit:
    """Audit one checkpoint on its seeded uniform test subset (`options.n`, `options.seed`).

    `options.eps=None` (and `options=None`) audits at `default_eps(dataset, options.threat)`.
    `source` is the checkpoint transfer attacks are crafted on (the N-LR model of the same
    dataset, as for the paper's black-box columns); without it the transfer check is skipped.
    CPU runs are bit-for-bit repeatable.
    """
    from robustbench_lr.devices import use_device
    from robustbench_lr.target import load_target

    options = options or AuditOptions()
    target = load_target(
        checkpoint,
        n=options.n,
        seed=options.seed,
        source=source,
        device=use_device(device),
        options=load_options,
    )
    if options.eps is None:
        dataset = target.meta["config"]["dataset"]
        options = replace(options, eps=default_eps(dataset, options.threat))
    report = audit_model(target.model, target.x, target.y, options, target.source)
    columns = target.columns
    rows = report_rows(report, columns, target.source_path, target.subset_extra)
    markdown = render_markdown(report, model_title(columns))
    filename = audit_filename(columns, options.eps, options.threat)
    return CheckpointAudit(report, rows, markdown, filename)
