"""`robustbench-lr report`: render tables, figures and an index from a results file."""

from __future__ import annotations

import argparse
from pathlib import Path

from robustbench_lr.report import render_report

HELP = "render the paper's tables (CSV + Markdown) and figures from a results file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results CSV (the tidy long-format file)")
    parser.add_argument(
        "--out", required=True, help="folder for tableN.csv/.md, figures/ and README.md"
    )


def run(args: argparse.Namespace) -> int:
    if not Path(args.results).exists():
        raise FileNotFoundError(f"{args.results} does not exist")
    for path in render_report(None, Path(args.out), results_path=Path(args.results)):
        print(path)
    return 0
