"""The L2 track: PGD-L2 and the authors' AutoAttack at L2, the `threat` column, the refusal of
an L2 ε on an L∞-only attack, and the `[l2]` profile section in the bench and leaderboard."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from robustbench_lr import results
from robustbench_lr.attacks import run_attack, verdict
from robustbench_lr.attacks.harness import evaluate_attack, evaluation_rows
from robustbench_lr.attacks.l2 import ThreatError, check_threat, threats
from robustbench_lr.bench import run_bench
from robustbench_lr.data import DIGITS_L2_EPS, l2_eps
from robustbench_lr.profiles import load_profile
from robustbench_lr.target import load_target
from tests.test_external_models import run_cli


@pytest.fixture(scope="module")
def target(nlr_digits: Path):
    return load_target(str(nlr_digits), n=40, device="cpu")


def _l2(x_adv, x):
    return (x_adv - x).flatten(1).norm(dim=1)


def test_dataset_eps_and_threats():
    assert l2_eps("cifar10") == 0.5 and l2_eps("svhn") == 0.5
    assert l2_eps("digits") == pytest.approx(0.5 * 4 * math.sqrt(64 / 3072)) == DIGITS_L2_EPS
    assert threats("pgd-l2") == ("L2",) == threats("autoattack-standard-l2")
    assert threats("ifsgm") == ("Linf",) and threats("deepfool") == ()
    check_threat("ifsgm", "Linf")
    check_threat("pgd-l2", "L2")
    with pytest.raises(ThreatError, match="'ifsgm' supports threat.s. Linf, not an L2"):
        check_threat("ifsgm", "L2")


@pytest.mark.parametrize(
    ("name", "budget"),
    [
        ("pgd-l2", {"steps": 10}),
        ("autoattack-standard-l2", {"steps": 5, "targets": 1, "queries": 20}),
    ],
)
def test_l2_attacks_stay_in_the_ball_and_fool_the_model(target, name: str, budget: dict):
    x, y = target.x, target.y
    eps = 2 * DIGITS_L2_EPS  # large enough that both attacks break some of N-LR's examples
    x_adv = run_attack(name, target.model, x, y, eps=eps, **budget)
    assert float(_l2(x_adv, x).max()) <= eps * (1 + 1e-4)
    assert 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    clean = verdict(target.model, x, y).float().mean()
    attacked = verdict(target.model, x_adv, y).float().mean()
    assert attacked < clean


def test_rows_are_filed_under_their_threat_and_never_replace_linf(target, tmp_path: Path):
    ev = evaluate_attack("pgd-l2", target.model, target.x, target.y, eps=0.3, steps=3)
    rows = evaluation_rows(ev, target.columns)
    assert {r["threat"] for r in rows} == {"L2"}
    path = tmp_path / "r.csv"
    results.append(path, rows)
    results.append(path, [{**r, "threat": "Linf"} for r in rows])  # same key but the threat
    frame = results.read(path)
    assert sorted(set(frame["threat"])) == ["L2", "Linf"] and len(frame) == 2 * len(rows)


def test_a_file_without_the_threat_column_reads_as_linf(tmp_path: Path):
    row = results.make_row(dataset="digits", arch="a", method="nlr", metric="acc", value=50.0)
    old = pd.DataFrame([row]).drop(columns=["threat", "numerics"])
    old.to_csv(tmp_path / "old.csv", index=False)
    frame = results.read(tmp_path / "old.csv")
    assert list(frame["threat"]) == ["Linf"] and list(frame.columns)[-1] == "threat"
    merged = results.append(tmp_path / "old.csv", [{**row, "threat": "L2", "value": 10.0}])
    assert sorted(zip(merged["threat"], merged["value"], strict=True)) == [
        ("L2", 10.0),
        ("Linf", 50.0),
    ]


def test_cli_l2_eps_on_a_linf_attack_exits_2_and_writes_nothing(
    nlr_digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    out = tmp_path / "results.csv"
    argv = ["attack", "--attack", "ifsgm", "--norm", "L2", "--eps", "0.5"]
    code, _, err = run_cli([*argv, "--checkpoint", nlr_digits, "--n", 10, "--out", out], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'ifsgm' supports threat(s) Linf, not an L2" in err and "pgd-l2" in err
    assert not out.exists()


PROFILE = """
name = "l2track"
dataset = "digits"
epochs = 8
n = 20
[[models]]
arch = "resnet18"
width = 0.25
methods = ["nlr"]
[attacks]
ifsgm_eps = ["16/255"]
ifsgm_steps = [1]
blackbox = false
noise_p = [0.5]
[l2]
enabled = true
n = 16
pgd_steps = 5
steps = 3
targets = 1
queries = 10
"""


def test_bench_l2_stage_rows_and_leaderboard(nlr_digits: Path, tmp_path: Path):
    (tmp_path / "l2track.toml").write_text(PROFILE)
    out = tmp_path / "out"
    run_bench(
        load_profile(str(tmp_path / "l2track.toml")),
        out,
        nlr_digits.parents[3],  # <root>/digits/resnet18-w0.25/nlr/seed0: trained once
        "cpu",
        progress=False,
        stages=["train", "l2"],
    )
    frame = results.read(out / "results.csv")
    l2 = frame[(frame["threat"] == "L2") & (frame["metric"] == "acc")]
    assert set(l2["attack"]) == {"pgd-l2", "autoattack-standard-l2"}
    assert l2["eps"].tolist() == pytest.approx([DIGITS_L2_EPS] * 2) and (l2["n"] == 16).all()
    assert set(frame[frame["experiment"] == "clean"]["threat"]) == {"Linf"}
    board = (out / "leaderboard.md").read_text()
    assert "l2_pgd_acc" in board and "l2_autoattack_acc" in board and "digits 0.289" in board
    info = json.loads(next((out / "leaderboard_models").glob("*nlr*.json")).read_text())
    pgd = l2[l2["attack"] == "pgd-l2"]["value"].item()
    assert info["l2_pgd_acc"] == pytest.approx(pgd, abs=0.01)
    assert info["l2_eps"] == pytest.approx(DIGITS_L2_EPS, abs=0.001)


def test_profiles_enable_the_track_where_asked():
    assert load_profile("cpu").l2.enabled and not load_profile("smoke").l2.enabled
    for name in ("paper", "paper-fast"):
        grid = load_profile(name).l2
        assert grid.enabled and grid.datasets == ("cifar10",)
