"""The bench on Ray and on submitit (local subprocesses): the same bytes as the serial bench,
and a job that raises does not stop the others.

CPU numbers are bit-identical for equal torch threads per job, so both sides run one thread
per job here (two Ray workers on two cores).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustbench_lr import faults
from robustbench_lr.bench import STAGES, BenchJobsFailed, run_bench
from robustbench_lr.bench import stages as bench_stages
from robustbench_lr.config import checkpoint_dir
from robustbench_lr.executors import EXECUTORS, connect_ray
from robustbench_lr.ledger import LEDGER_FILE
from robustbench_lr.profiles import load_profile
from tests.conftest import TINY_PROFILE

FILES = ("model.safetensors", "train_state.safetensors", "meta.json")


def _bench(profile, root: Path, executor) -> tuple[bytes, dict[str, bytes]]:
    run_bench(profile, root / "out", root / "ck", "cpu", progress=False, executor=executor)
    csv = (root / "out" / "results.csv").read_bytes().replace(str(root).encode(), b"<root>")
    ckpts = {
        f"{cfg.method}/{cfg.seed}/{name}": (checkpoint_dir(root / "ck", cfg) / name).read_bytes()
        for cfg in profile.models
        for name in FILES
    }
    return csv, ckpts


def _tiny(tmp_path: Path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PROFILE)
    return load_profile(str(path))


@pytest.fixture(scope="module")
def tiny_serial(tmp_path_factory) -> tuple[bytes, dict[str, bytes]]:
    """The tiny bench's bytes from the serial executor at one thread per job."""
    root = tmp_path_factory.mktemp("tiny-serial")
    return _bench(_tiny(root), root, EXECUTORS.get("serial")(threads=1))


def test_the_tiny_bench_on_ray_equals_the_serial_one(tmp_path: Path, tiny_serial):
    ray = pytest.importorskip("ray")
    started = connect_ray(num_cpus=2)
    try:
        on_ray = _bench(_tiny(tmp_path), tmp_path / "ray", EXECUTORS.get("ray")(threads=1))
    finally:
        if started:
            ray.shutdown()
    assert on_ray[0] == tiny_serial[0]
    assert on_ray[1] == tiny_serial[1]


def test_a_ray_worker_killed_inside_a_training_job_is_retried_to_the_same_bytes(
    tmp_path: Path, monkeypatch, tiny_serial
):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    marker = tmp_path / "killed-once"
    # Workers inherit the environment of the Ray processes this test starts: the first worker
    # to commit a training epoch is SIGKILLed there (the driver never trains).
    monkeypatch.setenv(faults.ENV, "epoch:1")
    monkeypatch.setenv(faults.ONCE_ENV, str(marker))
    connect_ray(num_cpus=2)
    try:
        got = _bench(_tiny(tmp_path), tmp_path, EXECUTORS.get("ray")(threads=1, max_retries=2))
    finally:
        ray.shutdown()
    assert marker.exists()  # a worker really died after its first epoch
    assert got == tiny_serial


def test_a_driver_killed_mid_bench_on_ray_loses_and_duplicates_nothing(tmp_path: Path, tiny_serial):
    pytest.importorskip("ray")
    (tmp_path / "tiny.toml").write_text(TINY_PROFILE)
    argv = [
        sys.executable,
        "-m",
        "robustbench_lr",
        "bench",
        "--profile",
        str(tmp_path / "tiny.toml"),
    ]
    argv += ["--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ck")]
    argv += ["--device", "cpu", "--no-progress", "--executor", "ray", "--threads", "1"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen(argv, env=env, start_new_session=True, stderr=subprocess.PIPE)
    ledger = tmp_path / "out" / LEDGER_FILE
    deadline = time.monotonic() + 240
    while not (ledger.exists() and ledger.read_text().count("\n") >= 2):  # training committed
        assert driver.poll() is None and time.monotonic() < deadline, driver.stderr.read()
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)  # the driver alone, mid-bench
    driver.wait()
    time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)  # then the local Ray it started (as a reboot would)
    meta = checkpoint_dir(tmp_path / "ck", _tiny(tmp_path).models[0]) / "meta.json"
    trained = meta.stat().st_mtime_ns
    again = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert meta.stat().st_mtime_ns == trained  # the committed training job was not re-run
    csv = (tmp_path / "out" / "results.csv").read_bytes().replace(str(tmp_path).encode(), b"<root>")
    assert csv == tiny_serial[0]  # every row once, in order: nothing lost, nothing duplicated


def test_a_bench_through_submitit_equals_the_serial_one(tmp_path: Path, tiny_serial):
    pytest.importorskip("submitit")
    local = EXECUTORS.get("slurm")(
        cluster="local", folder=tmp_path / "submitit", workers=2, threads=1, poll=0.2
    )
    assert _bench(_tiny(tmp_path), tmp_path / "submitit-run", local) == tiny_serial


def test_a_job_that_raises_fails_alone_and_a_re_run_runs_only_it(tmp_path: Path, monkeypatch):
    profile = _tiny(tmp_path)
    real = bench_stages.run_sweep

    def broken(target, sweep):
        if sweep.attack == "noise":
            raise RuntimeError("noise attack broke")
        return real(target, sweep)

    monkeypatch.setattr(bench_stages, "run_sweep", broken)
    with pytest.raises(BenchJobsFailed, match=r"1 job\(s\) failed.*attack:noise:") as failure:
        run_bench(profile, tmp_path / "out", tmp_path / "ck", "cpu", progress=False)
    summary = failure.value.summary
    idle = dict.fromkeys(STAGES.names(), 0)
    assert summary.ran == {**idle, "train": 1, "attacks": 1}
    assert "noise attack broke" in (tmp_path / "out" / "bench.log").read_text()
    rows = (tmp_path / "out" / "results.csv").read_text()
    assert "ifsgm" in rows and ",noise," not in rows  # the independent job's rows are merged

    monkeypatch.setattr(bench_stages, "run_sweep", real)
    again = run_bench(profile, tmp_path / "out", tmp_path / "ck", "cpu", progress=False)
    assert again.ran == {**idle, "attacks": 1}
    assert ",noise," in (tmp_path / "out" / "results.csv").read_text()


def test_the_cli_exits_1_naming_the_failed_job(tmp_path: Path, monkeypatch, capsys):
    from robustbench_lr.cli import main

    (tmp_path / "tiny.toml").write_text(TINY_PROFILE)

    def broken(target, sweep):
        raise RuntimeError("every attack broke")

    monkeypatch.setattr(bench_stages, "run_sweep", broken)
    argv = ["bench", "--profile", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "out")]
    status = main([*argv, "--checkpoints", str(tmp_path / "ck"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1
    assert "2 job(s) failed" in err[0] and "attack:ifsgm-white:" in err[0]
