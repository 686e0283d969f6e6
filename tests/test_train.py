"""Training, checkpoints and resume: the foundation's behaviour end to end on digits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robustbench_lr import checkpoints
from robustbench_lr.checkpoints import CheckpointError
from robustbench_lr.cli import main
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.train import lr_at, train
from tests.conftest import SMALL, train_small


def train_args(method: str = "nlr", epochs: int = SMALL["epochs"]) -> list[str]:
    """`robustbench-lr train` flags for the foundation recipe (SMALL) with `method`, seed 0."""
    return [
        *("--dataset", SMALL["dataset"], "--arch", SMALL["arch"]),
        *("--width", str(SMALL["width"]), "--method", method),
        *("--seed", "0", "--epochs", str(epochs)),
    ]


def test_recipe_reaches_95_percent(nlr_digits: Path):
    meta = checkpoints.read_meta(nlr_digits)
    assert meta["finished"] and meta["epoch"] == 8
    assert meta["clean_acc"] >= 95.0
    assert len(meta["history"]) == 8 and meta["history"][-1]["lr"] == pytest.approx(0.001)
    assert meta["environment"]["torch"] == torch.__version__


def test_schedule_is_the_papers_scaled():
    cfg = TrainConfig(epochs=350)
    assert [lr_at(cfg, e) for e in (0, 149, 150, 249, 250, 349)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_same_seed_same_bytes_and_finished_run_is_skipped(tmp_path: Path, nlr_digits: Path):
    again = train_small(tmp_path, "nlr", 0)
    assert (again / "model.safetensors").read_bytes() == (
        nlr_digits / "model.safetensors"
    ).read_bytes()
    result = train(
        TrainConfig(**SMALL, method="nlr", seed=0), tmp_path, device="cpu", progress=False
    )
    assert result.epochs_run == 0


def _wait_for_epoch(folder: Path, epoch: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        meta = folder / "meta.json"
        if meta.exists():
            try:
                if json.loads(meta.read_text())["epoch"] >= epoch:
                    return
            except json.JSONDecodeError:
                pass
        if proc.poll() is not None:
            raise AssertionError("training finished before it could be killed")
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} never reached")


def kill_and_resume(root: Path, args: list[str], folder: Path, kill_after_epoch: int = 2) -> None:
    """Start `train` in a subprocess, SIGKILL it after an epoch is saved, then finish it."""
    cmd = [
        sys.executable,
        "-m",
        "robustbench_lr",
        "train",
        *args,
        "--out",
        str(root),
        "--no-progress",
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_epoch(folder, kill_after_epoch, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads((folder / "meta.json").read_text())["finished"] is False
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def test_sigkill_then_rerun_gives_identical_weights(tmp_path: Path, nlr_digits: Path):
    folder = checkpoint_dir(tmp_path, TrainConfig(**SMALL, method="nlr", seed=0))
    kill_and_resume(tmp_path, train_args(), folder)
    assert (folder / "model.safetensors").read_bytes() == (
        nlr_digits / "model.safetensors"
    ).read_bytes()
    assert (
        json.loads((folder / "meta.json").read_text())["history"]
        == checkpoints.read_meta(nlr_digits)["history"]
    )


def test_cli_train_and_evaluate_json(tmp_path: Path, nlr_digits: Path, capsys):
    assert main(["evaluate", "--checkpoint", str(nlr_digits), "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["n"] == 450 and last["clean_acc"] == pytest.approx(
        checkpoints.read_meta(nlr_digits)["clean_acc"]
    )


def test_loaded_model_predicts_like_training_model(nlr_digits: Path):
    model, meta = checkpoints.load_model(nlr_digits)
    assert not model.training and meta["config"]["arch"] == "resnet18"
    from robustbench_lr.data import load
    from robustbench_lr.evaluation import accuracy

    d = load("digits")
    assert accuracy(model, d.x_test, d.y_test) == pytest.approx(meta["clean_acc"])


def _copy_checkpoint(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_truncated_weights_are_reported(tmp_path: Path, nlr_digits: Path):
    bad = _copy_checkpoint(nlr_digits, tmp_path / "bad")
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="does not match its commit point meta.json"):
        checkpoints.load_model(bad)


def test_missing_files_are_reported(tmp_path: Path, nlr_digits: Path):
    with pytest.raises(CheckpointError, match="meta.json is missing"):
        checkpoints.load_model(tmp_path)
    bad = _copy_checkpoint(nlr_digits, tmp_path / "bad")
    (bad / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        checkpoints.load_model(bad)


def test_weights_of_another_model_are_refused(tmp_path: Path, nlr_digits: Path):
    vgg = train_small(tmp_path, "nlr", 0, arch="vgg19", epochs=1)
    mixed = _copy_checkpoint(nlr_digits, tmp_path / "mixed")
    (mixed / "model.safetensors").write_bytes((vgg / "model.safetensors").read_bytes())
    # meta.json vouches for its weights by digest: another model's file never gets loaded.
    with pytest.raises(CheckpointError, match="does not match its commit point"):
        checkpoints.load_model(mixed)


def test_resume_into_a_different_run_is_refused(tmp_path: Path):
    train_small(tmp_path, "nlr", 0, epochs=1, train_limit=100)
    with pytest.raises(CheckpointError, match="holds a different run"):
        train(
            TrainConfig(**{**SMALL, "epochs": 1}, train_limit=100, lr=0.05),
            tmp_path,
            device="cpu",
            progress=False,
        )


def test_cli_errors_are_one_line_with_choices(capsys):
    assert main(["train", "--method", "nope", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "valid choices: nlr" in err and len(err.splitlines()) == 1
    assert main(["train", "--arch", "alexnet"]) == 2
    assert "resnet18, resnet50, vgg19" in capsys.readouterr().err


def test_every_command_documents_its_flags(capsys):
    from robustbench_lr.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd in sub.choices.items():
        for action in cmd._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
