"""The audit in the L2 ball (`AuditOptions(threat="L2")`, `robustbench-lr audit --norm L2`).

One L2 audit of the session's N-LR digits model at a cut budget (n = 24, 1-3 APGD/FAB steps
and DeepFool iterations, a few Square queries) feeds most tests: its rows are filed under
`threat = "L2"` at the digits L2 ε, every run at ε stays in its L2 ball, the worst case is below
every run, the path indicators skip with their reason, and the leaderboard keeps the rows out
of its L∞ columns. The faces (CLI, API, bench) are checked on their wiring with that audit's
report standing in for a new one, and the L∞ battery is pinned run by run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import robustbench_lr
from robustbench_lr import leaderboard, results
from robustbench_lr.attacks import ATTACKS
from robustbench_lr.attacks import check_bounds as harness_bounds
from robustbench_lr.attacks.l2 import threats
from robustbench_lr.audit import THREATS, AuditOptions, audit_filename
from robustbench_lr.audit.battery import battery
from robustbench_lr.audit.indicators import perturbation_l2
from robustbench_lr.audit.threats import PARTS, l2_sweep_top
from robustbench_lr.bench import BenchContext
from robustbench_lr.bench.tracks import plan_l2
from robustbench_lr.data import DIGITS_L2_EPS, LoadOptions
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.profiles import load_profile, parse_profile
from robustbench_lr.target import load_target
from tests.conftest import audit_checkpoint_on_cpu
from tests.test_external_models import run_cli

L2 = AuditOptions(
    threat="L2",
    n=24,
    queries=10,
    steps=2,
    targets=1,
    restarts=1,
    dlr_restarts=1,
    noise_draws=2,
    deepfool_steps=3,
)
PATH_CHECKS = ("silent-success", "incomplete-optimization")
L2_FILE = "audit_digits_resnet18-w0.25_nlr_seed0_L2-eps0.2887.md"


@pytest.fixture(scope="module")
def l2_audit(nlr_digits: Path, nlr_digits_seed1: Path):
    """The L2 audit of the N-LR digits model at the digits L2 ε (its default), transfer crafted
    on the N-LR model of seed 1 (a model is no transfer source of itself)."""
    return audit_checkpoint_on_cpu(nlr_digits, L2, source=nlr_digits_seed1)


def test_rows_are_filed_under_l2_at_the_l2_eps(l2_audit, nlr_digits: Path, tmp_path: Path):
    b = l2_audit.report.battery
    assert b.options.eps == pytest.approx(DIGITS_L2_EPS)
    assert {row["threat"] for row in l2_audit.rows} == {"L2"}
    summary = [row for row in l2_audit.rows if row["attack"] == "audit"]
    assert summary and all(row["eps"] == pytest.approx(DIGITS_L2_EPS) for row in summary)
    for label, run in b.runs.items():
        if run.at_eps:
            assert b.evaluations[label].params["eps"] == pytest.approx(DIGITS_L2_EPS), label
    assert l2_audit.filename == L2_FILE
    columns = load_target(nlr_digits, n=1).columns
    assert audit_filename(columns, 32 / 255) != L2_FILE  # the L∞ audit's file
    # An L∞ audit row with the same key but its threat stays beside the L2 one.
    path = tmp_path / "results.csv"
    results.append(path, l2_audit.rows)
    deepfool = [r for r in l2_audit.rows if r["attack"] == "deepfool"]
    frame = results.append(path, [{**r, "threat": "Linf"} for r in deepfool])
    assert len(frame) == len(l2_audit.rows) + len(deepfool)


def test_every_l2_run_stays_inside_its_ball(l2_audit):
    """Each ε-bounded run is an L2 attack, which `run_attack` bound-checks on every call;
    the sizes the harness kept agree."""
    b = l2_audit.report.battery
    bounded = [label for label, run in b.runs.items() if "eps" in run.params]
    assert len(bounded) > 10
    for label in bounded:
        run = b.runs[label]
        assert ATTACKS[run.attack].norm == "l2" and threats(run.attack) == ("L2",), label
        eps = run.params["eps"]
        assert float(perturbation_l2(b, label).max()) <= eps * (1 + 1e-4) + 1e-6, label
    x = torch.full((2, 1, 8, 8), 0.5)
    with pytest.raises(RuntimeError, match="left its L2 ball"):
        harness_bounds(ATTACKS["pgd-l2"], x + 0.1, x, {"eps": 0.1})


def test_worst_case_is_at_most_every_run(l2_audit):
    report, b = l2_audit.report, l2_audit.report.battery
    at_eps = [label for label, run in b.runs.items() if run.at_eps]
    assert report.worst_case_acc <= min(b.acc(label) for label in at_eps)
    gradient = [label for label, run in b.runs.items() if run.role == "gradient"]
    assert report.whitebox_acc <= min(b.acc(label) for label in gradient)
    assert report.worst_case_acc <= report.autoattack_acc <= report.clean_acc
    assert report.has_standard_autoattack and "autoattack-standard-l2" in at_eps
    assert 0 <= report.autoattack_agreement["agreement"] <= 100


def test_checks_that_do_not_apply_are_skipped_with_a_reason(l2_audit):
    checks = {c.name: c for c in l2_audit.report.checks}
    for name in PATH_CHECKS:
        assert checks[name].status == "skip"
        assert "does not apply to an L2 audit" in checks[name].detail
        assert "signed-gradient loop" in checks[name].detail
        assert math.isnan(checks[name].a) and math.isnan(checks[name].b)
    assert all(c.status != "skip" for name, c in checks.items() if name not in PATH_CHECKS)
    assert checks["more-steps-7-20"].a_label == "pgd-l2-20"
    assert checks["whitebox-beats-noise"].b_label == "l2-noise"
    status = {
        row["attack"]: row["value"]
        for row in l2_audit.rows
        if row["attack"].startswith("check:") and row["metric"] == "status"
    }
    assert all(math.isnan(status[f"check:{name}"]) for name in PATH_CHECKS)
    text = l2_audit.markdown
    assert "L2 ε = 0.2887" in text and "PGD-L2 20 steps ≤ 7 steps + 1 pp" in text
    assert "L∞" not in text.split("## Checks")[0]


def test_leaderboard_keeps_l2_audit_rows_out_of_its_linf_columns(l2_audit, tmp_path: Path):
    """Even at a ranked ε equal to the L2 one, only rows filed under Linf fill the L∞ columns."""
    rows = l2_audit.rows
    clean = results.make_row(
        **{k: rows[0][k] for k in ("dataset", "arch", "width", "method", "seed", "checkpoint")},
        experiment="clean",
        metric="clean_acc",
        value=97.0,
    )
    threat = leaderboard.Threat(eps=DIGITS_L2_EPS)
    as_l2 = pd.concat([results.append(tmp_path / "l2.csv", rows), pd.DataFrame([clean])])
    table = leaderboard.build(as_l2, threat)
    assert pd.isna(table.loc[0, "worst_case_acc"]) and pd.isna(table.loc[0, "autoattack_acc"])
    assert pd.isna(table.loc[0, "audit"])
    relabelled = [{**row, "threat": "Linf"} for row in rows]  # the control: same numbers
    as_linf = pd.concat([results.append(tmp_path / "linf.csv", relabelled), pd.DataFrame([clean])])
    table = leaderboard.build(as_linf, threat)
    assert table.loc[0, "worst_case_acc"] == pytest.approx(l2_audit.report.worst_case_acc)


def test_a_bad_threat_names_the_valid_choices(nlr_digits: Path, tmp_path: Path, capsys):
    with pytest.raises(InvalidArgument, match=r"threat='l2'.*did you mean 'L2'.*valid: Linf, L2"):
        AuditOptions(threat="l2")
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    with pytest.raises(InvalidArgument, match="valid: Linf, L2"):
        robustbench_lr.audit(net, "digits", threat="L1", n=4)
    out = tmp_path / "results.csv"
    argv = ["audit", "--checkpoint", nlr_digits, "--norm", "L3", "--n", 4, "--out", out]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "invalid choice: 'L3'" in err and "'Linf', 'L2'" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_norm_l2_audits_at_the_l2_eps(l2_audit, nlr_digits, tmp_path, capsys, monkeypatch):
    """The command's wiring: --norm L2 -> an L2 audit at the dataset's L2 ε, rows under L2,
    the report under its own name (the battery itself is the fixture's)."""
    import robustbench_lr.audit.checkpoint as checkpoint

    seen = {}

    def recorded(model, x, y, options, source=None):
        seen.update(options=options)
        return l2_audit.report

    monkeypatch.setattr(checkpoint, "audit_model", recorded)
    out = tmp_path / "reports" / "results.csv"
    argv = ["audit", "--checkpoint", nlr_digits, "--norm", "L2", "--n", 24, "--out", out]
    code, printed, _ = run_cli(argv, capsys)
    assert code == 0 and "robust accuracy" in printed
    assert seen["options"].threat == "L2"
    assert seen["options"].eps == pytest.approx(DIGITS_L2_EPS)
    assert set(results.read(out)["threat"]) == {"L2"}
    assert "L2 ε = 0.2887" in (out.parent / L2_FILE).read_text()


def test_api_audit_takes_the_threat(l2_audit, monkeypatch):
    import robustbench_lr.audit.checkpoint as checkpoint

    seen = {}

    def recorded(model, x, y, options, source=None):
        seen.update(options=options)
        return l2_audit.report

    monkeypatch.setattr(checkpoint, "audit_model", recorded)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    done = robustbench_lr.audit(net, "digits", threat="L2", n=8, steps=2)
    assert seen["options"].threat == "L2" and seen["options"].steps == 2
    assert seen["options"].eps == pytest.approx(DIGITS_L2_EPS)
    assert "_L2-eps0.2887" in done.filename and {r["threat"] for r in done.rows} == {"L2"}


PROFILE = {
    "name": "p",
    "dataset": "digits",
    "models": [{"arch": "resnet18", "width": 0.25, "methods": ["nlr"], "seeds": [0, 1]}],
}


def test_the_l2_table_audit_key_plans_an_l2_audit_per_model(tmp_path: Path):
    grid = {"enabled": True, "n": 16, "steps": 3, "targets": 1, "queries": 10}
    off = parse_profile({**PROFILE, "l2": grid}, "test")
    on = parse_profile({**PROFILE, "l2": {**grid, "audit": True}, "audit": {"restarts": 2}}, "t")
    assert not off.l2.audit and on.l2.audit
    assert not load_profile("cpu").l2.audit
    assert load_profile("paper").l2.audit and load_profile("paper-fast").l2.audit

    def plan(profile):
        return plan_l2(BenchContext(profile, tmp_path, tmp_path / "ckpt", "cpu", LoadOptions()))

    assert not [job for job in plan(off) if job.key.startswith("l2-audit:")]
    audits = [job for job in plan(on) if job.key.startswith("l2-audit:")]
    assert len(audits) == 2
    (options,) = audits[0].run.args[2]  # run_experiment(run_audit, target, (options,))
    assert options == AuditOptions(
        **{
            "restarts": 2,
            "threat": "L2",
            "eps": DIGITS_L2_EPS,
            "n": 16,
            "steps": 3,
            "targets": 1,
            "queries": 10,
        }
    )
    assert options.threat == "L2"
    with pytest.raises(ValueError, match="l2.audit"):
        parse_profile({**PROFILE, "l2": {"audit": "yes"}}, "test")


# The L∞ battery run by run, as it was before the audit ran per threat: its result rows are
# the committed smoke baseline's, compared exactly.
LINF_32 = 32 / 255
LINF_BATTERY = [
    ("fgsm", "fgsm", {"eps": LINF_32}, "gradient", False, 1, False, None),
    ("ifsgm-7", "ifsgm", {"eps": LINF_32, "steps": 7}, "gradient", False, 1, False, "ours"),
    ("ifsgm-20", "ifsgm", {"eps": LINF_32, "steps": 20}, "gradient", False, 1, False, "ours"),
    ("ifsgm-100", "ifsgm", {"eps": LINF_32, "steps": 100}, "gradient", False, 1, False, "ours"),
    (
        "ifsgm-restarts",
        "ifsgm-restarts",
        {"eps": LINF_32, "steps": 20, "restarts": 5, "seed": 0},
        "gradient",
        False,
        1,
        False,
        None,
    ),
    (
        "apgd-ce",
        "apgd-ce",
        {"eps": LINF_32, "steps": 50, "restarts": 1, "seed": 0},
        "gradient",
        False,
        1,
        True,
        None,
    ),
    (
        "apgd-dlr",
        "apgd-dlr",
        {"eps": LINF_32, "steps": 50, "restarts": 2, "seed": 0},
        "gradient",
        False,
        1,
        False,
        None,
    ),
    (
        "apgd-t",
        "apgd-t",
        {"eps": LINF_32, "steps": 50, "targets": 3, "restarts": 1, "seed": 0},
        "gradient",
        False,
        1,
        True,
        None,
    ),
    (
        "fab-t",
        "fab-t",
        {"eps": LINF_32, "steps": 50, "targets": 3, "seed": 0},
        "gradient",
        False,
        1,
        True,
        None,
    ),
    (
        "square",
        "square",
        {"eps": LINF_32, "queries": 1000, "seed": 0},
        "blind",
        False,
        1,
        True,
        None,
    ),
    (
        "autoattack-standard",
        "autoattack-standard",
        {"eps": LINF_32, "steps": 50, "targets": 3, "queries": 1000, "seed": 0},
        "blind",
        False,
        1,
        False,
        None,
    ),
    ("linf-noise", "linf-noise", {"eps": LINF_32, "seed": 0}, "blind", False, 10, False, None),
    ("transfer", "ifsgm", {"eps": LINF_32, "steps": 20}, "blind", True, 1, False, None),
    ("deepfool", "deepfool", {"steps": 50}, "unbounded", False, 1, False, None),
    ("sweep-0.251", "ifsgm", {"eps": 64 / 255, "steps": 20}, "unbounded", False, 1, False, "ours"),
    ("sweep-0.5", "ifsgm", {"eps": 0.5, "steps": 20}, "unbounded", False, 1, False, "ours"),
]


def test_the_linf_battery_is_unchanged():
    for dims in (0, 64, 3072):  # the input size sizes only the L2 sweep
        runs = battery(AuditOptions(eps=LINF_32), True, dims)
        found = [
            (
                r.label,
                r.attack,
                dict(r.params),
                r.role,
                r.transfer,
                r.draws,
                r.autoattack,
                r.backend,
            )
            for r in runs
        ]
        assert found == LINF_BATTERY
        assert [list(r.params) for r in runs] == [list(row[2]) for row in LINF_BATTERY]
    assert AuditOptions().threat == "Linf"


def test_the_l2_battery_fills_every_part_from_the_l2_attacks():
    options = AuditOptions(eps=0.5, threat="L2")
    runs = {run.label: run for run in battery(options, True, 3 * 32 * 32)}
    assert all(THREATS["L2"].parts[part] in runs for part in PARTS)
    assert all(threats(run.attack) == ("L2",) for run in runs.values() if run.at_eps)
    sweep = [run.params["eps"] for run in runs.values() if run.label.startswith("sweep-")]
    assert sweep[-1] == pytest.approx(l2_sweep_top(0.5, 3072)) == pytest.approx(0.5 * 3072**0.5)
    assert all(run.attack == "pgd-l2" for run in runs.values() if run.label.startswith("sweep-"))
    with pytest.raises(ValueError, match="number of values per input"):
        battery(options, False)
