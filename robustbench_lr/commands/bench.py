"""`robustbench-lr bench`: run a whole profile (what `make bench` calls)."""

from __future__ import annotations

import argparse
import time

from robustbench_lr.commands.argtypes import bench_stages
from robustbench_lr.commands.common import add_data_flags, add_device_flag, load_options

NAME = "bench"
HELP = "train, attack and analyze everything a profile lists, then render tables and figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--profile, --out, --checkpoints, device and data flags."""
    from robustbench_lr.profiles import shipped_profiles

    parser.add_argument(
        "--profile",
        default="cpu",
        help=f"shipped profile ({', '.join(shipped_profiles())}) or a path to a .toml file",
    )
    parser.add_argument(
        "--out", default=None, help="report folder (default: reports/<profile name>)"
    )
    parser.add_argument(
        "--checkpoints", default="checkpoints", help="checkpoint root (default: checkpoints/)"
    )
    parser.add_argument(
        "--stages",
        type=bench_stages,
        default=None,
        help="comma-separated subset of stages to run (default: all)",
    )
    parser.add_argument(
        "--reuse-results",
        action="store_true",
        help="keep rows that other code (another version or revision) made instead of re-running "
        "them; the report says which (checkpoints and settings must still match)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_device_flag(parser)
    add_data_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Run the bench and print a summary with every file written."""
    from pathlib import Path

    from robustbench_lr.bench import run_bench
    from robustbench_lr.profiles import load_profile

    profile = load_profile(args.profile)
    out = Path(args.out or f"reports/{profile.name}")
    stages = args.stages.split(",") if args.stages else None
    started = time.time()
    summary = run_bench(
        profile,
        out,
        Path(args.checkpoints),
        args.device,
        load_options(args),
        progress=not args.no_progress,
        stages=stages,
        reuse_results=args.reuse_results,
    )
    print(
        f"bench {profile.name}: done in {time.time() - started:.1f} s; models trained now: {summary.trained}"
    )
    for stage in summary.ran:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.reasons[stage].items()))
        print(
            f"  {stage}: ran {summary.ran[stage]} job(s){f' ({why})' if why else ''}, "
            f"{summary.skipped[stage]} already done"
        )
    if summary.reused:
        print(f"  {len(summary.reused)} job(s) reuse rows made by other code (--reuse-results)")
    print("files written:")
    for path in summary.files:
        print(f"  {path}")
    return 0
