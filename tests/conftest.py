"""Shared fixtures: small digits models trained once per test session (CPU, seconds each)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from robustbench_lr.analysis import ANALYSES, AnalysisOptions
from robustbench_lr.analysis.base import load_analysed
from robustbench_lr.audit import AuditOptions, audit_target
from robustbench_lr.audit.checkpoint import CheckpointAudit
from robustbench_lr.bench import run_bench
from robustbench_lr.config import TrainConfig
from robustbench_lr.devices import use_device
from robustbench_lr.experiments import Outcome
from robustbench_lr.profiles import load_profile
from robustbench_lr.target import load_target
from robustbench_lr.train import train

torch.set_num_threads(2)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


SESSION_THREADS = torch.get_num_threads()
SESSION_ENV = {name: os.environ.get(name) for name in THREAD_ENV}


@pytest.fixture(autouse=True)
def _keep_thread_settings():
    """CPU results are bit-identical only for one thread count, and child processes read it
    from OMP_NUM_THREADS: a test that runs an executor with `threads=1` (which sets both) must
    not leave the next test's subprocesses on another count than this process. Restored to
    the session's values, not the ones at this test's start: a module-scoped fixture that ran
    an executor before this fixture's setup would otherwise make its count stick."""
    yield
    torch.set_num_threads(SESSION_THREADS)
    for name, value in SESSION_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# The foundation recipe: digits, ResNet18 at width 0.25, 8 epochs (~5 s on 2 cores).
SMALL = {"dataset": "digits", "arch": "resnet18", "width": 0.25, "epochs": 8}


@pytest.fixture(scope="session")
def ckpt_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One checkpoint root shared by the session's trained models."""
    return tmp_path_factory.mktemp("checkpoints")


def train_small(root: Path, method: str = "nlr", seed: int = 0, **overrides) -> Path:
    """Train (or reuse) a small digits model and return its checkpoint folder."""
    options = overrides.pop("method_options", {})
    cfg = TrainConfig(**{**SMALL, **overrides}, method=method, seed=seed, method_options=options)
    return train(cfg, root, device="cpu", progress=False).folder


# The target the faces (`analyze`, `robustbench_lr.analyze`) hand an analysis for `options`.
analysis_target = load_analysed


def run_analysis(kind: str, origin: Path, out: Path, options: AnalysisOptions) -> Outcome:
    """`ANALYSES[kind]` on `origin` loaded as the faces load it (with the training split when
    the entry needs it), its rows bound for `out`."""
    analysis = ANALYSES[kind]
    return analysis.run(analysis.load(origin, options), replace(options, results=out))


def audit_checkpoint_on_cpu(
    checkpoint: Path, options: AuditOptions, source: Path | None = None
) -> CheckpointAudit:
    """The audit of a checkpoint on the CPU as `robustbench-lr audit` loads it: the seeded
    subset of `options.n` test images and the transfer `source`."""
    target = load_target(
        checkpoint, n=options.n, seed=options.seed, source=source, device=use_device("cpu")
    )
    return audit_target(target, options)


@pytest.fixture(scope="session")
def nlr_digits(ckpt_root: Path) -> Path:
    """Checkpoint folder of an N-LR digits ResNet18 (width 0.25, 8 epochs, seed 0; ~97% clean)."""
    return train_small(ckpt_root, "nlr", 0)


@pytest.fixture(scope="session")
def nlr_digits_seed1(ckpt_root: Path) -> Path:
    """A second N-LR digits model, seed 1: the black-box source, transfer source and judge."""
    return train_small(ckpt_root, "nlr", 1)


@pytest.fixture(scope="session")
def nlr_digits_20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same N-LR at 20 epochs, the recipe the LR-pair and adversarial-training tests compare
    against, trained once for both. A root of its own: the session root holds the
    8-epoch N-LR's folder, and the same folder with another epoch count is (rightly) refused
    as a different run."""
    return train_small(tmp_path_factory.mktemp("epochs20"), "nlr", 0, epochs=20)


# A one-model bench (2 epochs, one IFSGM setting, one noise level) for ledger and fault tests.
TINY_PROFILE = """
name = "tiny"
description = "one model, one attack: the ledger and fault-injection bench"
dataset = "digits"
epochs = 2
n = 40
[[models]]
arch = "resnet18"
width = 0.25
methods = ["nlr"]
[attacks]
ifsgm_eps = ["16/255"]
ifsgm_steps = [3]
blackbox = false
noise_p = [0.5]
[analyses]
kinds = []
"""


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bench finished once per session (`tiny.toml`, `out/`, `ck/` in one folder),
    made with relative paths so that a copy of it, or the same bench run from another folder,
    gives the same bytes: the ledger tests re-run copies, the fault tests compare with it."""
    base = tmp_path_factory.mktemp("tiny")
    (base / "tiny.toml").write_text(TINY_PROFILE)
    cwd = Path.cwd()
    os.chdir(base)
    try:
        run_bench(load_profile("tiny.toml"), Path("out"), Path("ck"), "cpu", progress=False)
    finally:
        os.chdir(cwd)
    return base


def pytest_collection_modifyitems(config, items):
    """Mark the tests `tests/tiers.py` leaves to the full suite as `slow`: `make test` runs
    `-m "not slow"`, `make test-all` everything."""
    from robustbench_lr import numerics
    from tests.tiers import is_slow

    native = numerics.mode() != "portable"
    for item in items:
        if is_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
        if native and item.get_closest_marker("portable"):
            item.add_marker(pytest.mark.skip(reason=PORTABLE_ONLY))


# Measured by running the whole suite with ROBUSTBENCH_LR_NUMERICS=native on an AVX-512 CPU:
# these tests assert run-to-run or batch-split bit equality, or a trained model's exact reach
# (a search's >99 % target, a corruption the baseline model loses accuracy to), which the
# portable setting (every CPU's default) guarantees and the native kernels do not.
PORTABLE_ONLY = "holds under the portable numeric setting (the default), not under native"
