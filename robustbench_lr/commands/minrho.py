"""`robustbench-lr minrho`: minimum perturbation for >99% misclassification (Tables 3 and 10).

The rows are those of `experiments.minrho` (which documents them); this module maps flags to
a `Search`, prints the summary lines and appends the rows.
"""

from __future__ import annotations

import argparse

from robustbench_lr.attacks.search import SEARCHES, SearchSettings
from robustbench_lr.commands.argtypes import budget, count, open_unit
from robustbench_lr.commands.common import Flag, add_flags
from robustbench_lr.commands.evalflags import add_eval_flags, load_target_from
from robustbench_lr.config import from_fields
from robustbench_lr.experiments.minrho import MinRho, run_search

NAME = "minrho"
HELP = "minimum perturbation for >99% misclassification: eps and rho per attack (Tables 3, 10)"
ATTACK_CHOICES = tuple(SEARCHES.names())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Search flags plus the evaluation flags."""
    per_sample = "also each sample's minimal eps (batched bisection) -> accuracy-vs-eps curve rows"
    add_flags(
        parser,
        [
            Flag(
                "--attack",
                f"attack(s), comma-separated: {', '.join(ATTACK_CHOICES)} (default: all)",
                None,
                "ifsgm,ill,deepfool",
            ),
            Flag("--alpha", "step size of ifsgm / ill (Appendix D: 1/255)", budget, "1/255"),
            Flag(
                "--max-steps", "steps before a sample counts as not fooled (default: 50)", count, 50
            ),
            Flag("--tol", "bisection resolution in eps (default: 0.5/255)", budget, "0.5/255"),
            Flag("--eps-max", "largest eps searched (default: 64/255)", budget, "64/255"),
            Flag("--rate", "misclassified share to exceed (default: 0.99)", open_unit, 0.99),
            Flag.switch("--per-sample", per_sample),
            Flag("--backend", "deepfool backend (default: ours)"),
        ],
    )
    add_eval_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Search each named attack, print one line each, append the rows."""
    from robustbench_lr import results

    names = tuple(n.strip() for n in args.attack.split(",") if n.strip())
    search = MinRho(names, from_fields(SearchSettings, vars(args)))
    outcome = run_search(load_target_from(args), search)
    print("\n".join(outcome.lines))
    # A re-run's bisection may visit other ε than the last one did: replace the whole trace.
    results.append(args.out, outcome.rows, trace=("eps",))
    print(f"{len(outcome.rows)} rows -> {args.out}")
    return 0
