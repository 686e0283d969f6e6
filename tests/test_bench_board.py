"""One profile puts every kind of model on one leaderboard: N-LR and LR trained by
the suite, an adversarially trained reference (PGD-AT), a user's own model (factory + weights
file) and a RobustBench zoo model read offline from RobustBench's layout, all on CIFAR-10 (a
few random images in torchvision's on-disk format). The profile names its weights and zoo
folder relative to itself, and the bench runs from another working directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from robustbench_lr import results
from robustbench_lr.bench import run_bench
from robustbench_lr.data import LoadOptions
from robustbench_lr.profiles import load_profile
from tests.external_factory import cifar_cnn
from tests.zoo_files import ZOO_NAME, write_cifar10, write_zoo

PROFILE = f"""
name = "board"
dataset = "cifar10"
epochs = 1
n = 6
[[models]]
arch = "resnet18"
width = 0.125
methods = ["nlr"]
seeds = [0, 1]
[[models]]
arch = "resnet18"
width = 0.125
methods = ["1lr", "pgd-at"]
seeds = [0]
[models.method_options.pgd-at]
at_steps = 2
[[models]]
external = {{ factory = "tests.external_factory:cifar_cnn", weights = "mine.safetensors" }}
name = "mine"
[[models]]
robustbench = {{ name = "{ZOO_NAME}", model_dir = "zoo/models" }}
[attacks]
ifsgm_eps = ["8/255"]
ifsgm_steps = [2]
noise_p = [0.5]
[analyses]
kinds = []
"""


def test_suite_reference_user_and_zoo_models_share_one_leaderboard(tmp_path: Path, monkeypatch):
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "board.toml").write_text(PROFILE)
    torch.manual_seed(0)
    net = cifar_cnn()
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "mine.safetensors")
    )
    write_zoo(folder / "zoo")
    images = np.random.default_rng(1).integers(0, 256, (6, 3072), dtype=np.uint8)
    write_cifar10(tmp_path / "data", [0, 1, 2, 3, 4, 5], images)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative names in the profile are read beside it

    profile = load_profile(str(folder / "board.toml"))
    out = tmp_path / "out"
    summary = run_bench(
        profile,
        out,
        tmp_path / "ck",
        "cpu",
        LoadOptions(data_root=str(tmp_path / "data")),
        progress=False,
        stages=["train", "attacks"],
    )
    assert summary.ran["train"] == 4  # two N-LR seeds, 1-LR, PGD-AT; nothing external trains

    frame = results.read(out / "results.csv")
    white = frame[(frame["experiment"] == "attack") & (frame["box"] == "white")]
    kinds = {c.split(":")[0] if ":" in c else "trained" for c in white["checkpoint"]}
    assert kinds == {"trained", "external", "robustbench"}
    methods = {m.split("@")[0] for m in white["method"]}
    assert {"nlr", "1lr", "pgd-at", "mine", ZOO_NAME} <= methods

    board = (out / "leaderboard.md").read_text()
    for name in ("nlr", "1lr", "pgd-at", "mine", ZOO_NAME):
        assert name in board, name
    assert "zoo_autoattack_acc" in board  # RobustBench's reported numbers beside ours
    records = [json.loads(p.read_text()) for p in (out / "leaderboard_models").glob("*.json")]
    by_method = {r["method"].split("@")[0]: r for r in records}
    assert by_method[ZOO_NAME]["zoo_reported"] == {"clean_acc": 83.34, "autoattack_acc": 43.21}
    assert by_method[ZOO_NAME]["clean_acc"] is not None  # ours, measured on this test split
    assert by_method["pgd-at"]["adversarial_training"] is True
    assert by_method["nlr"]["adversarial_training"] is False
    assert by_method["mine"]["adversarial_training"] is None  # trained elsewhere: unknown
    assert os.getcwd() == str(elsewhere)
