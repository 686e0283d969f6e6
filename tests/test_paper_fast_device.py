"""benchmarks/paper_fast_device.py: the stand-in datasets load through the suite's
real loaders with the real shapes and classes, and a shrunk bench's ledger seconds scale by the
sizes and epochs it was shrunk by. (The GPU run itself is `make gpu-check`'s.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from robustbench_lr import data
from robustbench_lr.bench import run_bench
from robustbench_lr.data import LoadOptions
from robustbench_lr.ledger import Ledger
from robustbench_lr.profiles import parse_profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import paper_fast_device as bench_device  # noqa: E402

SHRINK = 2500  # 20 training images per dataset, 20 test images


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("standins")
    bench_device.write_standins(root, SHRINK)
    return root


@pytest.mark.parametrize(
    "name, classes", [("cifar10", 10), ("cifar100", 100), ("cifar100-coarse", 20), ("svhn", 10)]
)
def test_standins_load_through_the_real_loaders(standins: Path, name: str, classes: int):
    loaded = data.load(name, LoadOptions(data_root=str(standins)))
    assert tuple(loaded.x_train.shape[1:]) == (3, 32, 32) and loaded.spec.num_classes == classes
    assert len(loaded.y_train) == 20 or name == "svhn"  # SVHN's 73,257 // 2500 = 29
    assert 0.0 <= float(loaded.x_test.min()) and float(loaded.x_test.max()) <= 1.0
    assert int(loaded.y_train.max()) < classes


def test_a_shrunk_bench_scales_by_its_sizes_and_epochs(standins: Path, tmp_path: Path):
    raw = {
        "name": "tiny-gpu",
        "dataset": "cifar10",
        "epochs": 3,
        "n": 40,
        "models": [{"arch": "resnet18", "width": 0.125, "methods": ["nlr"], "seeds": [0, 1]}],
        "attacks": {"ifsgm_eps": ["8/255"], "ifsgm_steps": [2], "noise_p": [0.5]},
        "analyses": {"kinds": []},
    }
    profile = parse_profile(raw, "tiny-gpu.toml")
    run = bench_device.shrunk(profile, 4, 1)
    assert run.n == 10 and {m.epochs for m in run.models} == {1}
    run_bench(
        run,
        tmp_path / "out",
        tmp_path / "ck",
        "cpu",
        LoadOptions(data_root=str(standins)),
        progress=False,
        stages=["train", "attacks"],
    )
    jobs = Ledger(tmp_path / "out").jobs
    stages = bench_device.scaled_seconds(jobs, profile, run, tmp_path / "ck", 4)
    train = sum(e["seconds"] for e in jobs.values() if e["stage"] == "train")
    attacks = sum(e["seconds"] for e in jobs.values() if e["stage"] == "attacks")
    assert stages["train"] == pytest.approx((train, train * 4 * 3))
    assert stages["attacks"] == pytest.approx((attacks, attacks * 4))
