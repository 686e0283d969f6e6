"""Executors on toy graphs: the same outcomes serially, on a local Ray cluster and as submitit
subprocesses; dependencies kept, stages not barriers, failures isolated, dead workers retried.

The toy functions live at module level so Ray workers and submitit subprocesses import them
(both run from the repository root, as pytest does).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest

from robustbench_lr.executors import (
    EXECUTORS,
    Finished,
    Resources,
    Task,
    WorkerCall,
    connect_ray,
    topological_order,
)

# The makespan model lives with the benchmarks that use it (benchmarks/scheduling.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from scheduling import simulate  # noqa: E402

SLOW_SECONDS = 4.0  # long enough for a submitit subprocess to start, finish and start another


def stamp(value: str, seconds: float = 0.0) -> tuple[str, float, float]:
    """Return `value` with this call's start and end (wall clock, comparable across processes)."""
    start = time.time()
    time.sleep(seconds)
    return value, start, time.time()


def boom(message: str) -> None:
    raise RuntimeError(message)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def die_once(marker: str) -> tuple[int, int]:
    """SIGKILL this worker on the first attempt (no exception, no cleanup); afterwards return
    the dead attempt's process id and this one's."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return int(Path(marker).read_text()), os.getpid()


def stall_once(marker: str, value: str) -> str:
    """Hang on the first attempt until preempted; return at once when resubmitted."""
    if not os.path.exists(marker):
        Path(marker).touch()
        time.sleep(120)
    return value


GRAPH = [
    Task("slow", partial(stamp, "slow", SLOW_SECONDS), stage="train"),
    Task("fast", partial(stamp, "fast"), stage="train"),
    Task("after-fast", partial(stamp, "after-fast"), deps=("fast",), stage="attack"),
    Task("boom", partial(boom, "toy failure"), deps=("fast",), stage="attack"),
    Task("after-boom", partial(stamp, "x"), deps=("boom",), stage="audit"),
    Task("after-both", partial(stamp, "y"), deps=("fast", "after-boom"), stage="audit"),
    Task("join", partial(stamp, "join"), deps=("slow", "after-fast"), stage="audit"),
    Task("threads", torch_threads, deps=("join",), stage="audit"),
]
VALUES = {"slow": "slow", "fast": "fast", "after-fast": "after-fast", "join": "join"}
SKIPPED = ("after-boom", "after-both")
# In one process nothing can overlap the slow task, so serially it need not wait.
_SERIAL_GRAPH = [replace(GRAPH[0], fn=partial(stamp, "slow")), *GRAPH[1:]]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for every Ray test of this module; shut down after."""
    ray = pytest.importorskip("ray")
    started = connect_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def _executor(name: str, request: pytest.FixtureRequest, tmp: Path):
    """The executors under test; "ray" joins the module's cluster, "submitit-local" runs real
    subprocesses through the same code path as Slurm."""
    if name == "ray":
        request.getfixturevalue("ray_cluster")
        return EXECUTORS.get("ray")()
    if name == "submitit-local":
        pytest.importorskip("submitit")
        return EXECUTORS.get("slurm")(cluster="local", folder=tmp / "submitit" / "%j", poll=0.1)
    return EXECUTORS.get(name)()


NAMES = ["serial", "ray", "submitit-local"]


@pytest.fixture(scope="module", params=NAMES)
def outcome(request, tmp_path_factory) -> tuple[str, list[Finished]]:
    """GRAPH run once per executor: its name and the `on_finished` calls in order."""
    calls: list[Finished] = []
    executor = _executor(request.param, request, tmp_path_factory.mktemp(request.param))
    executor.run(_SERIAL_GRAPH if request.param == "serial" else GRAPH, calls.append)
    return request.param, calls


def test_every_task_reported_once_with_the_same_values(outcome):
    _, calls = outcome
    by_key = {f.key: f for f in calls}
    assert sorted(f.key for f in calls) == sorted(t.key for t in GRAPH)
    assert {k: by_key[k].value[0] for k in VALUES} == VALUES
    assert all(by_key[k].error is None for k in VALUES)


def test_a_failure_skips_only_its_dependents(outcome):
    _, calls = outcome
    by_key = {f.key: f for f in calls}
    failed = by_key["boom"]
    assert failed.value is None
    assert "Traceback" in failed.error and "RuntimeError: toy failure" in failed.error
    assert "in boom" in failed.error  # the worker's frames, not just the message
    for key in SKIPPED:
        assert by_key[key].error == "skipped: dependency boom failed"
    assert by_key["join"].error is None and by_key["threads"].error is None


def test_dependents_start_after_their_deps_end(outcome):
    _, calls = outcome
    by_key = {f.key: f for f in calls}
    for task in GRAPH:
        if task.key in VALUES:
            for dep in task.deps:
                assert by_key[task.key].value[1] >= by_key[dep].value[2], (task.key, dep)


def test_stages_are_not_barriers_and_serial_runs_one_task_at_a_time(outcome):
    name, calls = outcome
    by_key = {f.key: f for f in calls}
    if name == "serial":  # nothing overlaps: each task starts after the one before it ended
        spans = sorted(f.value[1:] for f in calls if f.key in VALUES)
        assert all(start >= end for (_, end), (start, _) in pairwise(spans))
    else:
        assert by_key["after-fast"].value[1] < by_key["slow"].value[2]


def test_workers_split_the_cores(outcome):
    """2 workers on 2 CPUs get 1 thread each; serial leaves the driver's setting alone."""
    import torch

    name, calls = outcome
    expected = torch.get_num_threads() if name == "serial" else 1
    assert {f.key: f.value for f in calls}["threads"] == expected


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("tasks", "match"),
    [
        ([Task("a", partial(stamp, "a"), deps=("nope",))], "unknown keys: a -> nope"),
        (
            [Task("a", partial(stamp, "a"), deps=("b",)), Task("b", partial(stamp, "b"), ("a",))],
            "cycle among: a, b",
        ),
        ([Task("a", partial(stamp, "a")), Task("a", partial(stamp, "a"))], "duplicate"),
    ],
    ids=["unknown-dep", "cycle", "duplicate"],
)
def test_bad_graphs_fail_before_anything_runs(name, tasks, match, request, tmp_path):
    calls: list[Finished] = []
    with pytest.raises(ValueError, match=match):
        _executor(name, request, tmp_path).run(tasks, calls.append)
    assert calls == []


def test_topological_order_is_stable():
    a, b, c = (Task(k, partial(stamp, k)) for k in "abc")
    assert topological_order([a, b, c]) == [a, b, c]
    late = Task("x", partial(stamp, "x"), deps=("c",))
    assert [t.key for t in topological_order([late, a, b, c])] == ["a", "b", "c", "x"]


@pytest.mark.parametrize(("workers", "makespan"), [(1, 11.0), (2, 6.0), (3, 5.0)])
def test_simulate_hand_checked(workers, makespan):
    """a=3, b=1, c=1 after b, d=2 after a and c, e=4. On 2 workers: a, b at 0; c at 1; e at 2
    (d waits for a); d at 3, on the worker a freed: ends 5, while e ends 6."""
    tasks = [
        Task("a", partial(stamp, "a")),
        Task("b", partial(stamp, "b")),
        Task("c", partial(stamp, "c"), deps=("b",)),
        Task("d", partial(stamp, "d"), deps=("a", "c")),
        Task("e", partial(stamp, "e")),
    ]
    schedule = simulate(tasks, {"a": 3, "b": 1, "c": 1, "d": 2, "e": 4}, workers)
    assert schedule.makespan == makespan
    assert schedule.critical_seconds == 5.0 and schedule.critical_path == ("a", "d")
    if workers == 2:
        assert schedule.starts == {"a": 0, "b": 0, "c": 1, "e": 2, "d": 3}


def test_ray_retries_a_killed_worker(ray_cluster, tmp_path):
    calls: list[Finished] = []
    marker = tmp_path / "attempted"
    EXECUTORS.get("ray")().run([Task("dies-once", partial(die_once, str(marker)))], calls.append)
    [finished] = calls
    assert finished.error is None
    dead, alive = finished.value
    assert dead != alive  # a second worker process ran it


def test_ray_refuses_tasks_the_cluster_cannot_hold(ray_cluster):
    task = Task("gpu", partial(stamp, "gpu"), resources=Resources(gpus=1))
    with pytest.raises(ValueError, match="cannot run"):
        EXECUTORS.get("ray")().run([task], lambda finished: None)


def test_submitit_timeout_resubmits_the_same_call(tmp_path):
    """submitit's own local executor, with a 12 s limit and the signal 8 s before it: the first
    attempt is interrupted, `checkpoint` resubmits the call, the second attempt finishes."""
    submitit = pytest.importorskip("submitit")
    marker = tmp_path / "attempted"
    call = WorkerCall("stalls", partial(stall_once, str(marker), "resumed"), threads=1)
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=0.2, signal_delay_s=8)
    finished = executor.submit(call).result()
    assert marker.exists()
    assert (finished.key, finished.value, finished.error) == ("stalls", "resumed", None)


def test_serial_needs_no_engine():
    code = (
        "import sys\n"
        "from functools import partial\n"
        "from robustbench_lr.executors import EXECUTORS, Task\n"
        "out = []\n"
        "EXECUTORS.get('serial')().run([Task('a', partial(int, '7'))], out.append)\n"
        "assert out[0].value == 7, out\n"
        "assert not {'ray', 'submitit', 'torch'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
