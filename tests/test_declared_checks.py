"""Every value a face hands an experiment is checked by its declared type before any work.

A budget no attack can mean (a negative step count, a NaN step size, zero queries) would be run
and scored (a negative step count moves nothing, so it comes out as 100 % robust), and a results
file counted twice would narrow every interval. These tests hold each face (the API, the command
line, the profiles, the readers of results files) to refusing such input with one clear error,
and to computing numbers on valid input as the attacks define them.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import robustbench_lr as rb
from robustbench_lr import results
from robustbench_lr.analysis import ANALYSES
from robustbench_lr.api import validate
from robustbench_lr.api.benchmark import AUDIT_OWN
from robustbench_lr.attacks import ATTACKS
from robustbench_lr.attacks.base import HYPERPARAMETERS
from robustbench_lr.checkpoints import CheckpointError
from robustbench_lr.cli import main
from robustbench_lr.experiments.attack import LIST_PARAMS, Sweep
from robustbench_lr.profiles import parse_profile
from robustbench_lr.regress import compare
from robustbench_lr.target import load_target

torch.manual_seed(0)
X = torch.rand(6, 1, 8, 8)
Y = torch.tensor([0, 1, 2, 3, 4, 5])


def linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()


BAD_BUDGETS = [
    ("ifsgm", "steps", -1),
    ("ifsgm", "steps", 0),
    ("ifsgm", "steps", 2.5),
    ("ifsgm", "steps", "5"),
    ("ifsgm", "alpha", math.nan),
    ("ifsgm", "alpha", -1.0),
    ("ifsgm", "alpha", 0.0),
    ("square", "queries", 0),
    ("apgd-t", "targets", 0),
    ("deepfool", "overshoot", -1.0),
    ("deepfool", "candidates", 0),
    ("noise", "sigma", -1.0),
    ("noise", "p", 2.0),
    ("square", "seed", "a"),
    ("ifsgm", "eps", 1.5),
    ("pgd-l2", "eps", -0.5),
]


@pytest.mark.parametrize(("attack", "key", "value"), BAD_BUDGETS)
def test_a_budget_no_attack_can_mean_is_refused_by_every_face(attack, key, value) -> None:
    with pytest.raises(rb.InvalidArgument, match=rf"{attack} {key}=.* is not valid; valid: "):
        rb.attack(linear(), X, Y, attack, **{key: value})
    with pytest.raises(rb.InvalidArgument, match=rf"{attack} {key}="):
        swept = key in LIST_PARAMS  # a profile's grid and the CLI's flags build a Sweep
        Sweep(attack, lists={key: [value]} if swept else {}, fixed={} if swept else {key: value})


def test_every_attack_parameter_is_declared_and_its_default_passes_its_own_check() -> None:
    for name in ATTACKS:
        spec = ATTACKS[name]
        assert set(spec.defaults) <= set(HYPERPARAMETERS)
        for key, value in spec.defaults.items():
            if value is not None:
                assert spec.check(key, value) == value


def test_a_negative_step_count_is_no_longer_scored_as_robust_and_valid_ones_still_run() -> None:
    model = linear()
    done = rb.attack(model, X, Y, "ifsgm", eps=8 / 255, steps=2)
    assert (done.x_adv - X).abs().max() <= 8 / 255 + 1e-6
    assert done.params["steps"] == 2 and done.params["alpha"] == pytest.approx(2.5 * 8 / 255 / 2)
    clean = model(X).argmax(1) == Y
    assert bool((done.robust <= clean).all())  # robust implies clean, as computed
    with pytest.raises(rb.InvalidArgument):
        rb.attack(model, X, Y, "ifsgm", steps=-1)


def test_an_l2_budget_above_one_is_an_l2_budget_and_a_stray_steps_is_refused() -> None:
    done = rb.attack(linear(), X, Y, "pgd-l2", eps=2.0, steps=2)
    assert float((done.x_adv - X).flatten(1).norm(dim=1).max()) <= 2.0 * (1 + 1e-4)
    with pytest.raises(rb.InvalidArgument, match=r"steps.*valid: eps"):
        rb.attack(linear(), X, Y, "fgsm", steps=50)  # FGSM takes no step count


def test_a_model_without_parameters_is_attacked_on_the_cpu() -> None:
    class Crop(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :10]

    done = rb.attack(Crop().eval(), X, Y, "ifsgm", eps=8 / 255, steps=2)
    assert done.robust.shape == (6,)
    assert bool((done.robust == (Crop()(done.x_adv).argmax(1) == Y)).all())


def test_an_empty_batch_and_a_tuple_output_are_named_as_such() -> None:
    with pytest.raises(rb.InvalidArgument, match=r"x=\(0, 1, 8, 8\) is not images"):
        rb.attack(linear(), X[:0], Y[:0])

    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
            return (x.flatten(1)[:, :10],)

    with pytest.raises(rb.InvalidArgument, match=r"model=.*tuple.* returns no \(N, classes\)"):
        rb.attack(Pair().eval(), X, Y)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("lr", math.nan), ("weight_decay", math.nan), ("width", math.nan), ("seed", 1.5)],
)
def test_a_training_setting_is_checked_by_its_declared_type(tmp_path, setting, value) -> None:
    out = tmp_path / "ck"
    with pytest.raises(rb.InvalidArgument, match=rf"{setting}=nan|{setting}=1.5"):
        rb.train("nlr", "digits", out=out, progress=False, **{setting: value})
    assert not out.exists()


def test_a_misspelt_method_option_gets_a_close_match(tmp_path) -> None:
    with pytest.raises(rb.InvalidArgument, match="did you mean 'lr_lambda_c'"):
        rb.train("1lr", "digits", out=tmp_path / "ck", lamda_c=0.1)


def test_the_audit_budgets_are_checked_by_their_declared_types() -> None:
    assert validate.audit_budgets("a", {"attack_seed": 0}, AUDIT_OWN) == {"attack_seed": 0}
    assert validate.audit_budgets("a", {"sweep_max": 0.8}, AUDIT_OWN) == {"sweep_max": 0.8}
    for bad in ({"sweep_max": "x"}, {"sweep_max": -1}, {"steps": 0}, {"threat": "L2"}):
        with pytest.raises(rb.InvalidArgument):
            validate.audit_budgets("a", bad, AUDIT_OWN)
    # eps is capped by the sweep_max given, not the default one: n=0 is then the first error.
    with pytest.raises(rb.InvalidArgument, match=r"^n=0"):
        rb.benchmark(linear(), "digits", eps=0.6, n=0, audit_options={"sweep_max": 0.8})
    with pytest.raises(rb.InvalidArgument, match=r"^eps=0.6"):
        rb.benchmark(linear(), "digits", eps=0.6, n=0)


def test_an_analysis_option_is_one_it_reads_with_a_value_it_takes() -> None:
    assert set(ANALYSES["rank"].options) == {"exact_max", "k"}
    for extra, says in [
        ({"kk": "5"}, r"option='kk' is not an option of analysis rank; did you mean 'k'"),
        ({"k": "0"}, r"option k='0' is not valid; valid: an integer >= 1"),
        ({"k": "abc"}, r"option k='abc'"),
    ]:
        with pytest.raises(rb.InvalidArgument, match=says):
            rb.analyze("rank", linear(), "digits", tap="1", n=20, **extra)
    with pytest.raises(rb.InvalidArgument, match="comma-separated, each a number in"):
        ANALYSES["maxmargin"].check_options({"eps": "2"})
    with pytest.raises(rb.InvalidArgument, match="an attack name"):
        ANALYSES["maxmargin"].check_options({"attacks": "ifsgm,dpfool"})
    rows = rb.analyze("rank", linear(), "digits", tap="1", n=20, exact_max="0", k="3")
    assert set(rows["backend"]) == {"randomized"}


def test_a_checkpoint_refuses_another_dataset_and_module_only_arguments(nlr_digits) -> None:
    with pytest.raises(rb.InvalidArgument, match=r"dataset='cifar10' is not the checkpoint's"):
        rb.analyze("rank", nlr_digits, "cifar10", n=20)
    with pytest.raises(rb.InvalidArgument, match=r"preprocessing='dataset' describes an nn"):
        rb.analyze("rank", nlr_digits, preprocessing="dataset", n=20)


def test_the_attacked_model_is_no_black_box_source_of_itself(nlr_digits, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(nlr_digits, copy)
    for source in (nlr_digits, copy):
        with pytest.raises(CheckpointError, match="holds the same weights as the target"):
            load_target(nlr_digits, n=10, source=source)


def test_results_read_drop_exact_copies_and_refuse_two_numbers_for_one_key(tmp_path) -> None:
    row = results.make_row(
        dataset="digits", arch="resnet18", width=0.25, method="nlr", seed=0, checkpoint="c",
        experiment="attack", attack="ifsgm", eps=8 / 255, steps=7, metric="acc", value=52.5, n=40,
    )  # fmt: skip
    one = tmp_path / "one.csv"
    results.write(one, pd.DataFrame([row], columns=results.COLUMNS))
    assert len(results.read_many([one, one])) == 1  # the same file given twice counts once
    doubled = tmp_path / "doubled.csv"
    results.write(doubled, pd.DataFrame([row, row], columns=results.COLUMNS))
    assert len(results.read(doubled)) == 1
    other = tmp_path / "other.csv"
    results.write(other, pd.DataFrame([{**row, "value": 40.0}], columns=results.COLUMNS))
    with pytest.raises(ValueError, match="2 rows share a key with different numbers"):
        results.read_many([one, other])


def test_the_gate_fails_an_accuracy_that_became_nan_and_shows_a_changed_n(tmp_path) -> None:
    row = results.make_row(
        dataset="digits", arch="resnet18", width=0.25, method="nlr", seed=0, checkpoint="c",
        experiment="attack", attack="ifsgm", eps=8 / 255, steps=7, metric="acc", value=52.5, n=40,
    )  # fmt: skip
    base = pd.DataFrame([row], columns=results.COLUMNS)
    nan = base.assign(value=math.nan)
    assert not compare(nan, base).passed
    assert compare(nan, base).table["status"].tolist() == ["REGRESSED"]
    fewer = compare(base.assign(n=10), base)
    assert fewer.passed and fewer.table["status"].tolist() == ["changed"]
    assert fewer.table[["n_baseline", "n_new"]].values.tolist() == [[40, 10]]


def test_an_output_file_is_checked_before_the_work(tmp_path, capsys) -> None:
    blocker = tmp_path / "file.csv"
    blocker.write_text("a,b\n1,2\n")
    for out, says in [
        (tmp_path, "is a folder"),
        (blocker / "x.csv", "is a file, not a folder"),
        (blocker, "not a robustbench-lr results header"),
    ]:
        with pytest.raises(rb.InvalidArgument, match=says):
            validate.out(out)
    code, err = _cli(
        capsys, "attack", "--checkpoint", "no", "--attack", "fgsm", "--out", str(tmp_path)
    )
    assert code == 2 and "argument --out: " in err and "is a folder" in err
    code, err = _cli(capsys, "attack", "--checkpoint", "no", "--attack", "ifsgm,ifsgm")
    assert code == 2 and "--attack names ifsgm more than once" in err


def test_a_profile_analysis_option_is_one_some_analysis_reads() -> None:
    models = [{"arch": "resnet18", "methods": ["nlr"]}]
    base = {"name": "t", "models": models, "attacks": {"blackbox": False}}
    with pytest.raises(ValueError, match=r"unknown analysis option 'exact_mx'.*'exact_max'"):
        parse_profile({**base, "analyses": {"options": {"exact_mx": "3"}}}, "t.toml")
    with pytest.raises(ValueError, match=r"analyses\.options\.steps = '0' is not an integer"):
        parse_profile({**base, "analyses": {"options": {"steps": "0"}}}, "t.toml")
    good = parse_profile({**base, "analyses": {"options": {"eps": "64/255"}}}, "t.toml")
    assert good.analysis_options == {"eps": "64/255"}


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """The command's exit status and stderr, run in this process (an import costs seconds)."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as stop:  # argparse's usage errors
        code = int(stop.code)
    return code, capsys.readouterr().err


def test_the_leaderboard_refuses_a_misspelt_attack_and_a_board_with_nothing_to_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    row = results.make_row(
        dataset="digits", arch="resnet18", width=0.25, method="nlr", seed=0, checkpoint="c",
        experiment="attack", attack="ifsgm", box="white", eps=8 / 255, steps=7, metric="acc", value=52.5, n=40,
    )  # fmt: skip
    path = tmp_path / "r.csv"
    clean = {**row, "experiment": "clean", "attack": "clean", "eps": 0.0, "steps": 0}
    clean = results.make_row(**{**clean, "metric": "clean_acc", "value": 80.0})
    results.write(path, pd.DataFrame([row, clean], columns=results.COLUMNS))
    out = str(tmp_path / "lb.md")
    code, err = _cli(capsys, "leaderboard", str(path), "--attack", "ifsgmm", "--out", out)
    assert code == 2 and "did you mean 'ifsgm'" in err
    code, err = _cli(capsys, "leaderboard", str(path), "--steps", "20", "--out", out)
    assert code == 2 and "no white-box ifsgm rows" in err
    assert "ifsgm eps=0.03137 steps=7" in err and not Path(out).exists()
    code, _ = _cli(capsys, "leaderboard", str(path), "--steps", "7", "--out", out)
    assert code == 0 and "52.5" in Path(out).read_text()
