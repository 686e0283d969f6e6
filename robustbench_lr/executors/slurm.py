"""The submitit executor: one job per ready task, on Slurm or as local subprocesses.

`submitit` is imported only when this executor runs, so the default path works without it.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import sleep
from typing import Any

from robustbench_lr.executors.graph import Done, Finished, Started, Task, WorkerCall, _drive


class _SubmititEngine:
    """Submits one job per started task and polls for the finished ones."""

    def __init__(self, submit: Callable[[Task], Any], poll: float) -> None:
        self.submit, self.poll = submit, poll
        self.jobs: list[tuple[str, Any]] = []

    def start(self, task: Task) -> None:
        self.jobs.append((task.key, self.submit(task)))

    def wait(self) -> list[Finished]:
        while not (done := [(key, job) for key, job in self.jobs if job.done()]):
            sleep(self.poll)
        finished = {key for key, _ in done}
        self.jobs = [(key, job) for key, job in self.jobs if key not in finished]
        return [_job_result(key, job) for key, job in done]

    def stop(self) -> None:
        for _, job in self.jobs:
            job.cancel(check=False)
        self.jobs.clear()


def _job_result(key: str, job: Any) -> Finished:
    try:
        return job.result()
    except Exception as exc:  # submitit's errors for killed, timed-out or lost jobs vary
        return Finished(key, None, "".join(traceback.format_exception(exc)), "", 0.0)


@dataclass(frozen=True)
class SubmititExecutor:
    """One submitit job per ready task, on Slurm (`cluster="slurm"`) or as local subprocesses
    (`cluster="local"`, which is how the tests exercise this path).

    A job gets `ceil(cpus)` CPUs and, if its task wants any GPU, `gpus_per_job` GPUs, for `time`
    minutes on `partition`; `extra` goes to Slurm as-is (e.g. {"mem": "32G"}); submitit's logs
    and pickles go to `folder`. On preemption or time-out submitit calls
    `WorkerCall.checkpoint`, which resubmits the same call. `workers` caps the jobs in flight:
    no cap on Slurm (its queue decides), the CPU count locally, where nothing else would.
    `threads` None gives a Slurm job its CPUs and a local one cpu_count // workers. Local GPU
    jobs all see GPUs 0..gpus_per_job-1: to share GPUs on one machine, use Ray.
    """

    folder: str | Path = "submitit"
    cluster: str = "slurm"
    partition: str | None = None
    gpus_per_job: int = 1
    time: int = 240
    extra: Mapping[str, Any] = field(default_factory=dict)
    workers: int | None = None
    threads: int | None = None
    poll: float = 1.0

    def run(self, tasks: Sequence[Task], on_finished: Done, on_started: Started | None = None):
        import submitit

        cores = os.cpu_count() or 1
        local = self.cluster == "local"
        slots = self.workers or (cores if local else None)
        shared = max(1, cores // slots) if local and slots else None  # local jobs split the cores
        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)

        def submit(task: Task) -> Any:
            cpus = max(1, math.ceil(task.resources.cpus))
            threads = self.threads or shared or cpus
            executor.update_parameters(
                name=task.key,
                timeout_min=self.time,
                nodes=1,
                tasks_per_node=1,
                cpus_per_task=cpus,
                gpus_per_node=self.gpus_per_job if task.resources.gpus > 0 else 0,
                slurm_partition=self.partition,
                slurm_additional_parameters=dict(self.extra),
            )
            return executor.submit(WorkerCall(task.key, task.fn, threads))

        _drive(tasks, on_finished, _SubmititEngine(submit, self.poll), slots, on_started)
