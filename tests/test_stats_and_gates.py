"""Wilson intervals, the digits numbers are shown with, the regression gate's exact and interval
modes, and the leaderboard's AutoAttack, optimality and black-box columns, on hand-made rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_lr import leaderboard, regress, results, stats, tables
from robustbench_lr.cli import main

MODEL = {"dataset": "digits", "arch": "resnet18", "width": 0.25}
EPS = 8 / 255

# (successes, n, lower %, upper %): worked by hand from the score interval with z = 1.96,
# e.g. 0/10: upper = z²/(n + z²) = 3.8416/13.8416; 5/10: 0.5 ± z·sqrt(0.025 + z²/400)/(1 + z²/10).
WILSON = [
    ("0-of-10", 0, 10, 0.0, 27.7540),
    ("5-of-10", 5, 10, 23.6588, 76.3412),
    ("10-of-10", 10, 10, 72.2460, 100.0),
    ("97-of-100", 97, 100, 91.5479, 98.9746),
    ("1-of-1", 1, 1, 20.6543, 100.0),
]


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"), [c[1:] for c in WILSON], ids=[c[0] for c in WILSON]
)
def test_wilson_interval_matches_hand_computed_values(k: int, n: int, lo: float, hi: float):
    got = stats.wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-3)
    assert stats.accuracy_interval(100 * k / n, n) == pytest.approx(got)


def test_wilson_interval_edges():
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))
    # The ends are exact, not 1 - 1e-16: n in 1..1000 covers every n the bench uses.
    assert all(stats.wilson_interval(n, n)[1] == 100.0 for n in range(1, 1001))
    assert all(stats.wilson_interval(0, n)[0] == 0.0 for n in range(1, 1001))
    assert all(math.isnan(v) for v in stats.accuracy_interval(97.0, 0))
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(11, 10)
    # a float32 mean times 100 maps back to its count; fractions keep their scale
    assert stats.successes_of(97.77777791023254, 450) == 440
    assert stats.accuracy_interval(0.5, 10, scale=1.0) == pytest.approx((0.236588, 0.763412), 1e-5)


def test_seeds_pool_their_examples_and_keep_their_spread():
    summary = stats.pooled_accuracy([40.0, 44.0], [100, 100])
    assert summary.mean == pytest.approx(42.0) and summary.n == 200 and summary.seeds == 2
    assert (summary.lo, summary.hi) == pytest.approx(stats.wilson_interval(84, 200))
    assert (summary.min, summary.max) == (40.0, 44.0)
    assert summary.std == pytest.approx(pd.Series([40.0, 44.0]).std())
    assert stats.pooled_accuracy([97.0], [100]).std == 0.0


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [(0.003, 2, "0.0030"), (0.00314, 2, "0.0031"), (0.149, 3, "0.149"), (97.78, 1, "97.8")],
)
def test_small_numbers_keep_two_significant_digits(value: float, places: int, text: str):
    assert stats.number_text(value, places) == text


@pytest.mark.parametrize(
    ("correct", "n", "places", "text"),
    [(2, 200, 1, "1.0"), (1, 200, 1, "0.50"), (189, 200, 1, "94.5"), (2, 2000, 1, "0.10")],
)
def test_an_accuracy_scored_in_float32_prints_as_its_exact_value(correct, n, places, text):
    """The harness scores accuracy as a float32 mean (2/200 is 0.99999998 %): the cell shows
    the digits of the exact share, as the other cells of its column do."""
    flags = torch.zeros(n, dtype=torch.bool)
    flags[:correct] = True
    acc = 100.0 * flags.float().mean().item()
    assert acc != 100.0 * correct / n  # what makes the case: float32 is off the exact share
    assert stats.number_text(acc, places) == stats.number_text(100.0 * correct / n, places) == text


def _row(method: str, seed: int, **fields) -> dict:
    return {
        **MODEL,
        "method": method,
        "seed": seed,
        "checkpoint": f"/x/{method}/seed{seed}",
        "device": "cpu",
        **fields,
    }


def _board_rows() -> list[dict]:
    """Two N-LR seeds and one 1-LR: clean, white- and black-box IFSGM, DeepFool ρ ≈ 0.003."""
    rows = []
    for method, seed, clean, adv, black in [
        ("nlr", 0, 97.0, 40.0, 70.0),
        ("nlr", 1, 96.0, 44.0, 72.0),
        ("1lr", 0, 98.0, 60.0, 80.0),
    ]:
        clean_row = {"experiment": "clean", "attack": "clean", "metric": "clean_acc", "n": 100}
        rows.append(_row(method, seed, **clean_row, value=clean))
        attack = {"experiment": "attack", "attack": "ifsgm", "eps": EPS, "steps": 20}
        rows.append(_row(method, seed, **attack, box="white", metric="acc", value=adv, n=100))
        # The black-box source is an independently seeded N-LR, for N-LR itself too.
        source = "/x/nlr/seed7"
        rows.append(
            _row(method, seed, **attack, box="black", source=source, metric="acc", value=black)
        )
        rows[-1]["n"] = 100
        rows.append(
            _row(
                method,
                seed,
                experiment="minrho",
                attack="deepfool",
                box="white",
                metric="rho",
                value=0.0031 + seed / 10000,
                n=100,
            )
        )
    return rows


def _audit(method: str, seed: int, attack: str, metric: str, value: float) -> dict:
    return _row(
        method, seed, experiment="audit", attack=attack, eps=EPS, metric=metric, value=value, n=100
    )


def test_tables_show_intervals_and_small_rho_with_significant_digits(tmp_path: Path):
    frame = results.append(tmp_path / "r.csv", _board_rows())
    table7 = tables.render(frame, tables.TABLES.get("table7"), tmp_path)
    nlr = table7.numbers[table7.numbers["method"] == "nlr"].iloc[0]
    lo, hi = stats.wilson_interval(97 + 96, 200)  # both seeds' 100 examples pooled
    assert (nlr["lo"], nlr["hi"], nlr["n"]) == pytest.approx((lo, hi, 200))
    # the Markdown cell is mean ± std; the interval is in the CSV the note points to
    assert "| 96.5 ± 0.7 " in table7.markdown and f"{lo:.1f}, {hi:.1f}" not in table7.markdown
    assert (
        "95 % Wilson intervals of the accuracies: columns lo, hi of table7.csv" in table7.markdown
    )
    csv = pd.read_csv(tmp_path / "table7.csv")
    assert {"lo", "hi", "n", "min", "max"} <= set(csv.columns)
    minrho = [dict(r, experiment="minrho") for r in _board_rows() if r["metric"] == "rho"]
    frame = results.append(tmp_path / "rho.csv", minrho)
    table3 = tables.render(frame, tables.TABLES.get("table3"), tmp_path)
    assert "0.0032 ± 0.0001" in table3.markdown  # not 0.003 ± 0.000
    assert table3.numbers["lo"].isna().all()  # ρ is not a proportion: no interval
    assert "Wilson" not in table3.markdown


def test_leaderboard_shows_intervals_spread_and_the_nlr_blackbox_control(tmp_path: Path):
    frame = results.append(tmp_path / "r.csv", _board_rows())
    threat = leaderboard.Threat(eps=EPS, steps=20)
    board = leaderboard.build(frame, threat)
    nlr = board[board["method"] == "nlr"].iloc[0]
    assert nlr["blackbox_acc"] == pytest.approx(71.0)  # N-LR -> N-LR is shown, not hidden
    assert (nlr["robust_acc_lo"], nlr["robust_acc_hi"]) == pytest.approx(
        stats.wilson_interval(84, 200)
    )
    assert (nlr["robust_acc_min"], nlr["robust_acc_max"]) == (40.0, 44.0)
    files = leaderboard.write(board, threat, tmp_path / "lb.md")
    text = files[0].read_text()
    lo, hi = stats.wilson_interval(84, 200)
    assert f"42.0 ± 2.8 [{lo:.1f}, {hi:.1f}]" in text
    assert "71.0 ± 1.4 [" in text and "independently seeded nlr model" in text
    assert "nlr→nlr control" in text
    assert "0.0032 ± 0.0001" in text  # DeepFool ρ, not 0.00
    assert "Attack optimality" not in text  # no optimality rows: no table
    info = json.loads((tmp_path / "lb_models" / "digits__resnet18-w0.25__nlr.json").read_text())
    assert info["deepfool_rho"] == 0.00315
    assert info["ci95"]["reported"] == pytest.approx([round(lo, 2), round(hi, 2)])
    assert info["seed_spread"]["reported"] == {"std": 2.83, "min": 40.0, "max": 44.0}


def test_leaderboard_prefers_standard_autoattack_and_says_which(tmp_path: Path):
    port = [_audit(m, s, "audit", "autoattack_acc", 30.0) for m, s in (("nlr", 0), ("1lr", 0))]
    standard = [_audit("1lr", 0, "autoattack-standard", "acc", 25.0)]
    frame = results.append(tmp_path / "r.csv", [*_board_rows(), *port, *standard])
    threat = leaderboard.Threat(eps=EPS, steps=20)
    board = leaderboard.build(frame, threat).set_index("method")
    assert board.loc["1lr", "autoattack_acc"] == 25.0  # the authors' package wins
    assert board.loc["1lr", "autoattack_source"] == "standard"
    assert board.loc["nlr", "autoattack_acc"] == 30.0  # only the port: fall back to it
    assert board.loc["nlr", "autoattack_source"] == "port"
    files = leaderboard.write(board.reset_index(), threat, tmp_path / "lb.md")
    text = files[0].read_text()
    assert "30.0 [" in text and "] †" in text and "† = torchattacks' port" in text
    assert "standard version (the authors' package)" in text
    infos = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in files[1:]}
    assert infos["1lr"]["autoattack_acc"] == 25.0
    assert "authors' package" in infos["1lr"]["autoattack_source"]
    assert "torchattacks" in infos["nlr"]["autoattack_source"]


def test_optimality_table_appears_only_with_optimality_rows(tmp_path: Path):
    threat = leaderboard.Threat(eps=EPS, steps=20)
    optimality = [
        _audit("nlr", 0, "apgd-ce", "optimality", 0.9),
        _audit("nlr", 1, "apgd-ce", "optimality", 1.0),
        _audit("nlr", 0, "square", "optimality", 0.004),
        _audit("1lr", 0, "apgd-ce", "optimality", 0.8),
    ]
    frame = results.append(tmp_path / "r.csv", [*_board_rows(), *optimality])
    board = leaderboard.build(frame, threat)
    text = leaderboard.write(board, threat, tmp_path / "lb.md")[0].read_text()
    block = text[text.index("## Attack optimality") :]
    lines = [line for line in block.splitlines() if line.startswith("| ")]
    assert "digits/resnet18-w0.25/nlr" in lines[0] and "digits/resnet18-w0.25/1lr" in lines[0]
    cells = {line.split("|")[1].strip(): line for line in lines[1:]}
    assert set(cells) == {"apgd-ce", "square"}
    assert "0.95" in cells["apgd-ce"] and "0.80" in cells["apgd-ce"]
    assert "0.0040" in cells["square"]  # small values keep significant digits
    nlr = board[board["method"] == "nlr"].iloc[0]
    info = leaderboard.model_info(nlr, threat)
    assert info["attack_optimality"] == {"apgd-ce": 0.95, "square": 0.004}


# --- the regression gate's modes -------------------------------------------------------------


def _gate_rows(
    device: str, value: float, n: int = 100, numerics: str = "portable-0123456789"
) -> list[dict]:
    return [_row("nlr", 0, experiment="attack", attack="ifsgm", box="white", eps=EPS, steps=20,
                 metric="acc", value=value, n=n, device=device, numerics=numerics)]  # fmt: skip


def _frame(tmp_path: Path, name: str, rows: list[dict]) -> pd.DataFrame:
    return results.append(tmp_path / name, rows)


def test_exact_mode_fails_any_drop_on_cpu_rows(tmp_path: Path):
    baseline = _frame(tmp_path, "base.csv", _gate_rows("cpu", 40.0))
    one_example_less = _frame(tmp_path, "new.csv", _gate_rows("cpu", 39.0))
    for mode in ("auto", "exact"):
        report = regress.compare(one_example_less, baseline, tol_pp=0.0, mode=mode)
        assert not report.passed and report.table["gate"].tolist() == ["exact"]
    # The same drop is inside the new value's interval [30.0, 48.8]: only forcing the
    # interval rule lets it through; the default slack of 2 points still passes it too.
    assert regress.compare(one_example_less, baseline, tol_pp=0.0, mode="interval").passed
    assert regress.compare(one_example_less, baseline).passed
    # Rows of files that predate the device column are CPU rows for `auto`: exact when their
    # numerics keys match, and never exact when nothing vouches for the numeric path.
    unrecorded = _frame(tmp_path, "old.csv", _gate_rows("", 39.0))
    report = regress.compare(unrecorded, _frame(tmp_path, "old-base.csv", _gate_rows("", 40.0)))
    assert report.table["gate"].tolist() == ["exact"]
    unknown = _frame(tmp_path, "older.csv", _gate_rows("", 39.0, numerics=""))
    older_base = _frame(tmp_path, "older-base.csv", _gate_rows("", 40.0, numerics=""))
    report = regress.compare(unknown, older_base, tol_pp=0.0)
    assert report.table["gate"].tolist() == ["interval"] and report.passed
    assert "unrecorded" in report.table["why"].item()


def test_interval_mode_passes_a_drop_within_the_interval_and_fails_one_beyond(tmp_path: Path):
    baseline = _frame(tmp_path, "base.csv", _gate_rows("cuda", 40.0))
    within = _frame(tmp_path, "within.csv", _gate_rows("cuda", 34.0))  # 95 %: [25.5, 43.7]
    beyond = _frame(tmp_path, "beyond.csv", _gate_rows("cuda", 29.0))  # 95 %: [21.0, 38.5]
    report = regress.compare(within, baseline)  # auto: a CUDA row is judged by its interval
    assert report.passed and report.table["gate"].tolist() == ["interval"]
    assert report.table["status"].tolist() == ["changed"]
    assert (report.table["new_lo"].item(), report.table["new_hi"].item()) == pytest.approx(
        stats.wilson_interval(34, 100)
    )
    failed = regress.compare(beyond, baseline)
    assert not failed.passed and failed.table["status"].tolist() == ["REGRESSED"]
    # forcing exact on the CUDA rows judges the 6-point drop by the 2-point slack
    assert not regress.compare(within, baseline, mode="exact").passed
    # a row without examples has no interval: it is judged exactly
    no_n = _frame(tmp_path, "no-n.csv", _gate_rows("cuda", 34.0, n=0))
    assert regress.compare(no_n, baseline).table["gate"].tolist() == ["exact"]
    with pytest.raises(ValueError, match="mode"):
        regress.compare(within, baseline, mode="loose")


def test_an_unchanged_100_percent_is_no_drop_under_the_interval_rule(tmp_path: Path):
    # Another CPU vendor's run of the same bench: every number equal, keys not, no spread.
    baseline = _frame(tmp_path, "base.csv", _gate_rows("cpu", 100.0, numerics="portable-a"))
    same = _frame(tmp_path, "new.csv", _gate_rows("cpu", 100.0, numerics="portable-b"))
    report = regress.compare(same, baseline, tol_pp=0.0)
    assert report.table["gate"].tolist() == ["interval"]
    assert report.passed and report.table["status"].tolist() == ["ok"]
    one_less = _frame(tmp_path, "less.csv", _gate_rows("cpu", 97.0, numerics="portable-b"))
    assert regress.compare(one_less, baseline, tol_pp=0.0).table["status"].tolist() == ["REGRESSED"]


def test_compare_flag_reaches_the_gate(tmp_path: Path, capsys):
    base = tmp_path / "base.csv"
    results.append(base, _gate_rows("cuda", 40.0))
    within = tmp_path / "within.csv"
    results.append(within, _gate_rows("cuda", 34.0))
    argv = ["regress", "--results", str(within), "--baseline", str(base)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "interval" in out and "[25.5, 43.7]" in out and "PASS" in out
    assert main([*argv, "--compare", "exact"]) == 1
    assert "REGRESSED" in capsys.readouterr().out
    assert main([*argv, "--compare", "interval", "--tol-pp", "0", "--all"]) == 0


def test_optimality_table_splits_into_tables_of_at_most_its_width(tmp_path: Path, monkeypatch):
    """Each optimality table holds at most OPTIMALITY_WIDTH model columns; every model is in
    exactly one of them, in leaderboard order."""
    from robustbench_lr.leaderboard import markdown

    monkeypatch.setattr(markdown, "OPTIMALITY_WIDTH", 1)
    threat = leaderboard.Threat(eps=EPS, steps=20)
    optimality = [
        _audit("nlr", 0, "apgd-ce", "optimality", 0.9),
        _audit("1lr", 0, "apgd-ce", "optimality", 0.8),
    ]
    frame = results.append(tmp_path / "r.csv", [*_board_rows(), *optimality])
    board = leaderboard.build(frame, threat)
    text = leaderboard.write(board, threat, tmp_path / "lb.md")[0].read_text()
    block = text[text.index("## Attack optimality") :]
    headers = [line for line in block.splitlines() if line.startswith("| attack")]
    assert len(headers) == 2
    assert [len(h.strip("|").split("|")) for h in headers] == [2, 2]
    names = [h.strip("|").split("|")[1].strip() for h in headers]
    assert names == [leaderboard.model_name(row) for _, row in board.iterrows()]
