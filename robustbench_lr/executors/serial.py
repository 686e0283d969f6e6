"""The serial executor: every task in order, in this process."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from robustbench_lr.executors.graph import Done, Finished, Started, Task, WorkerCall, _drive


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
