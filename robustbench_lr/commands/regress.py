"""`robustbench-lr regress`: the CI gate on robustness numbers."""

from __future__ import annotations

import argparse

from robustbench_lr.commands.argtypes import nonnegative

NAME = "regress"
HELP = "compare a results file with a baseline; exit 1 if robustness dropped or rows are missing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--results, --baseline, tolerances, --compare."""
    parser.add_argument("--results", required=True, help="new results CSV")
    parser.add_argument(
        "--baseline", required=True, help="baseline results CSV (e.g. reports/baseline/smoke.csv)"
    )
    parser.add_argument(
        "--tol-pp",
        type=nonnegative,
        default=2.0,
        help="allowed accuracy drop in percentage points, exact mode (default 2.0)",
    )
    parser.add_argument(
        "--tol-rel",
        type=nonnegative,
        default=0.1,
        help="allowed relative drop of rho/eps sizes (default 0.1)",
    )
    parser.add_argument(
        "--compare",
        choices=("auto", "exact", "interval"),
        default="auto",
        help=(
            "how accuracy drops are judged: exact = point values within --tol-pp (deterministic "
            "CPU runs); interval = only when the baseline lies above the new value's 95%% Wilson "
            "interval (non-deterministic CUDA runs); auto (default) = exact for rows trained on "
            "the CPU, interval for other devices"
        ),
    )
    parser.add_argument("--all", action="store_true", help="show unchanged rows too")


def run(args: argparse.Namespace) -> int:
    """Print the diff table and return 1 on regression (unreadable or empty inputs raise)."""
    from pathlib import Path

    from robustbench_lr import regress, results

    for path in (args.results, args.baseline):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")
    report = regress.compare(
        results.read(args.results),
        results.read(args.baseline),
        args.tol_pp,
        args.tol_rel,
        names=(f"results file {args.results}", f"baseline {args.baseline}"),
        mode=args.compare,
    )
    print(regress.render(report, args.all))
    return 0 if report.passed else 1
