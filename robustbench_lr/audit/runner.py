"""Run the battery on a model, then every check: the audit of one model on given examples."""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from robustbench_lr.attacks import frozen
from robustbench_lr.attacks.harness import evaluate_attack
from robustbench_lr.audit.battery import Battery, battery
from robustbench_lr.audit.checks import CHECKS
from robustbench_lr.audit.options import AuditOptions
from robustbench_lr.audit.probes import probe_determinism, probe_gradients
from robustbench_lr.audit.report import AuditReport

log = logging.getLogger(__name__)


def audit_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    options: AuditOptions,
    source: nn.Module | None = None,
) -> AuditReport:
    """Run the battery on `model` (and transfer from `source`), then every registered check.

    `options.eps` must be set (`audit_checkpoint` fills in the dataset's default). Every run
    sees all examples, so each attack's own accuracy is exact and the worst case per example
    (and AutoAttack's) is the AND of the runs' per-example flags.
    """
    started = time.time()
    runs = {run.label: run for run in battery(options, source is not None)}
    evaluations, timings = {}, {}
    for label, run in runs.items():
        t0 = time.time()
        evaluations[label] = evaluate_attack(
            run.attack,
            model,
            x,
            y,
            source=source if run.transfer else None,
            draws=run.draws,
            batch_size=options.batch_size,
            **run.params,
        )
        timings[label] = time.time() - t0
        log.info("audit %s: acc %.1f%% (%.1fs)", label, evaluations[label].acc, timings[label])
    with torch.no_grad(), frozen(model):
        num_classes = int(model(x[:1].to(next(model.parameters()).device)).shape[1])
    b = Battery(
        options,
        runs,
        evaluations,
        probe_gradients(model, x, y, options.batch_size),
        probe_determinism(model, x),
        num_classes,
        evaluations["fgsm"].clean,
    )
    checks = tuple(CHECKS[name].run(b) for name in CHECKS)
    return AuditReport(b, checks, time.time() - started, timings)
