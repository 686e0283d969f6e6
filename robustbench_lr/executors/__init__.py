"""Run a graph of tasks in-process, on Ray, or as submitit jobs (Slurm or local subprocesses).

The bench is a dependency graph (train, then attack/analyse/audit what was trained), run without
stage barriers (`graph.py`). The engines do the work (Ray schedules on CPUs/GPUs and retries
dead workers; submitit talks to Slurm and resubmits on preemption); `graph.py` only keeps the
graph: it starts ready tasks, reports each finished one to the driver's single writer, and skips
whatever depends on a failure. One module per engine: `serial.py`, `ray_engine.py`, `slurm.py`.

Only `serial` is imported eagerly: `ray` and `submitit` are imported by the executor that needs
them, so the default path works without either installed.
"""

from __future__ import annotations

from collections.abc import Callable

from robustbench_lr.executors.graph import (
    Executor,
    Finished,
    Resources,
    Task,
    WorkerCall,
    topological_order,
)
from robustbench_lr.executors.ray_engine import RayExecutor, connect_ray
from robustbench_lr.executors.serial import SerialExecutor
from robustbench_lr.executors.slurm import SubmititExecutor
from robustbench_lr.registry import Registry

__all__ = [
    "EXECUTORS",
    "Executor",
    "Finished",
    "RayExecutor",
    "Resources",
    "SerialExecutor",
    "SubmititExecutor",
    "Task",
    "WorkerCall",
    "connect_ray",
    "topological_order",
]

EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor")
EXECUTORS.add("serial", SerialExecutor)
EXECUTORS.add("ray", RayExecutor)
EXECUTORS.add("slurm", SubmititExecutor)
