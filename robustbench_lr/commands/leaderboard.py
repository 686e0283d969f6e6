"""`robustbench-lr leaderboard`: rank models across any number of results files."""

from __future__ import annotations

import argparse
from pathlib import Path

from robustbench_lr import leaderboard, results
from robustbench_lr.commands.argtypes import attack_name, budget, count
from robustbench_lr.commands.common import Flag, add_flags

HELP = "rank models by white-box robust accuracy (merging results files) and write model_info JSONs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="one or more results CSVs to merge")
    ranked_by = "attack whose accuracy ranks the models (default ifsgm)"
    out = "reports/leaderboard.md"
    add_flags(
        parser,
        [
            Flag("--attack", ranked_by, attack_name, "ifsgm"),
            Flag("--eps", "L∞ budget, e.g. 8/255 (default)", budget, "8/255"),
            Flag("--steps", "attack steps (default 20)", count, 20),
            Flag("--out", f"Markdown output (default {out})", None, out),
        ],
    )


def run(args: argparse.Namespace) -> int:
    for path in args.results:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")
    threat = leaderboard.Threat(args.attack, args.eps, args.steps)
    frame = results.read_many(args.results)
    named = ", ".join(args.results)
    # An empty board would pass where a CI step expects models ranked (`regress` refuses too).
    if frame.empty:
        raise ValueError(f"{named}: no rows; a leaderboard with nothing to rank cannot pass")
    table = leaderboard.build(frame, threat)
    if table.empty:
        raise ValueError(f"{named}: no model has clean or attack results to rank")
    run = frame[(frame["experiment"] == "attack") & (frame["box"] == "white")]
    if len(run) and table[["robust_acc", "worst_case_acc"]].isna().all(axis=None):
        # Attacked models ranked by no robust number: the threat asked for is not in the files
        # (a board of clean accuracies alone, with no attack rows at all, still ranks).
        found = sorted(
            {f"{a} eps={e:.4g} steps={s}" for a, e, s in run[["attack", "eps", "steps"]].values}
        )
        raise ValueError(
            f"{named}: no white-box {threat.attack} rows at eps={threat.eps:.4g} with "
            f"{threat.steps} steps to rank by; the files hold: {', '.join(found)}"
        )
    files = leaderboard.write(table, threat, Path(args.out))
    print(files[0].read_text())
    print(f"wrote {len(files)} file(s) under {Path(args.out).parent}")
    return 0
