"""`robustbench-lr regress`: the CI gate on robustness numbers."""

from __future__ import annotations

import argparse
from pathlib import Path

from robustbench_lr import regress, results, spread
from robustbench_lr.commands.argtypes import nonnegative
from robustbench_lr.commands.common import Flag, add_flags

HELP = "compare a results file with a baseline; exit 1 if robustness dropped or rows are missing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    baseline = "baseline results CSV (e.g. reports/baseline/smoke.csv)"
    tol_pp = "allowed accuracy drop in percentage points, exact mode (default 2.0)"
    tol_rel = "allowed relative drop of rho/eps sizes (default 0.1)"
    compare = (
        "how drops are judged: exact = point values within --tol-pp (same numeric path); "
        "tolerance = beyond the baseline's measured spread (another CPU or code path); "
        "interval = only when the baseline lies above the new value's 95%% Wilson interval "
        "(CUDA); auto (default) = row by row, exact where the rows' numerics keys match, "
        "tolerance where they differ, interval for CUDA rows or groups with no spread"
    )
    spread = "the baseline's measured spread (default: <baseline>.spread.csv beside it, if any)"
    measure = (
        "instead of gating: write the baseline's spread file from results of the same jobs "
        "re-run under a perturbed code path (benchmarks/numerics_levels.py) plus its seeds"
    )
    modes = ("auto", "exact", "tolerance", "interval")
    add_flags(
        parser,
        [
            Flag("--results", "new results CSV", required=True),
            Flag("--baseline", baseline, required=True),
            Flag("--tol-pp", tol_pp, nonnegative, 2.0),
            Flag("--tol-rel", tol_rel, nonnegative, 0.1),
            Flag("--compare", compare, None, "auto", choices=modes),
            Flag("--spread", spread),
        ],
    )
    parser.add_argument("--measure-spread", nargs="+", metavar="PERTURBED_CSV", help=measure)
    parser.add_argument("--all", action="store_true", help="show unchanged rows too")


def run(args: argparse.Namespace) -> int:
    """Print the diff table and return 1 on regression (unreadable or empty inputs raise)."""
    for path in (args.results, args.baseline, *(args.measure_spread or [])):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")
    spread_path = Path(args.spread) if args.spread else spread.path_for(args.baseline)
    if args.measure_spread:
        table = spread.measure(
            results.read(args.baseline), [results.read(p) for p in args.measure_spread]
        )
        spread.write(spread_path, table)
        print(
            f"wrote {spread_path}: {int(table['tolerance'].notna().sum())} of {len(table)} groups measured"
        )
        return 0
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
