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
        choices=("auto", "exact", "tolerance", "interval"),
        default="auto",
        help=(
            "how drops are judged: exact = point values within --tol-pp (same numeric path); "
            "tolerance = beyond the baseline's measured spread (another CPU or code path); "
            "interval = only when the baseline lies above the new value's 95%% Wilson interval "
            "(CUDA); auto (default) = row by row, exact where the rows' numerics keys match, "
            "tolerance where they differ, interval for CUDA rows or groups with no spread"
        ),
    )
    parser.add_argument(
        "--spread",
        help="the baseline's measured spread (default: <baseline>.spread.csv beside it, if any)",
    )
    parser.add_argument(
        "--measure-spread",
        nargs="+",
        metavar="PERTURBED_CSV",
        help=(
            "instead of gating: write the baseline's spread file from results of the same jobs "
            "re-run under a perturbed code path (benchmarks/numerics_levels.py) plus its seeds"
        ),
    )
    parser.add_argument("--all", action="store_true", help="show unchanged rows too")


def run(args: argparse.Namespace) -> int:
    """Print the diff table and return 1 on regression (unreadable or empty inputs raise)."""
    from pathlib import Path

    from robustbench_lr import regress, results, spread

    for path in (args.results, args.baseline, *(args.measure_spread or [])):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")
    if args.measure_spread:
        table = spread.measure(
            results.read(args.baseline), [results.read(p) for p in args.measure_spread]
        )
        target = Path(args.spread) if args.spread else spread.path_for(args.baseline)
        spread.write(target, table)
        print(
            f"wrote {target}: {int(table['tolerance'].notna().sum())} of {len(table)} groups measured"
        )
        return 0
    spread_path = Path(args.spread) if args.spread else spread.path_for(args.baseline)
    if args.spread and not spread_path.exists():
        raise FileNotFoundError(f"spread file {spread_path} does not exist")
    table = spread.read(spread_path) if spread_path.exists() else None
    report = regress.compare(
        results.read(args.results),
        results.read(args.baseline),
        args.tol_pp,
        args.tol_rel,
        names=(f"results file {args.results}", f"baseline {args.baseline}"),
        mode=args.compare,
        spread_table=table,
    )
    print(regress.render(report, args.all))
    return 0 if report.passed else 1
