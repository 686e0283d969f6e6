"""`robustbench-lr attack`: adversarial / noise accuracy of a checkpoint, one row per number
(the rows of `experiments.attack`, which documents them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from robustbench_lr import results
from robustbench_lr.attacks import ATTACKS
from robustbench_lr.attacks.base import HYPERPARAMETERS
from robustbench_lr.attacks.l2 import check_threat
from robustbench_lr.attacks.strong import QUERIES, TARGETS
from robustbench_lr.commands.argtypes import budget, comma_list, count, value_of
from robustbench_lr.commands.common import Flag, add_flags
from robustbench_lr.commands.evalflags import add_eval_flags, load_target_from
from robustbench_lr.config import from_fields
from robustbench_lr.experiments.attack import (
    LIST_PARAMS,
    SCALAR_PARAMS,
    VERIFY_N,
    Sweep,
    check_verifiable,
    run_setting,
)

HELP = "attack a checkpoint (white-box, or black-box with --source) and append result rows"


def hyper(name: str) -> Callable[[str], Any]:
    """The flag type of attack hyper-parameter `name`: the type `AttackSpec.resolve` checks it
    by (`attacks.base.HYPERPARAMETERS`), so the command line and the API accept the same values."""
    return value_of(HYPERPARAMETERS[name])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = f"attack name(s), comma-separated: {', '.join(ATTACKS.names())}"
    eps = "L-inf budget(s), e.g. 8/255,16/255 (default: 8/255)"
    steps = "iteration count(s), e.g. 7,20 (default: 7; deepfool 50)"
    norm = (
        "the ball --eps measures: Linf (default) or L2; an attack without that ball "
        "is refused (L2: pgd-l2, autoattack-standard-l2)"
    )
    p = "noise: pixel probabilities (default: 0.4,0.6,0.8,1.0)"
    draws = f"noise, linf-noise: draws averaged (default: {Sweep.draws})"
    queries = f"square, autoattack: query budget (default: {QUERIES})"
    targets = f"apgd-t, fab-t, autoattack: target classes (default: {TARGETS})"
    restarts = "ifsgm-restarts, apgd-ce, apgd-dlr: random restarts (default: 5; apgd: 1)"
    per_step = "also write instantaneous/cumulative accuracy after every step (ifsgm, ill; Fig. 11)"
    verify = f"first re-run each setting through a second backend on {VERIFY_N} samples; fail on disagreement"
    add_flags(
        parser,
        [
            Flag("--attack", names, required=True),
            Flag("--eps", eps, comma_list(budget)),
            Flag("--steps", steps, comma_list(hyper("steps"))),
            Flag("--norm", norm, None, "Linf", choices=("Linf", "L2")),
            Flag("--alpha", "step size (default: 2.5*eps/steps)", budget),
            Flag("--backend", "library running the attack (default: the attack's first)"),
            Flag("--p", p, comma_list(hyper("p"))),
            Flag("--sigma", "noise: Gaussian std (default: 128/255, read as std)", hyper("sigma")),
            Flag("--noise-draws", draws, count, Sweep.draws),
            Flag("--attack-seed", "seed of randomized attacks (default: 0)", hyper("seed")),
            Flag("--overshoot", "deepfool: overshoot (default: 0.02)", hyper("overshoot")),
            Flag("--candidates", "deepfool: classes considered (default: 10)", hyper("candidates")),
            Flag("--queries", queries, hyper("queries")),
            Flag("--targets", targets, hyper("targets")),
            Flag("--restarts", restarts, hyper("restarts")),
            Flag.switch("--per-step", per_step),
            Flag.switch("--verify", verify),
        ],
    )
    add_eval_flags(parser)


def sweep_from(name: str, args: argparse.Namespace) -> Sweep:
    lists = {k: getattr(args, k) for k in LIST_PARAMS if getattr(args, k) is not None}
    fixed = {k: getattr(args, k) for k in SCALAR_PARAMS if k != "seed"}
    fixed["seed"] = args.attack_seed
    return from_fields(
        Sweep, vars(args), attack=name, lists=lists, fixed=fixed, draws=args.noise_draws
    )


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.attack.split(",") if n.strip()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # the second run would replace the first's rows after costing as much
        raise ValueError(f"--attack names {', '.join(twice)} more than once")
    sweeps = [sweep_from(name, args) for name in names]
    for name in names:
        check_threat(name, args.norm)
    if args.verify:
        check_verifiable(names)
    target = load_target_from(args)
    written = 0
    for sweep in sweeps:
        for params in sweep.settings():
            outcome = run_setting(target, sweep, params)
            print("\n".join(outcome.lines))
            results.append(args.out, outcome.rows)  # per setting: a stopped sweep keeps what it did
            written += len(outcome.rows)
    print(f"{written} rows -> {args.out}")
    return 0
