"""Running a plan: the ledger decides what is done, the executor runs the rest, the one writer
merges the shards into `results.csv` in plan order and renders the report.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from robustbench_lr import checkpoints, cost, locks, results
from robustbench_lr.bench.context import (
    BENCH_LOCK,
    STAGES,
    BenchContext,
    Job,
)
from robustbench_lr.data import LoadOptions
from robustbench_lr.devices import resolve_device
from robustbench_lr.executors import Executor, Finished, Resources, SerialExecutor, Task
from robustbench_lr.experiments import Outcome
from robustbench_lr.files import remove_stale_temporaries
from robustbench_lr.ledger import SHARDS_DIR, CheckpointDigests, Ledger, code_identity
from robustbench_lr.profiles import Profile
from robustbench_lr.report import render_report


@dataclass
class BenchSummary:
    """What a bench run did: jobs run/skipped per stage (and why run), models trained, files."""

    ran: dict[str, int]
    skipped: dict[str, int]
    reasons: dict[str, Counter]
    trained: int
    files: list[Path]
    seconds: dict[str, float]
    reused: list[str]
    failed: dict[str, str] = field(default_factory=dict)  # job key -> the worker's traceback


class BenchJobsFailed(RuntimeError):
    """Some jobs raised; every job not depending on them ran, and their rows are merged."""

    def __init__(self, summary: BenchSummary) -> None:
        self.summary = summary
        keys = ", ".join(sorted(summary.failed))
        super().__init__(
            f"{len(summary.failed)} job(s) failed or were skipped for a failed dependency: {keys}; "
            "tracebacks are in bench.log; re-run to retry only these"
        )


@dataclass(frozen=True)
class StageCounts:
    """Per stage: jobs running, done and failed, for the driver's one progress bar."""

    by_stage: dict[str, Counter]
    running: set[str] = field(default_factory=set)

    def start(self, stage: str, key: str) -> None:
        self.running.add(key)
        self.by_stage[stage]["running"] += 1

    def finish(self, stage: str, key: str, ok: bool) -> None:
        if key in self.running:  # a job skipped for a failed dependency never started
            self.running.discard(key)
            self.by_stage[stage]["running"] -= 1
        self.by_stage[stage]["done" if ok else "failed"] += 1

    def text(self) -> str:
        """E.g. "train 2 running 5 done | attacks 1 running 0 done 1 failed"."""
        parts = []
        for stage, c in self.by_stage.items():
            if c["running"] or c["done"] or c["failed"]:
                failed = f" {c['failed']} failed" if c["failed"] else ""
                parts.append(f"{stage} {c['running']} running {c['done']} done{failed}")
        return " | ".join(parts)


@dataclass(frozen=True)
class JobDone:
    """What a worker hands back (rows stay in the shard it wrote)."""

    inputs: dict[str, str | None]
    rows: int
    lines: list[str]
    unchanged: bool = False
    device: str = ""  # where it ran, as the worker saw it (Ray sets CUDA_VISIBLE_DEVICES)


def run_bench(
    profile: Profile,
    out_dir: Path,
    ckpt_root: Path = Path("checkpoints"),
    device: str = "auto",
    load_options: LoadOptions | None = None,
    progress: bool = True,
    stages: list[str] | None = None,
    reuse_results: bool = False,
    executor: Executor | None = None,
    job_gpus: float = 0.25,
) -> BenchSummary:
    """Run every job of `profile` that is not validly done, merge the results, render them.

    The report folder is locked for the whole run (a second bench on it fails at once).
    `reuse_results` accepts rows that other code made (the report then says so); checkpoints
    and settings must still match. `executor` runs the job graph (default: serial, in this
    process); a non-training job asks for `job_gpus` of a GPU where there is one. A job that
    raises does not stop the others: `BenchJobsFailed` names it after the rest is merged.
    """
    ctx = BenchContext(
        profile, Path(out_dir), Path(ckpt_root), device, load_options or LoadOptions()
    )
    selected = stages or STAGES.names()
    for stage in selected:
        STAGES.get(stage)
    with locks.exclusive(ctx.out_dir, BENCH_LOCK):
        for folder in (ctx.out_dir, ctx.out_dir / SHARDS_DIR):
            remove_stale_temporaries(folder)
        ledger = Ledger(ctx.out_dir)
        digests = CheckpointDigests()
        planned = plan(ctx)
        jobs = {job.key: job for stage in selected for job in planned[stage]}
        needs = dependencies(planned)
        on_gpu = resolve_device(ctx.device).type == "cuda"
        tasks: list[Task] = []
        reasons: dict[str, Counter] = {stage: Counter() for stage in selected}
        why_of: dict[str, str] = {}
        for job in jobs.values():  # plan order: every training job before what reads its model
            why = ledger.why_not_done(job, digests, reuse_results)
            deps = tuple(key for key in needs[job.key] if key in {t.key for t in tasks})
            if why is None and not deps:
                continue
            # Rows whose only doubt is a model being rebuilt stay valid if it comes back the same.
            recheck = ledger.why_not_done(job, digests, reuse_results, inputs=False) is None
            expected = ledger.jobs[job.key]["inputs"] if recheck else None
            why_of[job.key] = why or "model being rebuilt"
            reasons[job.stage][why_of[job.key]] += 1
            gpus = (1.0 if job.stage == "train" else job_gpus) if on_gpu else 0.0
            work = partial(
                _execute, job.run, job.inputs, ledger.shard(job), ctx.out_dir, expected, ctx.device
            )
            tasks.append(Task(job.key, work, deps, Resources(1.0, gpus), job.stage))
        ran = {stage: 0 for stage in selected}
        failed: dict[str, str] = {}
        bar = tqdm(
            total=len(tasks), desc=f"bench {ctx.profile.name}", unit="job", disable=not progress
        )
        counts = StageCounts({stage: Counter() for stage in selected})

        def started(task: Task) -> None:
            counts.start(task.stage, task.key)
            bar.set_postfix_str(counts.text())

        def finished(done: Finished) -> None:
            job = jobs[done.key]
            bar.update()
            counts.finish(job.stage, job.key, done.error is None)
            if done.error is not None:
                failed[job.key] = done.error
                _log(ctx, f"{job.key}: FAILED on {done.host or '-'}\n{done.error}")
            elif done.value.unchanged:
                reasons[job.stage][why_of[job.key]] -= 1  # its model came back the same
            else:
                digests.forget_all()
                ledger.commit(job, done.value.inputs, done.seconds)
                ran[job.stage] += 1
                lines = "".join(f"  {line}\n" for line in done.value.lines)
                _log(
                    ctx,
                    f"{lines}{job.key}: {done.value.rows} rows, {done.host}, {done.value.device}, "
                    f"{done.seconds:.1f} s",
                )
            bar.set_postfix_str(counts.text())

        try:
            (executor or SerialExecutor()).run(tasks, finished, started)
        finally:
            bar.close()
        ledger.compact()
        every = [job for stage_jobs in planned.values() for job in stage_jobs]
        done_jobs = [
            job for job in every if ledger.why_not_done(job, digests, reuse_results) is None
        ]
        merged = _merge(ctx.results_path, [ledger.shard(job) for job in done_jobs])
        _write_cost(ctx, ledger, done_jobs)
        reused = [job.key for job in done_jobs if ledger.jobs[job.key]["code"] != code_identity()]
        seconds: dict[str, float] = {}
        for job in done_jobs:
            seconds[job.stage] = seconds.get(job.stage, 0.0) + ledger.jobs[job.key]["seconds"]
        state = {"seconds": seconds, "reused": reused}
        files = render_report(ctx.profile, ctx.out_dir, state, frame=merged)
        failed_in = Counter(jobs[key].stage for key in failed)
        skipped = {stage: len(planned[stage]) - ran[stage] - failed_in[stage] for stage in selected}
        summary = BenchSummary(
            ran,
            skipped,
            {stage: +by_reason for stage, by_reason in reasons.items()},
            ran.get("train", 0),
            files,
            seconds,
            reused,
            failed,
        )
    if summary.failed:
        raise BenchJobsFailed(summary)
    return summary


def plan(ctx: BenchContext) -> dict[str, list[Job]]:
    """Every stage's jobs, in plan order (training first)."""
    return {stage: STAGES.get(stage)(ctx) for stage in STAGES.names()}


def dependencies(planned: dict[str, list[Job]]) -> dict[str, tuple[str, ...]]:
    """Each job's prerequisites: the training jobs of the checkpoints it reads (a training job
    has none). The graph every executor runs, and `benchmarks/makespan.py` models."""
    trainer_of = {job.inputs[0]: job.key for job in planned["train"]}
    return {
        job.key: tuple(
            trainer_of[f] for f in job.inputs if f in trainer_of and job.stage != "train"
        )
        for jobs in planned.values()
        for job in jobs
    }


def _log(ctx: BenchContext, text: str) -> None:
    with (ctx.out_dir / "bench.log").open("a") as handle:
        handle.write(text.rstrip("\n") + "\n")


def _execute(
    run: Callable[[Path], Outcome],
    inputs: tuple[Path, ...],
    shard: Path,
    out_dir: Path,
    expected: dict[str, str] | None,
    device: str,
) -> JobDone:
    """A job on a worker: skip it when its rows are still valid, else run it and write its
    shard (write-then-rename); the driver then commits it to the ledger."""
    digests = CheckpointDigests()
    before = {str(folder): digests.get(folder) for folder in inputs}
    if expected is not None and before == expected:
        return JobDone(before, 0, [], unchanged=True)
    torch.manual_seed(0)
    outcome = run(out_dir)
    rows = [results.make_row(**row) for row in outcome.rows]
    results.write(shard, pd.DataFrame(rows, columns=results.COLUMNS))
    digests.forget_all()
    after = {str(folder): digests.get(folder) for folder in inputs}
    missing = [folder for folder, digest in after.items() if digest is None]
    if missing:
        raise checkpoints.CheckpointError(
            f"{missing[0]} is not a consistent checkpoint after the job ran"
        )
    return JobDone(after, len(outcome.rows), outcome.lines, device=_device_label(device))


def _device_label(device: str) -> str:
    """ "cpu", or "cuda" with the GPUs this worker was given (Ray's CUDA_VISIBLE_DEVICES)."""
    if resolve_device(device).type != "cuda":
        return "cpu"
    return f"cuda (GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '0')})"


def _write_cost(ctx: BenchContext, ledger: Ledger, done: list[Job]) -> None:
    """`cost.csv`: each trained model's training cost (its meta.json) and the ledger's attack
    and audit seconds per model (`cost.py`)."""
    rows = []
    for cfg in ctx.profile.models:
        folder = ctx.folder(cfg)
        if (folder / checkpoints.META_FILE).exists():
            rows += cost.training_rows(checkpoints.read_meta(folder), folder)
    seconds = [(job.stage, ledger.shard(job), ledger.jobs[job.key]["seconds"]) for job in done]
    cost.write(ctx.out_dir / cost.COST_FILE, rows + cost.job_rows(seconds))


def _merge(results_path: Path, shards: list[Path]) -> pd.DataFrame:
    """`results.csv` = the done jobs' rows in plan order; a later job's row replaces an
    earlier one with the same key (what appending them one by one would leave).

    Returns the merged rows as `results.read` would give them back, so the report renders
    from memory: the shards were read by `results.read`, and a float round-trips through the
    file unchanged. With no rows the file is read back, for the typed empty columns."""
    frames = [results.read(shard) for shard in shards]
    frames = [f for f in frames if not f.empty]
    if not frames:
        results.write(results_path, pd.DataFrame(columns=results.COLUMNS))
        return results.read(results_path)
    merged = pd.concat(frames, ignore_index=True).drop_duplicates(subset=results.KEY, keep="last")
    results.write(results_path, merged)
    return merged.reset_index(drop=True)
