"""The Ray executor: each task a remote call holding its resources, on this machine or a cluster.

`ray` is imported only when this executor runs, so the default path works without it.
"""

from __future__ import annotations

import logging
import math
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from robustbench_lr.executors.graph import (
    Done,
    Finished,
    Started,
    Task,
    WorkerCall,
    _drive,
    topological_order,
)


def _run_call(call: WorkerCall) -> Finished:
    """The Ray task body (module level, so workers import it rather than unpickle code)."""
    return call()


class _RayEngine:
    """Submits each started task as a remote call; waits on the refs still in flight."""

    def __init__(self, threads: int | None, max_retries: int) -> None:
        import ray

        self.ray = ray
        self.remote = ray.remote(_run_call)
        self.threads, self.max_retries = threads, max_retries
        self.refs: dict[Any, str] = {}

    def start(self, task: Task) -> None:
        threads = self.threads or max(1, math.floor(task.resources.cpus))
        call = WorkerCall(task.key, task.fn, threads)
        ref = self.remote.options(
            name=task.key,
            num_cpus=task.resources.cpus,
            num_gpus=task.resources.gpus,
            max_retries=self.max_retries,
            retry_exceptions=False,
        ).remote(call)
        self.refs[ref] = task.key

    def wait(self) -> list[Finished]:
        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        key = self.refs.pop(ready[0])
        try:
            return [self.ray.get(ready[0])]
        except self.ray.exceptions.RayError as exc:  # died past its retries, or unpicklable
            text = "".join(traceback.format_exception(exc))
            return [Finished(key, None, text, "", 0.0)]

    def stop(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref)
        self.refs.clear()


@dataclass(frozen=True)
class RayExecutor:
    """Each task a Ray remote call holding its `Resources`; Ray sets CUDA_VISIBLE_DEVICES.

    With no `address`, starts Ray on this machine (all its CPUs/GPUs, or `num_cpus`/`num_gpus`)
    and shuts it down afterwards; with one (e.g. "auto"), joins that cluster and leaves it up,
    as it does a Ray this process already started. A worker that dies (OOM-kill, node loss) is
    retried `max_retries` times; a task that raises is not. `threads` None gives each worker as
    many threads as CPUs its task reserves, so workers x threads never exceed the cores.
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    threads: int | None = None
    max_retries: int = 3

    def run(self, tasks: Sequence[Task], on_finished: Done, on_started: Started | None = None):
        topological_order(tasks)  # graph errors before a cluster is started
        started = connect_ray(self.address, self.num_cpus, self.num_gpus)
        try:
            _check_feasible(tasks)
            engine = _RayEngine(self.threads, self.max_retries)
            _drive(tasks, on_finished, engine, None, on_started)
        finally:
            if started:
                import ray

                ray.shutdown()


def connect_ray(
    address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None
) -> bool:
    """Start (or join) Ray offline and quietly; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from offline hosts
    local = {} if address else {"num_cpus": num_cpus, "num_gpus": num_gpus}
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, **local)
    return True


def _check_feasible(tasks: Sequence[Task]) -> None:
    """A task asking more than the whole cluster has would wait forever: refuse it up front."""
    import ray

    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0), have.get("GPU", 0)
    too_big = [t.key for t in tasks if t.resources.cpus > cpus or t.resources.gpus > gpus]
    if too_big:
        raise ValueError(f"the Ray cluster ({cpus} CPUs, {gpus} GPUs) cannot run: {too_big}")
