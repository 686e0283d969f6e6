"""Natural shifts: CIFAR-10.1 (v6 .npy pair) and CINIC-10 (test/<class>/*.png) read from small
files in their real layouts, refused when missing or malformed, and the bench's shifts stage
with its table and leaderboard column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustbench_lr import results
from robustbench_lr.bench import run_bench
from robustbench_lr.data import LoadOptions
from robustbench_lr.profiles import load_profile
from robustbench_lr.shifts import CIFAR10_CLASSES, ShiftError, load_shift
from tests.zoo_files import write_cifar10


def _write_cifar101(root: Path, count: int = 30, cut: int = 0) -> None:
    """Image i is the constant grey level i, labelled i % 10."""
    folder = root / "CIFAR-10.1"
    folder.mkdir(parents=True, exist_ok=True)
    data = np.repeat(np.arange(count, dtype=np.uint8), 32 * 32 * 3).reshape(count, 32, 32, 3)
    np.save(folder / "cifar10.1_v6_data.npy", data[: count - cut])
    np.save(folder / "cifar10.1_v6_labels.npy", np.arange(count) % 10)


def test_cifar101_reads_all_or_a_seeded_subset(tmp_path: Path):
    _write_cifar101(tmp_path)
    x, y = load_shift("cifar10.1", tmp_path)
    assert x.shape == (30, 3, 32, 32) and float(x[7].max()) == pytest.approx(7 / 255)
    assert y.tolist() == [i % 10 for i in range(30)]
    sub_x, sub_y = load_shift("cifar10.1", tmp_path, n=8, seed=3)
    level = (sub_x[:, 0, 0, 0] * 255).round().long()
    assert len(sub_y) == 8 and (sub_y == level % 10).all() and len(set(level.tolist())) == 8
    again = load_shift("cifar10.1", tmp_path, n=8, seed=3)[1]
    other = load_shift("cifar10.1", tmp_path, n=8, seed=4)[0]
    assert (again == sub_y).all() and not (other == sub_x).all()


def test_cifar101_missing_or_truncated_names_the_file(tmp_path: Path):
    with pytest.raises(ShiftError, match=r"cifar10.1_v6_data.npy is missing \(--data-root"):
        load_shift("cifar10.1", tmp_path)
    _write_cifar101(tmp_path, cut=1)
    with pytest.raises(ShiftError, match=r"cifar10.1_v6_data.npy holds uint8 \(29, 32, 32, 3\)"):
        load_shift("cifar10.1", tmp_path)
    with pytest.raises(ShiftError, match="unknown distribution shift 'cifar10.2'; valid"):
        load_shift("cifar10.2", tmp_path)


def _write_cinic(root: Path, classes: tuple[str, ...], per_class: int = 2) -> None:
    """Image j of class c is the constant colour (c, j, 200)."""
    for label, name in enumerate(CIFAR10_CLASSES):
        if name not in classes:
            continue
        folder = root / "CINIC-10" / "test" / name
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            pixels = np.full((32, 32, 3), (label, j, 200), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"cifar10-test-{label}{j}.png")


def test_cinic10_reads_class_folders_as_cifar10_labels(tmp_path: Path):
    _write_cinic(tmp_path, ("bird", "truck", "airplane"))
    x, y = load_shift("cinic10", tmp_path)
    assert sorted(y.tolist()) == [0, 0, 2, 2, 9, 9]
    assert ((x[:, 0, 5, 5] * 255).round().long() == y).all()
    assert float(x[:, 2].max()) == pytest.approx(200 / 255)
    Image.new("RGB", (16, 16)).save(tmp_path / "CINIC-10" / "test" / "bird" / "z.png")
    with pytest.raises(ShiftError, match=r"z.png is 16 x 16, expected 32 x 32"):
        load_shift("cinic10", tmp_path)
    with pytest.raises(ShiftError, match=r"CINIC-10/test is missing \(--data-root"):
        load_shift("cinic10", tmp_path / "elsewhere")


PROFILE = """
name = "shifted"
dataset = "cifar10"
n = 8
[[models]]
external = { factory = "tests.external_factory:cifar_cnn" }
name = "cnn"
[attacks]
ifsgm_eps = ["8/255"]
ifsgm_steps = [1]
blackbox = false
noise_p = [0.5]
[shifts]
enabled = true
shifts = ["cifar10.1", "cinic10"]
n = 12
"""


def test_bench_shifts_stage_table_and_leaderboard(tmp_path: Path):
    rng = np.random.default_rng(0)
    write_cifar10(tmp_path, [i % 10 for i in range(20)], rng.integers(0, 256, (20, 3072), np.uint8))
    _write_cifar101(tmp_path)
    _write_cinic(tmp_path, CIFAR10_CLASSES, per_class=1)
    (tmp_path / "shifted.toml").write_text(PROFILE)
    out = tmp_path / "out"
    run_bench(
        load_profile(str(tmp_path / "shifted.toml")),
        out,
        tmp_path / "ck",
        "cpu",
        LoadOptions(data_root=str(tmp_path)),
        progress=False,
        stages=["attacks", "shifts"],
    )
    frame = results.read(out / "results.csv")
    acc = frame[(frame["experiment"] == "shift") & (frame["metric"] == "acc")]
    assert sorted(acc["attack"]) == ["cifar10.1", "cinic10"]
    assert sorted(acc["n"]) == [10, 12] and ((acc["value"] >= 0) & (acc["value"] <= 100)).all()
    assert "cifar10.1" in (out / "shifts.md").read_text()
    assert "cifar10.1_acc" in (out / "leaderboard.md").read_text()
    info = json.loads(next((out / "leaderboard_models").glob("*.json")).read_text())
    expected = acc[acc["attack"] == "cinic10"]["value"].item()
    assert info["cinic10_acc"] == pytest.approx(expected, abs=0.01)
