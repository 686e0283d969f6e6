"""Fault injection: SIGKILL `train` and `bench` at every commit step, resume, compare bytes.

`ROBUSTBENCH_LR_KILL_AT=rename:K` makes the child process SIGKILL itself right after its K-th
atomic rename (robustbench_lr/faults.py), i.e. deterministically between every pair of renames
of a checkpoint write and of the bench's shard + ledger commit. The resumed result must equal,
byte for byte, what an uninterrupted run writes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robustbench_lr import checkpoints, faults
from robustbench_lr.bench import run_bench
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.profiles import load_profile
from robustbench_lr.train import train
from tests.conftest import SMALL, TINY_PROFILE

EPOCHS = 2
CFG = TrainConfig(**{**SMALL, "epochs": EPOCHS}, method="nlr", seed=0)
FILES = (checkpoints.MODEL_FILE, checkpoints.STATE_FILE, checkpoints.META_FILE)
TRAIN_ARGV = [
    *("train", "--dataset", "digits", "--arch", "resnet18", "--width", "0.25"),
    *("--method", "nlr", "--seed", "0", "--epochs", str(EPOCHS), "--device", "cpu"),
    "--no-progress",
]
# Renames of one `train` of EPOCHS epochs: the lock's holder file, then per epoch the train
# state, the weights and meta.json (the commit point).
TRAIN_RENAMES = 1 + 3 * EPOCHS


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    # CPU results are bit-identical for one thread count: the child uses the test process's.
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    return env


def _child(
    argv: list[str], kill_at: int | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    env = _env()
    if kill_at is not None:
        env[faults.ENV] = f"rename:{kill_at}"
    return subprocess.run(
        [sys.executable, "-m", "robustbench_lr", *argv],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def _kill_at_random_moments(
    cmd: list[str], rng: random.Random, times: int, seconds: tuple[float, float]
) -> None:
    """Start `cmd` `times` times, each SIGKILLed after a seeded random delay in `seconds`."""
    for _ in range(times):
        proc = subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(*seconds))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def clean_train(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clean")
    return _bytes(train(CFG, root, device="cpu", progress=False).folder)


@pytest.mark.parametrize("kill_at", range(1, TRAIN_RENAMES))
def test_train_killed_between_any_two_renames_resumes_to_the_same_bytes(
    tmp_path: Path, clean_train, kill_at: int
):
    killed = _child([*TRAIN_ARGV, "--out", str(tmp_path)], kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = train(CFG, tmp_path, device="cpu", progress=False).folder
    assert _bytes(folder) == clean_train
    assert not list(folder.glob(".*.tmp"))


def test_train_killed_after_its_last_rename_is_complete(tmp_path: Path, clean_train):
    killed = _child([*TRAIN_ARGV, "--out", str(tmp_path)], TRAIN_RENAMES)
    assert killed.returncode == -signal.SIGKILL
    result = train(CFG, tmp_path, device="cpu", progress=False)
    assert result.epochs_run == 0 and _bytes(result.folder) == clean_train


def test_train_killed_at_random_moments_resumes_to_the_same_bytes(tmp_path: Path, clean_train):
    rng = random.Random(13)
    folder = checkpoint_dir(tmp_path, CFG)
    cmd = [sys.executable, "-m", "robustbench_lr", *TRAIN_ARGV, "--out", str(tmp_path)]
    _kill_at_random_moments(cmd, rng, 3, (1.0, 6.0))
    assert _child([*TRAIN_ARGV, "--out", str(tmp_path)]).returncode == 0
    assert _bytes(folder) == clean_train


# The bench runs below use the session's tiny bench layout (`conftest.tiny_base`): `tiny.toml`,
# `out/` and `ck/` relative to the folder they run in, so their bytes compare with it directly.
BENCH_ARGV = ["bench", "--profile", "tiny.toml", "--out", "out", "--checkpoints", "ck"]
BENCH_ARGV += ["--device", "cpu", "--no-progress"]


@pytest.fixture
def bench_folder(tmp_path: Path, monkeypatch) -> Path:
    """An empty folder holding only the tiny profile, as the cwd."""
    (tmp_path / "tiny.toml").write_text(TINY_PROFILE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _finished_like(folder: Path, tiny_base: Path) -> None:
    """`folder`'s results and checkpoint are byte for byte the uninterrupted bench's."""
    profile = load_profile("tiny.toml")
    assert (folder / "out" / "results.csv").read_bytes() == (
        tiny_base / "out" / "results.csv"
    ).read_bytes()
    ours, clean = (checkpoint_dir(root / "ck", profile.models[0]) for root in (folder, tiny_base))
    assert _bytes(ours) == _bytes(clean)


# Renames of the tiny bench: 1 the bench's lock holder, 2 the training job's holder, 3-8 the
# train state, weights and meta.json of epochs 1-2, 9 the training job's shard, 10 its ledger
# entry, then the attack jobs' scratch rows, shards and ledger entries. The kills below fall
# inside the first epoch's write, between the last epoch's weights and its commit point (the
# "stale model" case), between a shard and its ledger entry, right after a ledger commit, and
# inside an attack job.
@pytest.mark.parametrize("kill_at", [3, 7, 9, 10, 12])
def test_bench_killed_at_a_commit_step_resumes_to_the_same_bytes(
    bench_folder: Path, tiny_base: Path, kill_at: int
):
    killed = _child(BENCH_ARGV, kill_at, cwd=bench_folder)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    run_bench(load_profile("tiny.toml"), Path("out"), Path("ck"), device="cpu", progress=False)
    _finished_like(bench_folder, tiny_base)


def test_bench_killed_at_random_moments_resumes_to_the_same_bytes(
    bench_folder: Path, tiny_base: Path
):
    rng = random.Random(29)
    cmd = [sys.executable, "-m", "robustbench_lr", *BENCH_ARGV]
    _kill_at_random_moments(cmd, rng, 2, (2.0, 8.0))
    assert _child(BENCH_ARGV, cwd=bench_folder).returncode == 0
    _finished_like(bench_folder, tiny_base)
