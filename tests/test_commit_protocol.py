"""One commit point per checkpoint: meta.json vouches for its files, and nothing else is trusted.

Each case is a way `train` could say "already complete" over stale or missing weights, or
`evaluate` could read weights that are not the ones meta.json describes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from robustbench_lr import checkpoints, locks
from robustbench_lr.cli import main
from robustbench_lr.config import TrainConfig
from robustbench_lr.train import TRAIN_LOCK, train
from tests.conftest import SMALL

FILES = (checkpoints.MODEL_FILE, checkpoints.STATE_FILE, checkpoints.META_FILE)
TWO_EPOCHS = TrainConfig(**{**SMALL, "epochs": 2}, method="nlr", seed=0)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("reference")
    folder = train(TWO_EPOCHS, root, device="cpu", progress=False).folder
    return folder, _snapshot(folder)


def _copy(reference_folder: Path, tmp_path: Path) -> Path:
    rel = reference_folder.relative_to(reference_folder.parents[3])
    folder = tmp_path / rel
    shutil.copytree(reference_folder, folder)
    return folder


def _retrain(tmp_path: Path) -> Path:
    return train(TWO_EPOCHS, tmp_path, device="cpu", progress=False).folder


def test_meta_vouches_for_both_files(reference):
    folder, _ = reference
    meta = checkpoints.verify(folder)
    assert set(meta["files"]) == {checkpoints.MODEL_FILE, checkpoints.STATE_FILE}
    assert meta["data_fingerprint"] and meta["finished"] and meta["epoch"] == 2


@pytest.mark.parametrize(
    "damage",
    ["truncate-model", "delete-model", "truncate-state", "delete-meta", "swap-model"],
)
def test_damaged_checkpoint_is_rebuilt_to_the_same_bytes(reference, tmp_path: Path, damage: str):
    ref_folder, ref_bytes = reference
    folder = _copy(ref_folder, tmp_path)
    model, state, meta = (folder / name for name in FILES)
    if damage == "truncate-model":
        model.write_bytes(model.read_bytes()[:1000])
    elif damage == "delete-model":
        model.unlink()
    elif damage == "truncate-state":
        state.write_bytes(state.read_bytes()[:1000])
    elif damage == "delete-meta":
        meta.unlink()
    elif damage == "swap-model":  # a whole, loadable file that is not the one meta.json names
        raw = bytearray(model.read_bytes())
        raw[-4:] = b"\x00\x00\x80\x3f"
        model.write_bytes(bytes(raw))
    assert _retrain(tmp_path) == folder
    assert _snapshot(folder) == ref_bytes


@pytest.mark.parametrize("damage", ["truncate", "swap"])
def test_readers_refuse_files_that_disagree_with_the_commit_point(
    reference, tmp_path: Path, capsys, damage: str
):
    folder = _copy(reference[0], tmp_path)
    model = folder / checkpoints.MODEL_FILE
    raw = bytearray(model.read_bytes())
    model.write_bytes(bytes(raw[:1000]) if damage == "truncate" else bytes(raw[:-4]) + b"\0\0\0\0")
    for argv in (
        ["evaluate", "--checkpoint", str(folder), "--device", "cpu"],
        [
            "attack",
            "--checkpoint",
            str(folder),
            "--attack",
            "fgsm",
            "--out",
            str(tmp_path / "r.csv"),
        ],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "commit point" in err, err
    assert not (tmp_path / "r.csv").exists()


def test_killed_writes_leave_no_temporaries_behind(reference, tmp_path: Path):
    folder = _copy(reference[0], tmp_path)
    stale = folder / ".train_state.safetensors.abc123.tmp"
    stale.write_bytes(b"half a file")
    _retrain(tmp_path)
    assert not stale.exists()


def test_a_busy_checkpoint_folder_is_refused_at_once(reference, tmp_path: Path):
    folder = _copy(reference[0], tmp_path)
    with locks.exclusive(folder, TRAIN_LOCK):
        with pytest.raises(locks.FolderBusyError, match=r"in use by pid \d+ on .* since"):
            _retrain(tmp_path)
    assert _retrain(tmp_path) == folder  # released: the next run takes it
