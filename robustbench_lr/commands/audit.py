"""`robustbench-lr audit`: the gradient-masking audit of one checkpoint (issue 8).

Runs the battery of `robustbench_lr.audit` (gradient, gradient-free and unbounded attacks, then
every registered check), appends rows with experiment="audit" to the results file (among them
`worst_case_acc` and `failed_checks`, which the leaderboard reads) and writes
`audit_<dataset>_<arch>-w<width>_<method>_seed<S>_eps<E>.md` beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustbench_lr.audit import AUDIT_EPS, DEFAULT_EPS, AuditOptions
from robustbench_lr.commands.argtypes import budget, count, seed
from robustbench_lr.commands.common import add_data_flags, add_device_flag, load_options
from robustbench_lr.commands.evalflags import DEFAULT_RESULTS

NAME = "audit"
HELP = "audit a checkpoint for gradient masking: strong attacks, sanity checks, worst-case accuracy"

DEFAULTS = AuditOptions()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Target, transfer source, budget and subset flags, plus device and data flags."""
    per_dataset = ", ".join(f"{name} {eps * 255:g}/255" for name, eps in AUDIT_EPS.items())
    parser.add_argument(
        "--checkpoint", required=True, help="checkpoint folder to audit (holds meta.json)"
    )
    parser.add_argument(
        "--source",
        default=None,
        help="checkpoint transfer attacks are crafted on, e.g. the N-LR model (default: no transfer check)",
    )
    parser.add_argument(
        "--eps",
        type=budget,
        default=None,
        help=f"L-inf budget (default: {per_dataset}, otherwise {DEFAULT_EPS * 255:g}/255)",
    )
    parser.add_argument(
        "--n",
        type=count,
        default=DEFAULTS.n,
        help=f"uniformly sampled test subset size (default: {DEFAULTS.n})",
    )
    parser.add_argument(
        "--seed", type=seed, default=DEFAULTS.seed, help="seed of the test subset (default: 0)"
    )
    parser.add_argument(
        "--attack-seed",
        type=seed,
        default=DEFAULTS.attack_seed,
        help="seed of the randomized attacks (default: 0)",
    )
    parser.add_argument(
        "--queries",
        type=count,
        default=DEFAULTS.queries,
        help=f"Square queries (default: {DEFAULTS.queries}; AutoAttack uses 5000)",
    )
    parser.add_argument(
        "--steps",
        type=count,
        default=DEFAULTS.steps,
        help=f"APGD / FAB iterations (default: {DEFAULTS.steps}; AutoAttack uses 100)",
    )
    parser.add_argument(
        "--targets",
        type=count,
        default=DEFAULTS.targets,
        help=f"APGD-T / FAB-T target classes (default: {DEFAULTS.targets}; AutoAttack uses 9)",
    )
    parser.add_argument(
        "--restarts",
        type=count,
        default=DEFAULTS.restarts,
        help=f"IFSGM random restarts (default: {DEFAULTS.restarts})",
    )
    parser.add_argument(
        "--batch-size",
        type=count,
        default=DEFAULTS.batch_size,
        help=f"attack batch size (default: {DEFAULTS.batch_size})",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_RESULTS,
        help=f"results CSV to append to; audit_*.md goes beside it (default: {DEFAULT_RESULTS})",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when any check fails"
    )
    add_device_flag(parser)
    add_data_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Audit, print one line per check, append the rows, write the Markdown report."""
    from robustbench_lr import results
    from robustbench_lr.audit import audit_checkpoint
    from robustbench_lr.files import atomic_write_text

    options = AuditOptions(
        eps=args.eps,
        n=args.n,
        seed=args.seed,
        attack_seed=args.attack_seed,
        queries=args.queries,
        steps=args.steps,
        targets=args.targets,
        restarts=args.restarts,
        batch_size=args.batch_size,
    )
    done = audit_checkpoint(
        args.checkpoint,
        options,
        source=args.source,
        device=args.device,
        load_options=load_options(args),
    )
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
