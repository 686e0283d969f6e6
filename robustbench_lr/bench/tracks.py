"""The bench's stages for the threat tracks beside L∞ that have no stage of their own module.

- `l2` (RobustBench's L2 track): every model of the profile's `[l2]` datasets under `pgd-l2`
  and the authors' AutoAttack at `norm="L2"` (`attacks.l2`), at its dataset's L2 ε
  (`data.l2_eps`); rows as the `attacks` stage writes them, filed under `threat = "L2"`. With
  `[l2] audit = true`, also each model's L2 audit (`robustbench-lr audit --norm L2`).
- `shifts` (OODRobustBench's natural shifts): every model of a shift's dataset on the profile's
  `[shifts]` test sets (`experiments.shift`), read under --data-root (`--download` fetches).

Why a module beside `stages.py`: each track is a planner, which the bench registers like its
own stages (`STAGES`); keeping them here keeps the bench's core readable.
"""

from __future__ import annotations

from typing import Any

from robustbench_lr.audit import AuditOptions, run_audit
from robustbench_lr.bench.context import (
    STAGES,
    BenchContext,
    Job,
    make_job,
    target_of,
    track_targets,
)
from robustbench_lr.data import l2_eps
from robustbench_lr.experiments.attack import Sweep, run_sweep
from robustbench_lr.experiments.shift import ShiftSettings, run_shifts
from robustbench_lr.shifts import SHIFTS


def l2_audit_options(ctx: BenchContext, dataset: str) -> dict[str, Any]:
    """The L2 audit's `AuditOptions` fields: the `[l2]` budgets (n, APGD/FAB steps, targets,
    Square queries) at the dataset's L2 ε; the `[audit]` keys `[l2]` has none of (restarts,
    noise draws, DeepFool steps, attack seed) as the L∞ audit has them."""
    grid = ctx.profile.l2
    return {
        **ctx.profile.audit_options,
        "threat": "L2",
        "eps": l2_eps(dataset),
        "n": grid.n or ctx.profile.n,
        "steps": grid.steps,
        "targets": grid.targets,
        "queries": grid.queries,
    }


@STAGES.register("l2")
def plan_l2(ctx: BenchContext) -> list[Job]:
    """One job per model of the `[l2]` datasets: both L2 attacks at its dataset's ε, and with
    `[l2] audit` its L2 audit (transfer crafted on the model the L∞ audit's comes from)."""
    grid, jobs = ctx.profile.l2, []
    for model, dataset in track_targets(ctx, grid):
        eps = l2_eps(dataset)
        sweeps = (
            Sweep("pgd-l2", {"eps": [eps], "steps": [grid.pgd_steps]}),
            Sweep(
                "autoattack-standard-l2",
                {"eps": [eps], "steps": [grid.steps]},
                {"targets": grid.targets, "queries": grid.queries, "seed": 0},
            ),
        )
        n = grid.n or ctx.profile.n
        target = target_of(ctx, model, None, n)
        jobs.append(make_job(ctx, "l2", f"l2:{model.checkpoint}", target, run_sweep, *sweeps))
        if grid.audit:
            audited = target_of(ctx, model, ctx.source_of(model), n)
            options = AuditOptions(**l2_audit_options(ctx, dataset))
            jobs.append(
                make_job(ctx, "l2", f"l2-audit:{model.checkpoint}", audited, run_audit, options)
            )
    return jobs


@STAGES.register("shifts")
def plan_shifts(ctx: BenchContext) -> list[Job]:
    """One job per model of a `[shifts]` set's dataset: its accuracy on each of those sets."""
    grid, jobs = ctx.profile.shifts, []
    for model, dataset in track_targets(ctx, grid):
        names = tuple(name for name in grid.shifts if SHIFTS[name].dataset == dataset)
        if not names:
            continue
        target = target_of(ctx, model, None, grid.n or ctx.profile.n)
        settings = ShiftSettings(names, ctx.load_options.data_root, ctx.load_options.download)
        jobs.append(
            make_job(ctx, "shifts", f"shifts:{model.checkpoint}", target, run_shifts, settings)
        )
    return jobs
