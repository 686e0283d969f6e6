"""The bench's own stages, each a planner registered in `STAGES` and the job functions it
schedules: train, numerics, attacks (clean accuracy, sweeps, step curves), corruptions, minrho,
audit and analyses. The threat tracks' stages live in `tracks.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from robustbench_lr import checkpoints, perturbed, results
from robustbench_lr.analysis import ANALYSES, AnalysisOptions
from robustbench_lr.attacks.search import SearchSettings
from robustbench_lr.audit import AuditOptions, run_audit
from robustbench_lr.bench.context import (
    STAGES,
    BenchContext,
    Job,
    make_job,
    settings_text,
    target_of,
    track_targets,
)
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.corruptions import C_FOLDERS
from robustbench_lr.data import Data, LoadOptions, load
from robustbench_lr.devices import resolve_device
from robustbench_lr.experiments import Outcome
from robustbench_lr.experiments.attack import (
    Clean,
    StepCurve,
    Sweep,
    run_clean,
    run_step_curve,
    run_sweep,
)
from robustbench_lr.experiments.corruption import CorruptionSettings, run_corruptions
from robustbench_lr.experiments.minrho import MinRho, run_search
from robustbench_lr.profiles import selects
from robustbench_lr.train import train


def _per_model(ctx: BenchContext, stage: str, work: Callable[[TrainConfig], partial]) -> list[Job]:
    """One `stage` job per trained model, `work(cfg)`: keyed by its folder and epochs, its config
    the spec, its folder the input. Training and its numerics re-run are the same model's run,
    so they are current or stale on the same terms."""
    return [
        Job(
            stage,
            f"{stage}:{ctx.folder(cfg)}:{cfg.epochs}",
            settings_text(cfg.to_dict(), ctx),
            (ctx.folder(cfg),),
            work(cfg),
        )
        for cfg in ctx.profile.models
    ]


@STAGES.register("train")
def plan_training(ctx: BenchContext) -> list[Job]:
    """One job per model: train (or resume) it, then record its clean accuracy (Tables 7-8)."""
    root, device, options = str(ctx.ckpt_root), ctx.device, ctx.load_options
    return _per_model(ctx, "train", lambda cfg: partial(_train_job, cfg, root, device, options))


_DATA: dict[tuple, Data] = {}


def _data_for(cfg: TrainConfig, options: LoadOptions) -> Data:
    """Each dataset loaded once per process (many models of a bench share it)."""
    options = replace(options, svhn_extra=cfg.svhn_extra)
    key = (cfg.dataset, cfg.train_limit, cfg.test_limit, options)
    if key not in _DATA:
        _DATA[key] = load(cfg.dataset, options, cfg.train_limit, cfg.test_limit)
    return _DATA[key]


def _train_job(
    cfg: TrainConfig, root: str, device: str, options: LoadOptions, _out: Path
) -> Outcome:
    data = _data_for(cfg, options)
    result = train(cfg, root, device, options, False, data)
    meta = checkpoints.verify(result.folder)
    row = results.make_row(
        **results.model_fields(meta, result.folder),
        experiment="clean",
        attack="clean",
        metric="clean_acc",
        value=meta["clean_acc"],
        n=len(data.y_test),
    )
    done = "already complete" if result.epochs_run == 0 else f"{result.epochs_run} epoch(s)"
    return Outcome([row], [f"{result.folder}: {done}, clean {result.clean_acc:.2f}%"])


@STAGES.register("numerics")
def plan_numerics(ctx: BenchContext) -> list[Job]:
    """With `numerics_spread = true`, on the CPU: each trained model trained again under a
    perturbed code path (`perturbed.py`); how far its clean accuracy moves is its numerics
    spread, a leaderboard column."""
    if not ctx.profile.numerics_spread or resolve_device(ctx.device).type != "cpu":
        return []
    root, data_root = str(ctx.ckpt_root), ctx.load_options.data_root
    return _per_model(ctx, "numerics", lambda cfg: partial(_numerics_job, cfg, root, data_root))


def _numerics_job(cfg: TrainConfig, root: str, data_root: str, _out: Path) -> Outcome:
    folder = checkpoint_dir(root, cfg)
    meta = checkpoints.verify(folder)
    other = perturbed.retrain(cfg, root, data_root)
    if other.get("diverged"):
        acc, move = math.nan, math.inf
        line = f"{folder}: perturbed path diverged ({other['diverged']}): spread inf"
    else:
        acc, move = other["clean_acc"], abs(other["clean_acc"] - meta["clean_acc"])
        line = f"{folder}: perturbed path clean {acc:.2f}% ({move:.2f} pp)"
    rows = [
        results.make_row(
            **results.model_fields(meta, folder),
            experiment=perturbed.EXPERIMENT,
            attack=perturbed.ATTACK,
            metric=metric,
            value=value,
        )
        for metric, value in zip(perturbed.METRICS, (acc, move), strict=True)
    ]
    return Outcome(rows, [line])


@STAGES.register("attacks")
def plan_attacks(ctx: BenchContext) -> list[Job]:
    """IFSGM white-box and black-box grids (Tables 1-2), random noise (Table 4), step curves (Fig. 11).

    Black-box examples are crafted on the profile's source model (`Profile.black_box_source`:
    an independently seeded N-LR by default, so N-LR's own black-box rows are the N-LR -> N-LR
    control; the paper's same-seed protocol is `blackbox_protocol = "same-seed"`).
    """
    grid = ctx.profile.attacks
    lists = {"eps": grid.ifsgm_eps, "steps": grid.ifsgm_steps}
    runs = {"ifsgm-white": (Sweep("ifsgm", lists),)}
    if grid.noise_p:
        runs["noise"] = (Sweep("noise", {"p": grid.noise_p}, draws=grid.noise_draws),)
    jobs = []
    for model in ctx.targets():
        folder, source = model.checkpoint, ctx.source_of(model)
        runs_here = dict(runs)
        targets = {name: target_of(ctx, model, None, ctx.profile.n) for name in runs}
        if grid.blackbox and source is not None:
            runs_here["ifsgm-black"] = runs["ifsgm-white"]
            targets["ifsgm-black"] = target_of(ctx, model, source, ctx.profile.n)
        for name, sweeps in runs_here.items():
            key = f"attack:{name}:{folder}"
            jobs.append(make_job(ctx, "attacks", key, targets[name], run_sweep, *sweeps))
        if grid.curves:  # Fig. 11: the curves alone (the grid above scores the attack itself)
            target = target_of(ctx, model, None, ctx.profile.n)
            curve = StepCurve("ifsgm", grid.curve_eps, max(grid.ifsgm_steps))
            key = f"attack:step-curve:{folder}"
            jobs.append(make_job(ctx, "attacks", key, target, run_step_curve, curve))
        if model.external is not None:  # a trained model's clean row comes from training
            target = target_of(ctx, model, None, None)
            jobs.append(make_job(ctx, "attacks", f"clean:{folder}", target, run_clean, Clean()))
    return jobs


@STAGES.register("corruptions")
def plan_corruptions(ctx: BenchContext) -> list[Job]:
    """Accuracy under common corruptions on every model (`experiments.corruption`): generated
    from each model's test subset, or read from the CIFAR-10-C / -100-C files under --data-root."""
    grid = ctx.profile.corruptions
    if not grid.enabled:
        return []
    settings = CorruptionSettings(
        **({"corruptions": grid.corruptions} if grid.corruptions else {}),
        **({"severities": grid.severities} if grid.severities else {}),
        source=grid.source,
        seed=grid.seed,
        data_root=ctx.load_options.data_root,
    )
    n = grid.n or ctx.profile.n
    # The published files exist for some datasets only: the profile's other models (SVHN,
    # CIFAR-100 coarse) are left out of a `files` track rather than failing their jobs.
    return [
        make_job(
            ctx,
            "corruptions",
            f"corruptions:{model.checkpoint}",
            target_of(ctx, model, None, n),
            run_corruptions,
            settings,
        )
        for model, dataset in track_targets(ctx, grid)
        if grid.source == "generate" or dataset in C_FOLDERS
    ]


@STAGES.register("minrho")
def plan_minrho(ctx: BenchContext) -> list[Job]:
    """Minimum-perturbation searches, white-box and black-box (Tables 3 and 10, Fig. 4a/9)."""
    grid = ctx.profile.attacks
    if not grid.minrho:
        return []
    search = MinRho(grid.minrho, SearchSettings(per_sample=grid.curves, **grid.minrho_options))
    jobs = []
    for model in ctx.targets():
        # The selector names training fields: an external model takes part only without one.
        if not (selects(grid.minrho_only, model.cfg) if model.cfg else not grid.minrho_only):
            continue
        folder, source = model.checkpoint, ctx.source_of(model)
        white = target_of(ctx, model, None, grid.minrho_n)
        jobs.append(make_job(ctx, "minrho", f"minrho:white:{folder}", white, run_search, search))
        if grid.blackbox and source is not None:
            black = target_of(ctx, model, source, grid.minrho_n)
            key = f"minrho:black:{folder}"
            jobs.append(make_job(ctx, "minrho", key, black, run_search, search))
    return jobs


@STAGES.register("audit")
def plan_audit(ctx: BenchContext) -> list[Job]:
    """The robustness audit on every model: gradient-masking checks and the worst case per example."""
    profile = ctx.profile
    if not profile.audit:
        return []
    options = AuditOptions(
        **{
            "eps": profile.audit_eps,
            "n": profile.audit_n,
            "queries": profile.attacks.square_queries,
            **profile.audit_options,
        }
    )
    jobs = []
    for model in ctx.targets():
        target = target_of(ctx, model, ctx.source_of(model), profile.audit_n)
        jobs.append(make_job(ctx, "audit", f"audit:{model.checkpoint}", target, run_audit, options))
    return jobs


@STAGES.register("analyses")
def plan_analyses(ctx: BenchContext) -> list[Job]:
    """Every analysis of the profile on every model (rows and figures under <out>/)."""
    jobs = []
    for model in ctx.targets():
        cfg, folder, shared = model.cfg, model.checkpoint, ctx.profile.analysis_options
        extras = {"white": dict(shared)}
        source = ctx.source_of(model)
        if ctx.profile.attacks.blackbox and source is not None:
            extras["black"] = {**shared, "source": source}
        is_source = cfg is not None and cfg.method == ctx.profile.attacks.blackbox_source
        lr_partner = ctx.profile.partner(cfg, ctx.profile.matched_partner) if is_source else None
        if lr_partner is not None:  # Table 6's N-LR protocol (D.5): stop once 1-LR is fooled
            extras["matched"] = {**shared, "stop_on": str(ctx.folder(lr_partner))}
        tap = model.external.tap or None if model.external else None
        for kind in ctx.profile.analyses:
            analysis = ANALYSES.get(kind)
            if model.external is not None and (analysis.suite_models_only or tap is None):
                continue  # needs the suite's architecture, or a tap the entry did not name
            # Analyses that attack use the attacks' test subset (profile `n`, the same images);
            # the others describe the representation on the whole test set.
            n = ctx.profile.n if analysis.crafts_adversarial else None
            for box, extra in extras.items():
                if box not in analysis.boxes:
                    continue
                options = AnalysisOptions(
                    tap=tap, n=n, device=ctx.device, load=ctx.load_options, extra=extra
                )
                companions = tuple(extra[k] for k in ("source", "stop_on") if k in extra)
                target = target_of(ctx, model, None, n, analysis.needs_train)
                key = f"analysis:{kind}:{box}:{folder}"
                jobs.append(
                    make_job(ctx, "analyses", key, target, analysis.run, options, reads=companions)
                )
    return jobs
