"""Common corruptions: generated from the reference filters, read from the -C layout, scored.

The -C files are written here in the published layout (one uint8 N x 32 x 32 x 3 .npy per
corruption, 5 severities of 20 images, and labels.npy), so the reader is tested on the format
without the 2.9 GB download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robustbench_lr import results
from robustbench_lr.corruptions import (
    CORRUPTIONS,
    CorruptionError,
    corrupt,
    read_c_files,
    relative_ce,
)
from robustbench_lr.data import load
from robustbench_lr.evaluation import accuracy
from robustbench_lr.experiments.corruption import (
    CorruptionSettings,
    relative_mce,
    run_corruptions,
)
from robustbench_lr.target import load_target
from tests.test_external_models import run_cli
from tests.zoo_files import write_cifar10

PER_SEVERITY = 20


@pytest.fixture(scope="module")
def digits_x() -> torch.Tensor:
    return load("digits").x_test[:12]


def test_fifteen_corruptions_in_four_families():
    assert len(CORRUPTIONS) == 15
    assert sorted(set(CORRUPTIONS.values())) == ["blur", "digital", "noise", "weather"]


@pytest.mark.parametrize("name", ["gaussian_noise", "glass_blur", "frost", "impulse_noise"])
def test_generated_corruption_is_deterministic_and_seeded(digits_x: torch.Tensor, name: str):
    first = corrupt(digits_x, name, 3, seed=0)
    again = corrupt(digits_x, name, 3, seed=0)
    other = corrupt(digits_x, name, 3, seed=1)
    assert first.shape == digits_x.shape and first.dtype == torch.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert (first - digits_x).abs().mean() > 0.01  # it did corrupt the digits


def test_severity_grows_the_damage(digits_x: torch.Tensor):
    damage = [(corrupt(digits_x, "gaussian_noise", s) - digits_x).abs().mean() for s in (1, 5)]
    assert damage[1] > 2 * damage[0]


def test_rgb_images_at_cifar_size(digits_x: torch.Tensor):
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = corrupt(x, "contrast", 5)
    assert out.shape == x.shape
    # contrast pulls every pixel towards the image mean: the spread shrinks
    assert out.std() < 0.5 * x.std()


def test_unknown_corruption_or_severity_lists_the_valid_ones(digits_x: torch.Tensor):
    with pytest.raises(CorruptionError, match="valid choices: gaussian_noise, shot_noise"):
        corrupt(digits_x, "rain", 1)
    with pytest.raises(CorruptionError, match="valid choices: 1, 2, 3, 4, 5"):
        corrupt(digits_x, "fog", 6)


def test_digits_run_rows_and_means(nlr_digits: Path):
    target = load_target(nlr_digits, n=30)
    settings = CorruptionSettings(corruptions=("gaussian_noise", "contrast"), severities=(1, 5))
    outcome = run_corruptions(target, settings)
    frame = pd.DataFrame([results.make_row(**r) for r in outcome.rows])
    per = frame[frame["metric"] == "acc"]
    assert len(per) == 4 and set(zip(per["param"], per["severity"], strict=True)) == {
        ("seed=0", 1.0),
        ("seed=0", 5.0),
    }
    assert frame[frame["metric"] != "acc"]["severity"].isna().all()
    means = frame[frame["metric"] == "mean_acc"].set_index("attack")["value"]
    assert means["all"] == pytest.approx(per["value"].mean())
    assert means["noise"] == pytest.approx(per[per["attack"] == "gaussian_noise"]["value"].mean())
    assert set(means.index) == {"all", "noise", "digital"}  # no blur or weather was run
    clean = frame[frame["metric"] == "clean_acc"]["value"].item()
    assert clean == pytest.approx(accuracy(target.model, target.x, target.y))
    # the rows are what the model scores on the corrupted images themselves
    x = corrupt(target.x, "contrast", 5, seed=0)
    contrast5 = per[(per["attack"] == "contrast") & (per["severity"] == 5)]
    assert contrast5["value"].item() == pytest.approx(accuracy(target.model, x, target.y))
    assert (frame["n"] == 30).all() and (frame["backend"] == "imagecorruptions").all()


def _write_c(root: Path, names: tuple[str, ...] = ("fog",)) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10-C's layout: <root>/CIFAR-10-C/<name>.npy (5 x 20 images) and labels.npy."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5 * PER_SEVERITY, 32, 32, 3), dtype=np.uint8)
    labels = np.tile(np.arange(PER_SEVERITY) % 10, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    for name in names:
        np.save(folder / f"{name}.npy", images)
    return images, labels


def test_c_files_are_read_by_severity_block(tmp_path: Path):
    images, labels = _write_c(tmp_path)
    index = torch.tensor([0, 7, 19])
    x, y = read_c_files(tmp_path, "cifar10", "fog", 3, index)
    rows = [2 * PER_SEVERITY + i for i in (0, 7, 19)]
    assert x.shape == (3, 3, 32, 32)
    assert torch.equal(x, torch.from_numpy(images[rows]).permute(0, 3, 1, 2).float() / 255)
    assert y.tolist() == labels[rows].tolist()


def test_missing_or_truncated_c_file_names_it(tmp_path: Path):
    _write_c(tmp_path)
    with pytest.raises(CorruptionError, match=r"snow\.npy is missing \(--data-root"):
        read_c_files(tmp_path, "cifar10", "snow", 1, torch.tensor([0]))
    path = tmp_path / "CIFAR-10-C" / "fog.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptionError, match=r"fog\.npy is truncated.*--data-root"):
        read_c_files(tmp_path, "cifar10", "fog", 1, torch.tensor([0]))
    np.save(path, np.zeros((50, 32, 32, 3), np.uint8))  # a well-formed file with too few images
    with pytest.raises(CorruptionError, match=r"fog\.npy holds uint8 \(50, 32, 32, 3\)"):
        read_c_files(tmp_path, "cifar10", "fog", 1, torch.tensor([0]))
    with pytest.raises(CorruptionError, match="-C files exist for: cifar10, cifar100"):
        read_c_files(tmp_path, "svhn", "fog", 1, torch.tensor([0]))


def test_relative_mce_against_nlr():
    # Hendrycks & Dietterich: sum_s (E_s - E_clean) / the baseline's same sum.
    assert relative_ce([10, 15], 5, [20, 30], 10) == pytest.approx(50.0)
    model = {"dataset": "digits", "arch": "resnet18", "width": 0.25, "seed": 0}
    rows = []
    for method, clean, accs in (("nlr", 90, (80, 70)), ("1lr", 95, (90, 85))):
        common = {**model, "method": method, "experiment": "corruption", "backend": "x"}
        rows.append({**common, "attack": "none", "metric": "clean_acc", "value": clean})
        for severity, acc in zip((1, 2), accs, strict=True):
            rows += [
                {**common, "attack": name, "metric": "acc", "value": acc, "severity": severity}
                for name in ("fog", "snow")
            ]
    frame = pd.DataFrame([results.make_row(**r) for r in rows])
    mce = relative_mce(frame)
    assert mce.xs("1lr", level="method").item() == pytest.approx(50.0)
    assert mce.xs("nlr", level="method").item() == pytest.approx(100.0)


def test_cli_bad_inputs_exit_2_and_write_nothing(
    nlr_digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    out = tmp_path / "results.csv"
    base = ["corruptions", "--checkpoint", nlr_digits, "--n", 10, "--out", out]
    code, _, err = run_cli([*base, "--corruptions", "fog,rain"], capsys)
    assert code == 2 and "unknown corruption 'rain'; valid choices: gaussian_noise" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli([*base, "--severities", "0"], capsys)
    assert code == 2 and "valid choices: 1, 2, 3, 4, 5" in err
    assert not out.exists()


def test_cli_c_files_of_a_cifar_model(tmp_path: Path, capsys: pytest.CaptureFixture):
    images, labels = _write_c(tmp_path, ("fog", "snow"))
    clean = images[:PER_SEVERITY].transpose(0, 3, 1, 2).reshape(PER_SEVERITY, 3072)
    write_cifar10(tmp_path, labels[:PER_SEVERITY].tolist(), clean)
    out = tmp_path / "results.csv"
    model = ["--model", "tests.external_factory:cifar_cnn", "--dataset", "cifar10"]
    argv = ["corruptions", *model, "--data-root", tmp_path, "--n", 8, "--out", out]
    argv += ["--corruption-source", "files", "--corruptions", "fog,snow", "--severities", "2,4"]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    frame = results.read(out)
    per = frame[frame["metric"] == "acc"]
    assert len(per) == 4 and (per["backend"] == "CIFAR-10-C").all() and (per["n"] == 8).all()
    (tmp_path / "CIFAR-10-C" / "snow.npy").unlink()
    before = out.read_bytes()
    code, _, err = run_cli([*argv, "--seed", 1], capsys)
    assert code == 2 and "snow.npy is missing (--data-root" in err
    assert out.read_bytes() == before
