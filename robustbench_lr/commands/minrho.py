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
    """Search flags (their defaults `SearchSettings`') plus the evaluation flags."""
    d = SearchSettings()
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
            Flag(
                "--alpha",
                f"step size of ifsgm / ill (Appendix D: {_255(d.alpha)})",
                budget,
                d.alpha,
            ),
            Flag(
                "--max-steps",
                "steps before a sample counts as not fooled (default: %(default)s)",
                count,
                d.max_steps,
            ),
            Flag("--tol", f"bisection resolution in eps (default: {_255(d.tol)})", budget, d.tol),
            Flag(
                "--eps-max", f"largest eps searched (default: {_255(d.eps_max)})", budget, d.eps_max
            ),
            Flag(
                "--rate", "misclassified share to exceed (default: %(default)s)", open_unit, d.rate
            ),
            Flag.switch("--per-sample", per_sample),
            Flag("--backend", "deepfool backend (default: ours)"),
        ],
    )
    add_eval_flags(parser, batch_default=SearchSettings.batch_size)


def _255(value: float) -> str:
    """A budget as the paper writes it (1/255)."""
    return f"{value * 255:g}/255"


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
