"""Step modes (robustbench_lr/step.py): eager keeps its bytes, a compiled step trains like it.

The compiled runs use `aot-eager` (dynamo's capture and AOT autograd, no code generation):
inductor compiles a digits ResNet18 in about a minute and a half per model on these two cores,
too long for the suite; benchmarks/training.py times inductor and CUDA graphs themselves.
The runs are tiny (two steps of 64 images, one epoch): compile time dominates, not training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustbench_lr import cost
from robustbench_lr.cli import main
from robustbench_lr.config import TrainConfig
from robustbench_lr.registry import UnknownNameError
from robustbench_lr.train import train

TINY = {
    "dataset": "digits",
    "arch": "resnet18",
    "width": 0.25,
    "epochs": 1,
    "batch_size": 64,
    "train_limit": 128,  # two full batches: one batch shape to compile
    "test_limit": 50,
}
# The LR branch projects after every step and its losses are on from the start, so both
# after_step (with its graph breaks) and the penalty run inside the two compiled steps.
OPTIONS = {"1lr": {"lr_every": 1, "lr_warmup_epochs": 0}}


def tiny(method: str, **overrides) -> TrainConfig:
    return TrainConfig(
        **{**TINY, **overrides}, method=method, method_options=OPTIONS.get(method, {})
    )


def files(folder: Path) -> dict[str, bytes]:
    """Every file of a checkpoint but its timing record (`cost.json`: seconds differ per run)."""
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != cost.CHECKPOINT_FILE
    }


def test_explicit_eager_is_the_default_byte_for_byte(tmp_path: Path):
    default = train(tiny("nlr"), tmp_path / "default", device="cpu", progress=False)
    eager = train(tiny("nlr"), tmp_path / "eager", device="cpu", progress=False, step_mode="eager")
    assert files(default.folder) == files(eager.folder)
    assert "step_mode" not in json.loads((eager.folder / "meta.json").read_text())


@pytest.mark.parametrize("method", ["nlr", "1lr", "sn"])
def test_compiled_step_trains_like_eager(tmp_path: Path, method: str):
    eager = train(tiny(method), tmp_path / "eager", device="cpu", progress=False)
    compiled = train(
        tiny(method), tmp_path / "compiled", device="cpu", progress=False, step_mode="aot-eager"
    )
    want = load_file(str(eager.folder / "model.safetensors"))
    got = load_file(str(compiled.folder / "model.safetensors"))
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    assert compiled.clean_acc == pytest.approx(eager.clean_acc, abs=2.0)  # one test image of 50
    meta = json.loads((compiled.folder / "meta.json").read_text())
    assert meta["step_mode"] == "aot-eager"
    assert meta["config"] == json.loads((eager.folder / "meta.json").read_text())["config"]


def test_unknown_step_mode_is_a_one_line_error_listing_the_modes(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse's choices, before any command runs
        main(["train", "--step-mode", "fast", "--epochs", "1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'eager', 'compile', 'reduce-overhead'" in err
    with pytest.raises(UnknownNameError, match="valid choices: eager, compile, reduce-overhead"):
        train(tiny("nlr"), tmp_path, device="cpu", progress=False, step_mode="fast")
    assert not any(tmp_path.iterdir())  # refused before any work


def test_a_non_finite_loss_names_its_epoch_and_commits_nothing(tmp_path: Path):
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1, step \d"):
        train(tiny("nlr", lr=1e30), tmp_path, device="cpu", progress=False)
    assert not list(tmp_path.rglob("meta.json"))
