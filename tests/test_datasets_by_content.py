"""Datasets known by content: fingerprints, path-free labels, and checkpoints that notice when
the npz they were trained on has been overwritten."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import robustbench_lr
from robustbench_lr import data, results
from robustbench_lr.analysis import ANALYSES
from robustbench_lr.analysis.base import AnalysisOptions
from robustbench_lr.audit import audit_filename
from robustbench_lr.checkpoints import load_model
from robustbench_lr.commands import evaluate
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.data import DatasetError, LoadOptions, dataset_label, load_for_checkpoint
from robustbench_lr.target import Target, load_target
from robustbench_lr.train import train
from tests.test_data import _cifar_images, _svhn_mat, _write_pickle

SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def _write_npz(path: Path, seed: int, n_train: int = 200, n_test: int = 50) -> Path:
    """~200 random 8x8 grey images in 3 classes (uint8 NHWC), the same size for every seed."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=rng.integers(0, 256, size=(n_train, 8, 8, 1), dtype=np.uint8),
        y_train=np.arange(n_train) % 3,
        x_test=rng.integers(0, 256, size=(n_test, 8, 8, 1), dtype=np.uint8),
        y_test=np.arange(n_test) % 3,
    )
    return path


def _age(path: Path, seconds: float = 60.0) -> None:
    """Backdate a file's mtime, as for any file not written this instant (digests get cached)."""
    stat = path.stat()
    past = stat.st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(past, past))


# ---- fingerprints -----------------------------------------------------------------------------


def test_npz_fingerprint_is_the_files_sha256_and_ignores_limits(tmp_path: Path):
    path = _write_npz(tmp_path / "d.npz", seed=0)
    full = data.load(f"npz:{path}")
    limited = data.load(f"npz:{path}", train_limit=20, test_limit=5)
    assert full.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert limited.fingerprint == full.fingerprint


def test_npz_fingerprint_changes_with_content_of_the_same_size(tmp_path: Path):
    path = _write_npz(tmp_path / "d.npz", seed=0)
    before = data.load(f"npz:{path}").fingerprint
    size = path.stat().st_size
    _write_npz(path, seed=1)
    assert path.stat().st_size == size
    assert data.load(f"npz:{path}").fingerprint != before


def test_digits_fingerprint_is_stable():
    first, second = data.load("digits"), data.load("digits", train_limit=100)
    assert len(first.fingerprint) == 64 and first.fingerprint == second.fingerprint


def _cifar10(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        _write_pickle(folder / f"data_batch_{i}", {"data": _cifar_images(rng, 2), "labels": [0, 1]})
    _write_pickle(folder / "test_batch", {"data": _cifar_images(rng, 2), "labels": [1, 0]})
    return folder


def test_cifar_fingerprint_covers_every_batch_file(tmp_path: Path):
    folder = _cifar10(tmp_path, seed=0)
    options = LoadOptions(data_root=str(tmp_path))
    before = data.load("cifar10", options).fingerprint
    assert data.load("cifar10", options, train_limit=3).fingerprint == before
    rng = np.random.default_rng(9)
    _write_pickle(folder / "test_batch", {"data": _cifar_images(rng, 2), "labels": [1, 0]})
    assert data.load("cifar10", options).fingerprint != before


def test_svhn_fingerprint_includes_the_extra_split(tmp_path: Path):
    for name, n in (("train", 3), ("test", 2), ("extra", 2)):
        _svhn_mat(tmp_path / f"{name}_32x32.mat", n, [1] * n)
    plain = data.load("svhn", LoadOptions(data_root=str(tmp_path))).fingerprint
    extra = data.load("svhn", LoadOptions(data_root=str(tmp_path), svhn_extra=True)).fingerprint
    assert plain != extra
    assert data.load("svhn", LoadOptions(data_root=str(tmp_path))).fingerprint == plain


# ---- labels and names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["digits", "cifar10", "cifar100", "cifar100-coarse", "svhn"])
def test_registered_names_are_their_own_label(name: str):
    assert dataset_label(name) == name


def test_npz_label_is_safe_names_the_stem_and_the_content(tmp_path: Path):
    path = _write_npz(tmp_path / "odd dir:x" / "my data.npz", seed=0)
    label = dataset_label(f"npz:{path}")
    digest = data.load(f"npz:{path}").fingerprint
    assert label == f"npz-my_data-{digest[:8]}" and SAFE.fullmatch(label)
    copy = tmp_path / "elsewhere" / "my data.npz"
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    assert dataset_label(f"npz:{copy}") == label  # known by content, not by place


def test_npz_label_follows_an_overwrite_at_once(tmp_path: Path):
    path = _write_npz(tmp_path / "d.npz", seed=0)
    before = dataset_label(f"npz:{path}")
    _write_npz(path, seed=1)  # same size, possibly the same mtime tick
    assert dataset_label(f"npz:{path}") != before


def test_label_digest_is_cached_by_path_size_and_mtime(tmp_path: Path):
    path = _write_npz(tmp_path / "d.npz", seed=0)
    _age(path)
    label = dataset_label(f"npz:{path}")
    stat = path.stat()
    _write_npz(path, seed=1)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: cache hit
    assert dataset_label(f"npz:{path}") == label
    _age(path)  # a new mtime: hashed again
    assert dataset_label(f"npz:{path}") != label


def test_label_of_a_missing_npz_or_unknown_name(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist"):
        dataset_label(f"npz:{tmp_path / 'gone.npz'}")
    with pytest.raises(KeyError, match="valid choices"):
        dataset_label("mnist")


def test_checkpoint_dir_of_an_npz_holds_no_part_of_its_path(tmp_path: Path):
    path = _write_npz(tmp_path / "deep" / "odd dir:x" / "my data.npz", seed=0)
    folder = checkpoint_dir(tmp_path / "ck", TrainConfig(dataset=f"npz:{path}", width=0.25))
    parts = folder.relative_to(tmp_path / "ck").parts
    assert parts == (dataset_label(f"npz:{path}"), "resnet18-w0.25", "nlr", "seed0")
    assert "deep" not in str(folder) and "odd" not in str(folder)


def test_audit_filename_is_safe_even_for_a_path_dataset():
    columns = {"dataset": "npz:/a b/c.npz", "arch": "resnet18", "width": 0.25, "method": "nlr"}
    name = audit_filename({**columns, "seed": 0}, 8 / 255)
    assert name.endswith("_eps8.md") and SAFE.fullmatch(name)


def test_results_dataset_falls_back_to_the_config_name_for_old_checkpoints():
    cfg = {"dataset": "digits", "arch": "resnet18", "width": 1.0, "method": "nlr", "seed": 0}
    assert results.model_fields({"config": cfg}, "/ck")["dataset"] == "digits"
    labelled = {"config": cfg, "dataset_label": "npz-x-01234567"}
    assert results.model_fields(labelled, "/ck")["dataset"] == "npz-x-01234567"


# ---- a checkpoint trained on an npz -----------------------------------------------------------


@pytest.fixture(scope="module")
def npz_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(npz path, checkpoint folder) of a ResNet18 (w 0.25, 1 epoch) trained on a 200-image npz."""
    path = _write_npz(tmp_path_factory.mktemp("npz data") / "my data.npz", seed=0)
    cfg = TrainConfig(dataset=f"npz:{path}", arch="resnet18", width=0.25, epochs=1)
    folder = train(cfg, tmp_path_factory.mktemp("ck"), device="cpu", progress=False).folder
    return path, folder


@pytest.fixture()
def overwritten(npz_model: tuple[Path, Path]):
    """The model's npz overwritten with other images of the same shapes (restored afterwards)."""
    path, folder = npz_model
    original = path.read_bytes()
    _write_npz(path, seed=1)
    yield path, folder
    path.write_bytes(original)


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def test_npz_checkpoint_is_named_and_reported_by_label(npz_model: tuple[Path, Path]):
    path, folder = npz_model
    label = dataset_label(f"npz:{path}")
    assert folder.parts[-4] == label
    assert results.model_fields(_meta(folder), folder)["dataset"] == label
    loaded = load_for_checkpoint(_meta(folder), folder)
    assert loaded.fingerprint == data.load(f"npz:{path}").fingerprint


def _evaluate_command(folder: Path) -> None:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    evaluate.run(parser.parse_args(["--checkpoint", str(folder), "--device", "cpu"]))


def _loaded_before_the_change(folder: Path) -> Target:
    """The checkpoint's model as a target, standing in for one loaded before its npz changed
    (its test images are any others: the transfer analysis reads the dataset again)."""
    model, meta = load_model(folder)
    return Target(model, meta, str(folder), data.load("digits"))


# Every place that loads the data of an already trained checkpoint.
CHECKPOINT_LOADERS: dict[str, Callable[[Path], object]] = {
    "load_for_checkpoint": lambda folder: load_for_checkpoint(_meta(folder), folder),
    "target": lambda folder: load_target(folder, n=10),
    "analysis": lambda folder: robustbench_lr.analyze("rank", folder, device="cpu"),
    "transfer": lambda folder: ANALYSES["transfer"].run(
        _loaded_before_the_change(folder),
        AnalysisOptions(device="cpu", extra={"labels": "digits"}, results=folder / "unused.csv"),
    ),
    "evaluate": _evaluate_command,
}


@pytest.mark.parametrize("where", list(CHECKPOINT_LOADERS))
def test_overwritten_npz_is_refused_in_one_line(overwritten: tuple[Path, Path], where: str):
    path, folder = overwritten
    recorded = _meta(folder)["data_fingerprint"]
    now = data.load(f"npz:{path}").fingerprint
    with pytest.raises(DatasetError) as err:
        CHECKPOINT_LOADERS[where](folder)
    message = str(err.value)
    assert message == (
        f"npz file {path} changed since {folder} was trained "
        f"(fingerprint {recorded[:8]} → {now[:8]}); retrain it or restore the file"
    )
