"""`robustbench-lr shift`: accuracy under natural distribution shifts (CIFAR-10.1, CINIC-10).

The rows are those of `experiments.shift` (which documents them); this module checks the
shift names while parsing, loads the model, prints one line per shift with its 95 % Wilson
interval and appends the rows. Every set is read before the model is scored and the rows are
written last, so a bad name, a model of another dataset or a damaged file leaves the results
file as it was.
"""

from __future__ import annotations

import argparse

from robustbench_lr.commands.argtypes import comma_list, registered
from robustbench_lr.commands.common import Flag, add_flags
from robustbench_lr.commands.evalflags import add_eval_flags, load_target_from, record
from robustbench_lr.experiments.shift import ShiftSettings, run_shifts
from robustbench_lr.shifts import SHIFTS

HELP = "accuracy under natural distribution shifts (OODRobustBench: CIFAR-10.1, CINIC-10)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tested = ", ".join(f"{name} ({spec.dataset})" for name, spec in SHIFTS.items())
    shifts = (
        f"repeatable or comma-separated, of: {tested}; read under --data-root "
        "(--download fetches them) (default: every shift of the model's dataset)"
    )
    names = comma_list(registered("distribution shift", SHIFTS))  # checked before any model loads
    add_flags(parser, [Flag("--shift", shifts, names, action="append", metavar="NAME")])
    add_eval_flags(parser)


def run(args: argparse.Namespace) -> int:
    if args.source:
        raise ValueError("--source does not apply to shift: nothing is crafted on a source model")
    names = None if args.shift is None else tuple(dict.fromkeys(n for ns in args.shift for n in ns))
    target = load_target_from(args)
    settings = ShiftSettings(names, args.data_root, args.download, args.batch_size)
    return record(run_shifts(target, settings), args.out)
