"""A profile's external model in the bench: it is attacked, audited and analysed
beside the trained ones, with no training job, its black-box examples come from the profile's
N-LR, and a changed weights file re-runs its jobs and only those."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from robustbench_lr import results
from robustbench_lr.bench import STAGES, run_bench
from robustbench_lr.profiles import load_profile

PROFILE = """
name = "with-external"
dataset = "digits"
epochs = 2
n = 40
[[models]]
arch = "resnet18"
width = 0.25
methods = ["nlr"]
seeds = [0, 1]
[[models]]
external = {{ factory = "tests.external_factory:tiny_cnn", weights = "{weights}" }}
name = "mine"
tap = "features"
[attacks]
ifsgm_eps = ["16/255"]
ifsgm_steps = [3]
noise_p = [0.5]
[analyses]
kinds = ["rank"]
"""


def _weights(path: Path, seed: int) -> Path:
    from tests.external_factory import tiny_cnn

    torch.manual_seed(seed)
    save_file({k: v.contiguous() for k, v in tiny_cnn().state_dict().items()}, str(path))
    return path


def test_an_external_model_joins_the_bench_and_its_weights_decide_its_jobs(tmp_path: Path):
    weights = _weights(tmp_path / "mine.safetensors", 0)
    (tmp_path / "p.toml").write_text(PROFILE.format(weights=weights))
    profile = load_profile(str(tmp_path / "p.toml"))
    first = run_bench(profile, tmp_path / "out", tmp_path / "ck", "cpu", progress=False)
    assert first.ran["train"] == 2  # the two N-LR models; the external one is not trained
    frame = results.read(tmp_path / "out" / "results.csv")
    mine = frame[frame["checkpoint"].str.startswith("external:mine@")]
    assert set(mine["experiment"]) == {"clean", "attack", "rank"}
    black = mine[(mine["experiment"] == "attack") & (mine["box"] == "black")]
    assert len(black) and set(black["source"]) == {
        str(tmp_path / "ck/digits/resnet18-w0.25/nlr/seed0")
    }
    digest = mine["method"].iloc[0].split("@")[1]

    again = run_bench(profile, tmp_path / "out", tmp_path / "ck", "cpu", progress=False)
    assert sum(again.ran.values()) == 0  # nothing changed: nothing re-runs

    _weights(weights, 1)  # other weights under the same name
    third = run_bench(profile, tmp_path / "out", tmp_path / "ck", "cpu", progress=False)
    external_jobs = 5  # clean, ifsgm white and black, noise, rank
    idle = dict.fromkeys(STAGES.names(), 0)
    assert third.ran == {**idle, "attacks": 4, "analyses": 1}
    assert sum(third.ran.values()) == external_jobs
    frame = results.read(tmp_path / "out" / "results.csv")
    mine = frame[frame["checkpoint"].str.startswith("external:mine@")]
    assert digest not in set(mine["method"].str.split("@").str[1])  # only the new weights' rows
