"""The task graph every executor runs: tasks, outcomes, the topological order, and the driver
loop (`_drive`) that starts ready tasks on an engine and skips the dependents of a failure.

Stages are not barriers: a task starts as soon as every task it depends on has finished OK, so
one slow training run never holds up the attacks on models that are already trained. The
engines (`serial`, `ray_engine`, `slurm`) only start tasks and report finished ones.
"""

from __future__ import annotations

import heapq
import os
import socket
import sys
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

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
