"""The corruptions track in the bench: planned from a profile's [corruptions], its rows merged,
and shown as the tables, the leaderboard columns and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustbench_lr import results
from robustbench_lr.bench import run_bench
from robustbench_lr.profiles import load_profile

PROFILE = """
name = "tracks"
dataset = "digits"
epochs = 8
n = 20
[[models]]
arch = "resnet18"
width = 0.25
methods = ["nlr"]
[[models]]
external = { factory = "tests.external_factory:tiny_cnn" }
name = "tiny"
[attacks]
ifsgm_eps = ["16/255"]
ifsgm_steps = [1]
blackbox = false
noise_p = [0.5]
[corruptions]
enabled = true
corruptions = ["gaussian_noise", "fog"]
severities = [1, 3]
"""


@pytest.fixture(scope="module")
def bench_out(nlr_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bench's train and corruptions stages on the session's N-LR and a user model."""
    base = tmp_path_factory.mktemp("tracks")
    (base / "tracks.toml").write_text(PROFILE)
    ckpt_root = nlr_digits.parents[3]  # <root>/digits/resnet18-w0.25/nlr/seed0: trained once
    profile = load_profile(str(base / "tracks.toml"))
    run_bench(
        profile, base / "out", ckpt_root, "cpu", progress=False, stages=["train", "corruptions"]
    )
    return base / "out"


def test_profile_section_plans_one_job_per_model(bench_out: Path):
    frame = results.read(bench_out / "results.csv")
    rows = frame[frame["experiment"] == "corruption"]
    per = rows[rows["metric"] == "acc"]
    assert sorted(set(per["checkpoint"].str.startswith("external:"))) == [False, True]
    assert len(per) == 2 * 2 * 2 and (per["n"] == 20).all()
    assert set(zip(per["param"], per["severity"], strict=True)) == {("seed=0", 1), ("seed=0", 3)}


@pytest.mark.portable
def test_table_leaderboard_and_figure(bench_out: Path):
    table = (bench_out / "corruptions.md").read_text()
    assert "| all " in table and "noise" in table and "weather" in table
    severity = (bench_out / "corruptions_severity.md").read_text()
    assert "severity=3" in severity
    # The track's tables list every model it ran on, a user's model beside the paper's methods.
    frame = results.read(bench_out / "results.csv")
    methods = set(frame[frame["experiment"] == "corruption"]["method"])
    assert len(methods) == 2 and all(f" {m} " in table and f" {m} " in severity for m in methods)
    assert (bench_out / "figures" / "fig_corruption_severity.png").stat().st_size > 1000
    board = (bench_out / "leaderboard.md").read_text()
    assert "corruption_acc" in board and "corruption_mce" in board
    frame = results.read(bench_out / "results.csv")
    mean = frame[(frame["attack"] == "all") & (frame["method"] == "nlr")]["value"].item()
    info = json.loads(next((bench_out / "leaderboard_models").glob("*nlr*.json")).read_text())
    assert info["corruption_acc"] == pytest.approx(mean, abs=0.01)
    assert info["corruption_relative_mce_vs_nlr"] == pytest.approx(100.0)
