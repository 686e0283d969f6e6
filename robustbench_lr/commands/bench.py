"""`robustbench-lr bench`: run a whole profile (what `make bench` calls)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from robustbench_lr.bench import BenchJobsFailed, run_bench
from robustbench_lr.commands.argtypes import bench_stages, count, probability
from robustbench_lr.commands.common import Flag, add_flags, add_run_flags, load_options
from robustbench_lr.executors import EXECUTORS
from robustbench_lr.profiles import load_profile, shipped_profiles

HELP = "train, attack and analyze everything a profile lists, then render tables and figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    profile = f"shipped profile ({', '.join(shipped_profiles())}) or a path to a .toml file"
    stages = "comma-separated subset of stages to run (default: all)"
    reuse = (
        "keep rows that other code (another version or revision) made instead of re-running "
        "them; the report says which (checkpoints and settings must still match)"
    )
    add_flags(
        parser,
        [
            Flag("--profile", profile, None, "cpu"),
            Flag("--out", "report folder (default: reports/<profile name>)"),
            Flag("--checkpoints", "checkpoint root (default: checkpoints/)", None, "checkpoints"),
            Flag("--stages", stages, bench_stages),
            Flag.switch("--reuse-results", reuse),
            Flag.switch("--no-progress", "hide the progress bar"),
        ],
    )
    executor = (
        "serial (default: one job after another in this process), ray (this machine's "
        "CPUs/GPUs, or a cluster with --ray-address) or slurm (submitit)"
    )
    threads = (
        "torch threads per job (default: serial keeps torch's; ray/slurm give each job "
        "the CPUs it reserves). CPU numbers are bit-identical for equal threads per job"
    )
    job_gpus = (
        "GPU share of each non-training job on a GPU machine (training takes 1; default 0.25)"
    )
    local = "local: submitit's local executor (real subprocesses; how the tests run this path)"
    add_flags(
        parser.add_argument_group("where the jobs run"),
        [
            Flag("--executor", executor, None, "serial", choices=("serial", "ray", "slurm")),
            Flag("--threads", threads, count),
            Flag("--job-gpus", job_gpus, probability, 0.25),
            Flag("--ray-address", "join this Ray cluster (e.g. auto)"),
            Flag("--slurm-partition", "Slurm partition"),
            Flag("--slurm-gpus-per-job", "GPUs of a job that wants any (default 1)", count, 1),
            Flag("--slurm-time", "time limit of a job in minutes (default 240)", count, 240),
            Flag.pairs("--slurm-option", "extra sbatch option, repeatable (e.g. mem=32G)"),
            Flag("--slurm-cluster", local, None, "slurm", choices=("slurm", "local")),
        ],
    )
    add_run_flags(parser)


def executor_from(args: argparse.Namespace, out: Path):
    """The executor the flags name (`serial` needs neither Ray nor submitit); submitit keeps
    its logs under the report folder."""
    options = {
        "serial": {},
        "ray": {"address": args.ray_address},
        "slurm": {
            "folder": str(out / "submitit"),
            "cluster": args.slurm_cluster,
            "partition": args.slurm_partition,
            "gpus_per_job": args.slurm_gpus_per_job,
            "time": args.slurm_time,
            "extra": dict(args.slurm_option),
        },
    }[args.executor]
    return EXECUTORS.get(args.executor)(threads=args.threads, **options)


def run(args: argparse.Namespace) -> int:
    """Run the bench and print a summary with every file written (exit 1 if a job failed)."""
    profile = load_profile(args.profile)
    out = Path(args.out or f"reports/{profile.name}")
    stages = args.stages.split(",") if args.stages else None
    started = time.time()
    try:
        summary = run_bench(
            profile,
            out,
            Path(args.checkpoints),
            args.device,
            load_options(args),
            progress=not args.no_progress,
            stages=stages,
            reuse_results=args.reuse_results,
            executor=executor_from(args, out),
            job_gpus=args.job_gpus,
        )
    except BenchJobsFailed as failure:
        _print_summary(profile.name, failure.summary, started)
        print(f"robustbench-lr bench: error: {failure}", file=sys.stderr)
        return 1
    _print_summary(profile.name, summary, started)
    return 0


def _print_summary(name: str, summary, started: float) -> None:
    print(
        f"bench {name}: done in {time.time() - started:.1f} s; models trained now: {summary.trained}"
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
