"""`robustbench-lr audit`: the gradient-masking audit of one checkpoint.

Runs the battery of `robustbench_lr.audit` (gradient, gradient-free and unbounded attacks, then
every registered check), appends rows with experiment="audit" to the results file (among them
`worst_case_acc` and `failed_checks`, which the leaderboard reads) and writes
`audit_<dataset>_<arch>-w<width>_<method>_seed<S>_eps<E>.md` beside it. `--source` is the model
the transfer attack is crafted on (the N-LR one); without it the transfer check is skipped.
`--norm L2` runs the L2 battery at the dataset's L2 ε (rows filed under `threat = "L2"`, the
report named `..._L2-eps<E>.md`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustbench_lr.attacks.l2 import L2_EPS
from robustbench_lr.audit import (
    DEFAULT_EPS,
    THREATS,
    AuditOptions,
    audit_eps_by_dataset,
    audit_target,
)
from robustbench_lr.audit.options import BUDGET
from robustbench_lr.commands.argtypes import budget
from robustbench_lr.commands.common import add_flags, settings_flags
from robustbench_lr.commands.evalflags import add_eval_flags, load_target_from
from robustbench_lr.config import from_fields

NAME = "audit"
HELP = "audit a model for gradient masking: strong attacks, sanity checks, worst-case accuracy"

DEFAULTS = AuditOptions()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared evaluation flags, --eps, the budget flags (`audit.options.BUDGET`, as
    `AuditOptions` declares them) and --strict."""
    add_eval_flags(parser, n_default=DEFAULTS.n)
    per_dataset = ", ".join(
        f"{name} {eps * 255:g}/255" for name, eps in audit_eps_by_dataset().items()
    )
    from robustbench_lr.data import DATASETS

    l2 = [(name, DATASETS[name].l2_eps) for name in DATASETS.names()]
    per_dataset_l2 = ", ".join(f"{name} {eps:.4g}" for name, eps in l2 if eps != L2_EPS)
    parser.add_argument(
        "--eps",
        type=budget,
        default=None,
        help=f"L-inf budget (default: {per_dataset}, otherwise {DEFAULT_EPS * 255:g}/255); "
        f"with --norm L2 the L2 budget (default: {per_dataset_l2}, otherwise {L2_EPS:g})",
    )
    parser.add_argument(
        "--norm",
        choices=THREATS.names(),
        default=DEFAULTS.threat,
        help="the ball the battery attacks in: Linf (default; IFSGM, APGD, FAB, Square, ...) "
        "or L2 (PGD-L2, APGD / FAB / Square at norm L2, the authors' AutoAttack L2)",
    )
    add_flags(parser, settings_flags(AuditOptions, BUDGET))
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when any check fails"
    )


def options_from(args: argparse.Namespace) -> AuditOptions:
    """The audit's options the flags name."""
    return from_fields(AuditOptions, vars(args), threat=args.norm)  # --threat: a zoo model's


def run(args: argparse.Namespace) -> int:
    """Load the model (and --source) on its test subset, audit it, print one line per check,
    append the rows, write the Markdown report."""
    from robustbench_lr import results
    from robustbench_lr.files import atomic_write_text

    options = options_from(args)
    done = audit_target(load_target_from(args), options)
    report = done.report
    for check in report.checks:
        print(f"{check.status.upper():4s}  {check.name}: {check.detail}")
    results.append(args.out, done.rows)
    md = atomic_write_text(Path(args.out).parent / done.filename, done.markdown)
    print(
        f"robust accuracy (worst case per example over all attacks): {report.worst_case_acc:.1f}% "
        f"(clean {report.clean_acc:.1f}%, AutoAttack components {report.autoattack_acc:.1f}%); "
        f"{report.count('fail')} failed, {report.count('warn')} warned checks"
    )
    print(f"{len(done.rows)} rows -> {args.out}; report -> {md}")
    return 1 if args.strict and report.count("fail") else 0
