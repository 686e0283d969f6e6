"""`robustbench-lr audit`: the gradient-masking audit of one checkpoint.

Runs the battery of `robustbench_lr.audit` (gradient, gradient-free and unbounded attacks, then
every registered check), appends its rows (experiment="audit"; the leaderboard reads their
`worst_case_acc` and `failed_checks`) and writes its Markdown report beside the results file.
`--source` is the model the transfer attack is crafted on (the N-LR one); without it the
transfer check is skipped. `--norm L2` runs the L2 battery at the dataset's L2 ε.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustbench_lr import results
from robustbench_lr.attacks.l2 import L2_EPS
from robustbench_lr.audit import THREATS, audit_target
from robustbench_lr.audit.options import BUDGET, DEFAULT_EPS, AuditOptions, audit_eps_by_dataset
from robustbench_lr.commands.argtypes import budget
from robustbench_lr.commands.common import Flag, add_flags, settings_flags
from robustbench_lr.commands.evalflags import add_eval_flags, load_target_from
from robustbench_lr.config import from_fields
from robustbench_lr.data import DATASETS
from robustbench_lr.files import atomic_write_text

HELP = "audit a model for gradient masking: strong attacks, sanity checks, worst-case accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_eval_flags(parser, n_default=AuditOptions.n)
    linf = ", ".join(f"{name} {eps * 255:g}/255" for name, eps in audit_eps_by_dataset().items())
    l2_eps = {name: DATASETS[name].l2_eps for name in DATASETS.names()}
    l2 = ", ".join(f"{name} {eps:.4g}" for name, eps in l2_eps.items() if eps != L2_EPS)
    eps = (
        f"L-inf budget (default: {linf}, otherwise {DEFAULT_EPS * 255:g}/255); "
        f"with --norm L2 the L2 budget (default: {l2}, otherwise {L2_EPS:g})"
    )
    ball = (
        "the ball the battery attacks in: Linf (default; IFSGM, APGD, FAB, Square, ...) "
        "or L2 (PGD-L2, APGD / FAB / Square at norm L2, the authors' AutoAttack L2)"
    )
    add_flags(
        parser,
        [
            Flag("--eps", eps, budget),
            Flag("--norm", ball, None, AuditOptions.threat, choices=THREATS.names()),
            *settings_flags(AuditOptions, BUDGET),
            Flag.switch("--strict", "exit with status 1 when any check fails"),
        ],
    )


def options_from(args: argparse.Namespace) -> AuditOptions:
    return from_fields(AuditOptions, vars(args), threat=args.norm)  # --threat: a zoo model's


def run(args: argparse.Namespace) -> int:
    """Load the model (and --source) on its test subset, audit it, print one line per check,
    append the rows, write the Markdown report."""
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
