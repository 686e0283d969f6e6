"""`robustbench-lr attack`: adversarial / noise accuracy of a checkpoint, one row per number.

Experiments written to the results file:
- `attack`: per setting (eps x steps, or noise p), metrics `acc`, `clean_acc`, `rho`,
  `rho_fooled`, `success`. An eps sweep gives Fig. 4a / 9's accuracy-vs-ρ curve (`acc` against
  `rho` of the same setting); Tables 1, 2 and 4 read `acc`.
- `step-curve` (with `--per-step`, ifsgm / ill): `acc_instant` and `acc_cumulative` after each
  step k (the `steps` column holds k), Fig. 11 / Appendix D.4.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from robustbench_lr.attacks import ATTACKS
from robustbench_lr.attacks.search import STEP_RULES
from robustbench_lr.attacks.strong import QUERIES, TARGETS
from robustbench_lr.commands.argtypes import (
    at_least,
    budget,
    comma_list,
    count,
    nonnegative,
    positive,
    probability,
    seed,
)
from robustbench_lr.commands.evalflags import Setup, add_eval_flags, load_setup

NAME = "attack"
HELP = "attack a checkpoint (white-box, or black-box with --source) and append result rows"

# Command-line flags that name attack hyper-parameters: lists are swept, scalars fixed.
LIST_FLAGS = ("eps", "steps", "p")
SCALAR_FLAGS = ("alpha", "sigma", "overshoot", "candidates", "queries", "targets", "restarts")
VERIFY_N = 64
# Random noise is a distribution, so Table 4 averages it over `--noise-draws`; the other
# randomized attacks (Square, APGD, restarts) search for a worst case and run once per
# `--attack-seed`: averaging their seeds would report a mean where a worst case is meant.
AVERAGED_OVER_DRAWS = ("noise", "linf-noise")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attack choice, its hyper-parameters, and the evaluation flags."""
    parser.add_argument(
        "--attack",
        required=True,
        help=f"attack name(s), comma-separated: {', '.join(ATTACKS.names())}",
    )
    parser.add_argument(
        "--eps",
        type=comma_list(budget),
        default=None,
        help="L-inf budget(s), e.g. 8/255,16/255 (default: 8/255)",
    )
    parser.add_argument(
        "--steps",
        type=comma_list(count),
        default=None,
        help="iteration count(s), e.g. 7,20 (default: 7; deepfool 50)",
    )
    parser.add_argument(
        "--alpha", type=budget, default=None, help="step size (default: 2.5*eps/steps)"
    )
    parser.add_argument(
        "--backend", default=None, help="library running the attack (default: the attack's first)"
    )
    parser.add_argument(
        "--p",
        type=comma_list(probability),
        default=None,
        help="noise: pixel probabilities (default: 0.4,0.6,0.8,1.0)",
    )
    parser.add_argument(
        "--sigma",
        type=positive,
        default=None,
        help="noise: Gaussian std (default: 128/255, read as std)",
    )
    parser.add_argument(
        "--noise-draws",
        type=count,
        default=5,
        help="noise, linf-noise: draws averaged (default: 5)",
    )
    parser.add_argument(
        "--attack-seed", type=seed, default=None, help="seed of randomized attacks (default: 0)"
    )
    parser.add_argument(
        "--overshoot", type=nonnegative, default=None, help="deepfool: overshoot (default: 0.02)"
    )
    parser.add_argument(
        "--candidates",
        type=at_least(2),
        default=None,
        help="deepfool: classes considered (default: 10)",
    )
    parser.add_argument(
        "--queries",
        type=count,
        default=None,
        help=f"square, autoattack: query budget (default: {QUERIES})",
    )
    parser.add_argument(
        "--targets",
        type=count,
        default=None,
        help=f"apgd-t, fab-t, autoattack: target classes (default: {TARGETS})",
    )
    parser.add_argument(
        "--restarts",
        type=count,
        default=None,
        help="ifsgm-restarts, apgd-ce, apgd-dlr: random restarts (default: 5; apgd: 1)",
    )
    parser.add_argument(
        "--per-step",
        action="store_true",
        help="also write instantaneous/cumulative accuracy after every step (ifsgm, ill; Fig. 11)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help=f"first re-run each setting through a second backend on {VERIFY_N} samples; fail on disagreement",
    )
    add_eval_flags(parser)


def settings(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every hyper-parameter combination to run for one attack (flags it does not take are ignored)."""
    spec = ATTACKS.get(name)
    fixed = {
        k: getattr(args, k)
        for k in SCALAR_FLAGS
        if k in spec.defaults and getattr(args, k) is not None
    }
    if "seed" in spec.defaults and args.attack_seed is not None:
        fixed["seed"] = args.attack_seed
    swept: dict[str, list[Any]] = {}
    for key in LIST_FLAGS:
        if key in spec.defaults:
            swept[key] = getattr(args, key) or list(spec.sweep.get(key, [spec.defaults[key]]))
    combos = itertools.product(*swept.values())
    return [{**fixed, **dict(zip(swept, combo, strict=True))} for combo in combos]


def run(args: argparse.Namespace) -> int:
    """Run every setting of every named attack, print one line each, append the rows."""
    from robustbench_lr import results

    names = [n.strip() for n in args.attack.split(",") if n.strip()]
    unverifiable = [n for n in names if ATTACKS.get(n).verify is None]
    if args.verify and unverifiable:
        checkable = [n for n in ATTACKS if ATTACKS[n].verify is not None]
        raise ValueError(
            f"--verify needs a second implementation, which {unverifiable} lack(s); "
            f"it works for: {', '.join(checkable)}"
        )
    setup = load_setup(args)
    written = 0
    for name in names:
        for params in settings(name, args):
            rows = _run_setting(name, params, setup, args)
            results.append(args.out, rows)  # per setting: an interrupted sweep keeps what it did
            written += len(rows)
    print(f"{written} rows -> {args.out}")
    return 0


def _run_setting(
    name: str, params: dict[str, Any], setup: Setup, args: argparse.Namespace
) -> list[dict[str, Any]]:
    from robustbench_lr.attacks.harness import evaluate_attack, evaluation_rows
    from robustbench_lr.attacks.verify import verify

    es = setup.eval_set
    crafter = setup.source or es.model
    if args.verify:
        agreement = verify(name, crafter, es.x[:VERIFY_N], es.y[:VERIFY_N], **params)
        print(f"verified: {agreement.describe()}")
    ev = evaluate_attack(
        name,
        es.model,
        es.x,
        es.y,
        source=setup.source,
        backend=args.backend,
        draws=args.noise_draws if name in AVERAGED_OVER_DRAWS else 1,
        batch_size=args.batch_size,
        **params,
    )
    shown = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in ev.params.items()
    )
    print(
        f"{name} [{ev.backend}, {ev.box}-box] {shown}: acc {ev.acc:.2f}% (clean {ev.clean_acc:.2f}%), "
        f"rho {ev.mean_rho:.4g}, n={ev.n}"
    )
    rows = evaluation_rows(
        ev, setup.model_columns, source=setup.source_path, extra=setup.subset_extra
    )
    if args.per_step and name in STEP_RULES:
        rows += _step_rows(name, ev.params, setup)
    return rows


def _step_rows(name: str, params: dict[str, Any], setup: Setup) -> list[dict[str, Any]]:
    from robustbench_lr.attacks.harness import param_text
    from robustbench_lr.attacks.search import step_accuracies

    es = setup.eval_set
    crafter = setup.source or es.model
    judge = es.model if setup.source is not None else None
    instant, cumulative = step_accuracies(
        crafter,
        es.x,
        es.y,
        attack=name,
        eps=params["eps"],
        alpha=params["alpha"],
        steps=params["steps"],
        judge=judge,
    )
    base = {
        **setup.model_columns,
        "experiment": "step-curve",
        "attack": name,
        "box": setup.box,
        "source": setup.source_path,
        "backend": "ours",
        "eps": params["eps"],
        "alpha": params["alpha"],
        "param": param_text({}, setup.subset_extra),
        "n": len(es.y),
    }
    rows = []
    for k in range(len(instant)):
        rows.append({**base, "steps": k, "metric": "acc_instant", "value": instant[k].item()})
        rows.append({**base, "steps": k, "metric": "acc_cumulative", "value": cumulative[k].item()})
    return rows
