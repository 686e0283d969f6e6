"""`robustbench-lr minrho`: minimum perturbation for >99% misclassification (Tables 3 and 10).

Experiments written to the results file:
- `minrho`: for ifsgm / ill, metrics `eps` (the smallest grid ε with more than `--rate`
  misclassified, Table 10), `rho` and `rho_fooled` at that ε (Table 3), `misclassified` (%);
  with `--per-sample` also `median_eps`. For deepfool: `rho`, `rho_fooled`, `misclassified`.
  The search settings sit in `alpha`, `steps` (= --max-steps) and `param` (tol, eps_max, rate).
- `minrho-bisection`: `misclassified` (%) at every ε the bisection evaluated (`eps` column).
- `minrho-curve` (with `--per-sample`): `acc` (%) at every grid ε, from each sample's minimal ε.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from robustbench_lr.attacks.search import STEP_RULES
from robustbench_lr.commands.argtypes import budget, count, open_unit
from robustbench_lr.commands.evalflags import Setup, add_eval_flags, load_setup

NAME = "minrho"
HELP = "minimum perturbation for >99% misclassification: eps and rho per attack (Tables 3, 10)"
ATTACK_CHOICES = (*STEP_RULES.names(), "deepfool")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Search flags plus the evaluation flags."""
    parser.add_argument(
        "--attack",
        default="ifsgm,ill,deepfool",
        help=f"attack(s), comma-separated: {', '.join(ATTACK_CHOICES)} (default: all)",
    )
    parser.add_argument(
        "--alpha", type=budget, default="1/255", help="step size of ifsgm / ill (Appendix D: 1/255)"
    )
    parser.add_argument(
        "--max-steps",
        type=count,
        default=50,
        help="steps before a sample counts as not fooled (default: 50)",
    )
    parser.add_argument(
        "--tol",
        type=budget,
        default="0.5/255",
        help="bisection resolution in eps (default: 0.5/255)",
    )
    parser.add_argument(
        "--eps-max", type=budget, default="64/255", help="largest eps searched (default: 64/255)"
    )
    parser.add_argument(
        "--rate", type=open_unit, default=0.99, help="misclassified share to exceed (default: 0.99)"
    )
    parser.add_argument(
        "--per-sample",
        action="store_true",
        help="also each sample's minimal eps (batched bisection) -> accuracy-vs-eps curve rows",
    )
    parser.add_argument("--backend", default=None, help="deepfool backend (default: ours)")
    add_eval_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Search each named attack, print one line each, append the rows."""
    from robustbench_lr import results

    names = [n.strip() for n in args.attack.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACK_CHOICES]
    if unknown:
        raise ValueError(
            f"minrho cannot search {unknown}; valid choices: {', '.join(ATTACK_CHOICES)}"
        )
    setup = load_setup(args)
    rows: list[dict[str, Any]] = []
    for name in names:
        rows += (
            _deepfool_rows(setup, args) if name == "deepfool" else _search_rows(name, setup, args)
        )
    # A re-run's bisection may visit other ε than the last one did: replace the whole trace.
    results.append(args.out, rows, trace=("eps",))
    print(f"{len(rows)} rows -> {args.out}")
    return 0


def _base(name: str, setup: Setup, experiment: str, backend: str) -> dict[str, Any]:
    return {
        **setup.model_columns,
        "experiment": experiment,
        "attack": name,
        "box": setup.box,
        "source": setup.source_path,
        "backend": backend,
        "n": len(setup.eval_set.y),
    }


def _search_rows(name: str, setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    from robustbench_lr.attacks.harness import param_text
    from robustbench_lr.attacks.search import accuracy_curve, per_sample_min_eps, threshold_search

    es = setup.eval_set
    crafter = setup.source or es.model
    judge = es.model if setup.source is not None else None
    alpha, tol, eps_max = args.alpha, args.tol, args.eps_max
    search = {
        "attack": name,
        "alpha": alpha,
        "max_steps": args.max_steps,
        "tol": tol,
        "eps_max": eps_max,
        "judge": judge,
    }
    found = threshold_search(crafter, es.x, es.y, rate=args.rate, **search)
    settings = {
        "alpha": alpha,
        "steps": args.max_steps,
        "param": param_text(
            {"tol": tol, "eps_max": eps_max, "rate": args.rate}, setup.subset_extra
        ),
    }
    base = {**_base(name, setup, "minrho", "ours"), **settings}
    metrics = {
        "eps": found.eps,
        "rho": found.rho,
        "rho_fooled": found.rho_fooled,
        "misclassified": 100.0 * found.misclassified,
    }
    bisection = {**base, "experiment": "minrho-bisection", "metric": "misclassified"}
    rows = [{**bisection, "eps": eps, "value": 100.0 * share} for eps, share in found.evaluations]
    reached = (
        "not reached"
        if math.isnan(found.eps)
        else f"eps {found.eps:.4g} ({found.eps * 255:.3g}/255)"
    )
    print(
        f"minrho {name} [{setup.box}-box]: {reached}, rho {found.rho:.4g}, "
        f"misclassified {100 * found.misclassified:.2f}% after {len(found.evaluations)} evaluations"
    )
    if args.per_sample:
        min_eps = per_sample_min_eps(crafter, es.x, es.y, **search)
        grid = torch.arange(0, math.ceil(eps_max / tol - 1e-9) + 1, dtype=torch.float64) * tol
        curve = accuracy_curve(min_eps, grid)
        metrics["median_eps"] = min_eps.median().item()
        curve_base = {**base, "experiment": "minrho-curve", "metric": "acc"}
        rows += [
            {**curve_base, "eps": e, "value": a}
            for e, a in zip(grid.tolist(), curve.tolist(), strict=True)
        ]
    rows += [{**base, "metric": metric, "value": value} for metric, value in metrics.items()]
    return rows


def _deepfool_rows(setup: Setup, args: argparse.Namespace) -> list[dict[str, Any]]:
    from robustbench_lr.attacks.harness import evaluate_attack, setting_fields

    es = setup.eval_set
    ev = evaluate_attack(
        "deepfool",
        es.model,
        es.x,
        es.y,
        source=setup.source,
        backend=args.backend,
        batch_size=args.batch_size,
    )
    base = {
        **_base("deepfool", setup, "minrho", ev.backend),
        **setting_fields(ev.params, setup.subset_extra),
    }
    print(
        f"minrho deepfool [{ev.backend}, {setup.box}-box]: rho {ev.mean_rho:.4g} "
        f"(fooled only {ev.rho_fooled:.4g}), misclassified {100 - ev.acc:.2f}%"
    )
    metrics = {"rho": ev.mean_rho, "rho_fooled": ev.rho_fooled, "misclassified": 100.0 - ev.acc}
    return [{**base, "metric": metric, "value": value} for metric, value in metrics.items()]
