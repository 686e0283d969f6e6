"""Run the battery on a model, then every check: the audit of one model on given examples."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustbench_lr.attacks import frozen
from robustbench_lr.attacks.harness import evaluate_attack
from robustbench_lr.attacks.loop import PathRecorder, observing
from robustbench_lr.audit.battery import Battery, Run, battery
from robustbench_lr.audit.checks import CHECKS
from robustbench_lr.audit.indicators import UNSTABLE_DRAWS, probe_radius
from robustbench_lr.audit.optimality import optimality
from robustbench_lr.audit.options import AuditOptions
from robustbench_lr.audit.probes import probe_determinism, probe_gradients, probe_stability
from robustbench_lr.audit.report import AuditReport
from robustbench_lr.devices import model_device

log = logging.getLogger(__name__)


def run_battery(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    options: AuditOptions,
    runs: Sequence[Run],
    source: nn.Module | None = None,
) -> tuple[Battery, dict[str, float]]:
    """Every run of `runs` on all examples, the probes, and each run's seconds, by label. A
    white-box run on the signed-gradient loop records its path on the way (`PathRecorder`)."""
    evaluations, paths, timings = {}, {}, {}
    for run in runs:
        t0 = time.time()
        with observing(PathRecorder(y)) as recorder:
            evaluations[run.label] = found = evaluate_attack(
                run.attack,
                model,
                x,
                y,
                source=source if run.transfer else None,
                backend=run.backend,
                draws=run.draws,
                batch_size=options.batch_size,
                **run.params,
            )
        path = recorder.record()
        if len(path.loss) and not run.transfer:
            paths[run.label] = path
        timings[run.label] = seconds = time.time() - t0
        log.info("audit %s: acc %.1f%% (%.1fs)", run.label, found.acc, seconds)
    with torch.no_grad(), frozen(model):
        num_classes = int(model(x[:1].to(model_device(model))).shape[1])
    radius = probe_radius(options.eps, options.threat, x[0].numel())
    instability = probe_stability(
        model, x, y, radius, UNSTABLE_DRAWS, options.attack_seed, options.batch_size
    )
    b = Battery(
        options,
        {run.label: run for run in runs},
        evaluations,
        probe_gradients(model, x, y, options.batch_size),
        probe_determinism(model, x),
        num_classes,
        next(iter(evaluations.values())).clean,  # every run scores the same clean inputs
        paths,
        instability,
        x.cpu().flatten(1).norm(dim=1),
    )
    return b, timings


def audit_model(
    model: nn.Module, x: Tensor, y: Tensor, options: AuditOptions, source: nn.Module | None = None
) -> AuditReport:
    """Run the battery on `model` (and transfer from `source`), then every registered check;
    `options.eps` must be set (`audit_target` fills in the dataset's default)."""
    started = time.time()
    runs = battery(options, source is not None, x[0].numel())
    b, timings = run_battery(model, x, y, options, runs, source)
    checks = tuple(CHECKS[name].run(b) for name in CHECKS)
    return AuditReport(b, checks, time.time() - started, timings, optimality(b))
