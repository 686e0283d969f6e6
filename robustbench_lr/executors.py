"""Run a graph of tasks in-process, on Ray, or as submitit jobs (Slurm or local subprocesses).

The bench is a dependency graph (train, then attack/analyse/audit what was trained). Stages are
not barriers: a task starts as soon as every task it depends on has finished OK, so one slow
training run never holds up the attacks on models that are already trained. The engines do the
work (Ray schedules on CPUs/GPUs and retries dead workers; submitit talks to Slurm and resubmits
on preemption); this module only keeps the graph: it starts ready tasks, reports each finished
one to the driver's single writer, and skips whatever depends on a failure.

Only `serial` is imported eagerly: `ray` and `submitit` are imported by the executor that needs
them, so the default path works without either installed.
"""

from __future__ import annotations

import heapq
import math
import os
import socket
import sys
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter, sleep
from typing import TYPE_CHECKING, Any, Protocol

from robustbench_lr.registry import Registry

if TYPE_CHECKING:
    from submitit.helpers import DelayedSubmission


@dataclass(frozen=True)
class Resources:
    """What one task needs while it runs; Ray reserves it, Slurm allocates it per job."""

    cpus: float = 1.0
    gpus: float = 0.0  # a fraction lets several attacks share a GPU (Ray only)


@dataclass(frozen=True)
class Task:
    """One node of the graph. `fn` crosses processes, so it is a picklable zero-argument call
    (a `functools.partial` of a module-level function over plain data)."""

    key: str
    fn: Callable[[], Any]
    deps: tuple[str, ...] = ()
    resources: Resources = Resources()
    stage: str = ""


@dataclass(frozen=True)
class Finished:
    """The outcome of one task, as the driver sees it.

    `error` is None on success, else the worker's formatted traceback (or
    "skipped: dependency K failed"); `value` is then None. `host` is where it ran ("" if it
    never ran) and `seconds` the wall time of `fn` itself.
    """

    key: str
    value: Any
    error: str | None
    host: str
    seconds: float


Started = Callable[[Task], None]
Done = Callable[[Finished], None]


class Executor(Protocol):
    """Runs `tasks` under their dependencies, calling `on_finished` once per task (and
    `on_started` as each is handed to the engine), in the driver process and one call at a
    time, so the driver stays the one writer of the results."""

    def run(self, tasks: Sequence[Task], on_finished: Done, on_started: Started | None = None): ...


def topological_order(tasks: Sequence[Task]) -> list[Task]:
    """`tasks` ordered so every task comes after its deps, otherwise keeping the given order.

    Duplicate keys, unknown deps and cycles raise ValueError, before anything runs.
    """
    index = {}
    for i, task in enumerate(tasks):
        if task.key in index:
            raise ValueError(f"duplicate task key {task.key!r}")
        index[task.key] = i
    unknown = sorted({f"{t.key} -> {d}" for t in tasks for d in t.deps if d not in index})
    if unknown:
        raise ValueError(f"tasks depend on unknown keys: {', '.join(unknown)}")
    unmet = {task.key: len(set(task.deps)) for task in tasks}
    dependents = _dependents(tasks)
    ready = [index[t.key] for t in tasks if not unmet[t.key]]
    heapq.heapify(ready)
    order = []
    while ready:
        task = tasks[heapq.heappop(ready)]
        order.append(task)
        for key in dependents[task.key]:
            unmet[key] -= 1
            if not unmet[key]:
                heapq.heappush(ready, index[key])
    if len(order) < len(tasks):
        stuck = [t.key for t in tasks if unmet[t.key]]
        raise ValueError(f"dependency cycle among: {', '.join(stuck)}")
    return order


def _dependents(tasks: Sequence[Task]) -> dict[str, list[str]]:
    dependents: dict[str, list[str]] = defaultdict(list)
    for task in tasks:
        for dep in dict.fromkeys(task.deps):
            dependents[dep].append(task.key)
    return dependents


@dataclass(frozen=True)
class Schedule:
    """A modelled run: each start, the makespan, and the critical path no worker count beats."""

    makespan: float
    critical_seconds: float
    critical_path: tuple[str, ...]
    starts: dict[str, float]


def simulate(tasks: Sequence[Task], seconds: Mapping[str, float], workers: int) -> Schedule:
    """List-schedule `tasks` (durations `seconds[key]`) on `workers` identical workers.

    Whenever a worker is free it takes the ready task that comes first in topological order,
    which is what the executors do; the gap between `makespan` and `critical_seconds` is what
    more workers could still win (see `benchmarks/`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    order = topological_order(tasks)
    missing = [t.key for t in order if t.key not in seconds]
    if missing:
        raise ValueError(f"no duration for: {', '.join(missing)}")
    index = {task.key: i for i, task in enumerate(order)}
    unmet = {task.key: len(set(task.deps)) for task in order}
    dependents = _dependents(order)
    ready = [index[t.key] for t in order if not unmet[t.key]]
    running: list[tuple[float, int]] = []
    starts: dict[str, float] = {}
    now = 0.0
    while ready or running:
        while ready and len(running) < workers:
            key = order[heapq.heappop(ready)].key
            starts[key] = now
            heapq.heappush(running, (now + seconds[key], index[key]))
        now = running[0][0]
        while running and running[0][0] <= now:
            for key in dependents[order[heapq.heappop(running)[1]].key]:
                unmet[key] -= 1
                if not unmet[key]:
                    heapq.heappush(ready, index[key])
    makespan = max((starts[t.key] + seconds[t.key] for t in order), default=0.0)
    return Schedule(makespan, *_critical_path(order, seconds), starts)


def _critical_path(
    order: list[Task], seconds: Mapping[str, float]
) -> tuple[float, tuple[str, ...]]:
    """The longest chain of durations through the dependencies (`order` is topological)."""
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    for task in order:
        dep = max(task.deps, key=finish.__getitem__, default=None)
        before[task.key] = dep
        finish[task.key] = seconds[task.key] + (finish[dep] if dep else 0.0)
    if not order:
        return 0.0, ()
    last: str | None = max(finish, key=finish.__getitem__)
    total, path = finish[last], []
    while last is not None:
        path.append(last)
        last = before[last]
    return total, tuple(reversed(path))


@dataclass(frozen=True)
class WorkerCall:
    """What crosses the process boundary: one task's function and the worker's thread budget.

    It sets the thread count before `fn` runs, because oversubscribed OpenMP pools (workers x
    threads > cores) once turned a 2-second run into ten minutes, and it returns the traceback
    as text so the driver never needs to unpickle a worker's exception. `checkpoint` makes it
    checkpointable for submitit (which checks for the method rather than the
    `submitit.helpers.Checkpointable` base, so this module need not import submitit).
    """

    key: str
    fn: Callable[[], Any]
    threads: int | None = None

    def __call__(self) -> Finished:
        if self.threads is not None:
            _limit_threads(self.threads)
        start = perf_counter()
        try:
            value, error = self.fn(), None
        except Exception:  # any failure of the task is reported, not raised, by design
            value, error = None, traceback.format_exc()
        return Finished(self.key, value, error, socket.gethostname(), perf_counter() - start)

    def checkpoint(self) -> DelayedSubmission:
        """On preemption or time limit, resubmit the same call: training resumes by itself."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def _limit_threads(threads: int) -> None:
    """Size torch's pool now if torch is loaded; otherwise OMP_NUM_THREADS sizes it when it
    loads (as it does MKL's and child processes'), which spares workers importing torch."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class _Engine(Protocol):
    """The part an engine supplies: start a task, and block until started ones finish."""

    def start(self, task: Task) -> None: ...

    def wait(self) -> list[Finished]: ...  # at least one, when any is running

    def stop(self) -> None: ...  # cancel whatever is still running


def _drive(
    tasks: Sequence[Task],
    on_finished: Done,
    engine: _Engine,
    slots: int | None = None,
    on_started: Started | None = None,
) -> None:
    """Start every ready task (at most `slots` at once), report each finished one, skip the
    dependents of a failure. No stage barriers: readiness is per task."""
    order = topological_order(tasks)
    unmet = {task.key: set(task.deps) for task in order}
    dependents = _dependents(order)
    waiting, running = order, 0
    try:
        while waiting or running:
            free = len(waiting) if slots is None else slots - running
            ready = [task for task in waiting if not unmet[task.key]][: max(free, 0)]
            for task in ready:
                engine.start(task)
                if on_started is not None:
                    on_started(task)
            started = {task.key for task in ready}
            waiting = [task for task in waiting if task.key not in started]
            running += len(ready)
            for done in engine.wait():
                running -= 1
                on_finished(done)
                if done.error is None:
                    for key in dependents[done.key]:
                        unmet[key].discard(done.key)
                    continue
                doomed = _downstream(done.key, dependents)
                for task in waiting:
                    if task.key in doomed:
                        why = f"skipped: dependency {done.key} failed"
                        on_finished(Finished(task.key, None, why, "", 0.0))
                waiting = [task for task in waiting if task.key not in doomed]
    finally:
        engine.stop()


def _downstream(key: str, dependents: Mapping[str, list[str]]) -> set[str]:
    """Every task that depends on `key`, directly or through others."""
    found: set[str] = set()
    todo = list(dependents.get(key, ()))
    while todo:
        nxt = todo.pop()
        if nxt not in found:
            found.add(nxt)
            todo.extend(dependents.get(nxt, ()))
    return found


class _InProcess:
    """Runs each started task when waited on, one at a time, in this process."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self.queue: deque[Task] = deque()

    def start(self, task: Task) -> None:
        self.queue.append(task)

    def wait(self) -> list[Finished]:
        task = self.queue.popleft()
        return [WorkerCall(task.key, task.fn, self.threads)()]

    def stop(self) -> None:
        self.queue.clear()


@dataclass(frozen=True)
class SerialExecutor:
    """In order, in this process: the default, and what tests and debugging want.

    `threads` None leaves torch's current setting alone.
    """

    threads: int | None = None

    def run(self, tasks: Sequence[Task], on_finished: Done, on_started: Started | None = None):
        _drive(tasks, on_finished, _InProcess(self.threads), 1, on_started)


def _whole_cpus(cpus: float) -> int:
    return max(1, math.floor(cpus))


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
        call = WorkerCall(task.key, task.fn, self.threads or _whole_cpus(task.resources.cpus))
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
    import logging

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
    too_big = [
        t.key
        for t in tasks
        if t.resources.cpus > have.get("CPU", 0) or t.resources.gpus > have.get("GPU", 0)
    ]
    if too_big:
        cpus, gpus = have.get("CPU", 0), have.get("GPU", 0)
        raise ValueError(f"the Ray cluster ({cpus} CPUs, {gpus} GPUs) cannot run: {too_big}")


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


EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor")
EXECUTORS.add("serial", SerialExecutor)
EXECUTORS.add("ray", RayExecutor)
EXECUTORS.add("slurm", SubmititExecutor)
