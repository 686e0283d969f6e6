"""The makespan model of a bench's job graph: list scheduling on k identical workers.

`makespan.py` uses it to say what more workers could win (the gap between the makespan and
the critical path); it follows the executors' first-ready-first rule on the same `Task` graph.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from robustbench_lr.executors.graph import Task, _dependents, topological_order


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
