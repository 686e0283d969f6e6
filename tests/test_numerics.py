"""The numeric environment: the fingerprint, the pinned code paths, and the gate's two modes.

Other machines are emulated on this one with the levers each library reads (`numerics.py`):
a run under `numerics.PERTURBED` is what another CPU's rounding looks like.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_lr import numerics, regress, results, spread
from robustbench_lr.cli import main

ROOT = Path(__file__).resolve().parents[1]
TRAIN = (
    "import sys, hashlib, torch\n"
    "from robustbench_lr.config import TrainConfig\n"
    "from robustbench_lr.train import train\n"
    "torch.set_num_threads(2)\n"
    "cfg = TrainConfig(dataset='digits', arch='resnet18', width=0.25, epochs=1, train_limit=256,"
    " test_limit=64)\n"
    "r = train(cfg, sys.argv[1], 'cpu', progress=False)\n"
    "print(hashlib.sha256((r.folder / 'model.safetensors').read_bytes()).hexdigest())\n"
)


def _train_under(tmp_path: Path, runs: dict[str, dict[str, str]]) -> dict[str, str]:
    """The weights digest of a tiny training run in a child process under each run's levers.

    The children run side by side: most of each one's time is the single-threaded import, and
    a result depends on the thread count a child is given, not on what else runs.
    """
    levers = (*numerics.LEVERS, "MKL_ENABLE_INSTRUCTIONS", numerics.MODE_ENV)
    base = {k: v for k, v in os.environ.items() if k not in levers}
    base.update({"OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)})
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", TRAIN, str(tmp_path / name)],
            env={**base, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, extra in runs.items()
    }
    digests = {}
    for name, child in children.items():
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, f"{name}: {err}"
        digests[name] = out.strip().splitlines()[-1]
    return digests


def test_pinned_paths_give_the_same_bytes_on_an_avx2_cpu(tmp_path: Path):
    beyond_avx2 = "avx512f" in numerics.fingerprint()["cpu"]["flags"]
    runs = {
        "portable": {},
        # An AVX2-only CPU under the pinned setting: MKL told the CPU has no more than AVX2.
        "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    }
    if beyond_avx2:  # on an AVX2-only CPU native is the pinned path, so nothing to tell apart
        runs["native"] = {numerics.MODE_ENV: "native"}
    digest = _train_under(tmp_path, runs)
    assert digest["avx2"] == digest["portable"]
    if beyond_avx2:
        # a CPU beyond AVX2 computes otherwise when not pinned
        assert digest["native"] != digest["portable"]


def test_each_lever_alone_moved_away_gives_other_bytes(tmp_path: Path):
    digest = _train_under(
        tmp_path,
        {
            "portable": {},
            "aten": {"ATEN_CPU_CAPABILITY": "default"},
            "onednn": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
        },
    )
    assert len(set(digest.values())) == 3


def test_the_fingerprint_names_the_cpu_libraries_threads_and_paths_in_force():
    record = numerics.fingerprint("cpu")
    # The suite runs portable by default; `ROBUSTBENCH_LR_NUMERICS=native` runs it as another
    # machine would, and the record must then say native with no lever set.
    assert record["mode"] == numerics.mode() and record["levers"] == numerics.levers()
    if numerics.mode() == "portable":
        assert record["levers"] == numerics.PORTABLE
        assert record["aten_capability"] == "AVX2"  # what torch reports, not only what was asked
    assert record["threads"] == torch.get_num_threads()
    assert record["torch"] == torch.__version__ and record["mkl"] and record["onednn"]
    assert record["cpu"]["vendor"] and "avx2" in record["cpu"]["flags"]
    assert numerics.current_key().startswith(f"{numerics.mode()}-")


def test_the_portable_key_ignores_the_cpu_model_but_not_the_vendor_or_threads():
    pinned = {"mode": "portable", "levers": dict(numerics.PORTABLE), "aten_capability": "AVX2"}
    record = {**numerics.fingerprint("cpu"), **pinned}  # as a portable run records it
    other_model = {**record, "cpu": {**record["cpu"], "model": "Some Other Xeon", "flags": []}}
    assert numerics.comparison_key(other_model) == numerics.comparison_key(record)
    # The other vendor of the two x86 makers, whichever this machine is not.
    vendor = "GenuineIntel" if record["cpu"]["vendor"] == "AuthenticAMD" else "AuthenticAMD"
    other_vendor = {**record, "cpu": {**record["cpu"], "vendor": vendor}}
    assert numerics.comparison_key(other_vendor) != numerics.comparison_key(record)
    assert numerics.comparison_key({**record, "threads": 1}) != numerics.comparison_key(record)
    native = {**record, "levers": {name: "" for name in numerics.LEVERS}}
    native_other = {**native, "cpu": other_model["cpu"]}
    assert numerics.comparison_key(native).startswith("native-")
    assert numerics.comparison_key(native) != numerics.comparison_key(native_other)


def test_apply_keeps_a_lever_the_user_set_and_an_unknown_mode_names_the_choices():
    env = {"ATEN_CPU_CAPABILITY": "default"}
    numerics.apply(env)
    assert env == {**numerics.PORTABLE, "ATEN_CPU_CAPABILITY": "default"}
    native = {numerics.MODE_ENV: "native"}
    numerics.apply(native)
    assert native == {numerics.MODE_ENV: "native"}
    with pytest.raises(numerics.NumericsModeError, match="valid choices: portable, native"):
        numerics.mode({numerics.MODE_ENV: "fast"})


def test_checkpoints_and_rows_carry_the_fingerprint(nlr_digits: Path):
    meta = json.loads((nlr_digits / "meta.json").read_text())
    assert (
        meta["numerics"]["levers"] == numerics.levers()
    )  # the ones in force (portable by default)
    assert meta["numerics_key"] == numerics.comparison_key(meta["numerics"])
    fields = results.model_fields(meta, nlr_digits)
    assert fields["numerics"] == meta["numerics_key"] == numerics.current_key()
    assert numerics.row_key("a", "b") == "a+b" and numerics.row_key("a", "a") == "a"


def _rows(value: float, key: str, seed: int = 0, metric: str = "acc") -> dict:
    return {
        "dataset": "digits",
        "arch": "resnet18",
        "width": 0.25,
        "method": "nlr",
        "seed": seed,
        "checkpoint": f"/x/seed{seed}",
        "experiment": "attack",
        "attack": "ifsgm",
        "box": "white",
        "eps": 8 / 255,
        "steps": 20,
        "metric": metric,
        "value": value,
        "n": 100,
        "device": "cpu",
        "numerics": key,
    }


def _frame(tmp_path: Path, name: str, rows: list[dict]) -> pd.DataFrame:
    return results.append(tmp_path / name, rows)


def test_the_spread_is_the_perturbed_move_plus_the_seed_move_per_group(tmp_path: Path):
    base = _frame(tmp_path, "b.csv", [_rows(60.0, "p-1", 0), _rows(57.0, "p-1", 1)])
    moved = _frame(tmp_path, "m.csv", [_rows(58.5, "n-2", 0), _rows(57.5, "n-2", 1)])
    table = spread.measure(base, [moved])
    row = table.set_index(spread.GROUP).loc[("attack", "ifsgm", "acc")]
    assert (row["numerics_spread"], row["seed_spread"]) == (1.5, 3.0)
    assert row["tolerance"] == 4.5 and row["rows"] == 2


def test_gate_exact_on_equal_keys_tolerance_otherwise_and_a_planted_drop_fails_both(
    tmp_path: Path,
):
    base = _frame(
        tmp_path, "base.csv", [_rows(60.0, "portable-a", 0), _rows(57.0, "portable-a", 1)]
    )
    table = spread.measure(base, [_frame(tmp_path, "p.csv", [_rows(58.0, "x", 0)])])
    tol = float(table["tolerance"].item())
    assert tol == 5.0  # 2 points of rounding + 3 between the seeds

    # Same key: exact, so one point lost is seen (with no slack) though it is inside the spread.
    same = _frame(
        tmp_path, "same.csv", [_rows(59.0, "portable-a", 0), _rows(57.0, "portable-a", 1)]
    )
    report = regress.compare(same, base, tol_pp=0.0, spread_table=table)
    assert set(report.table["gate"]) == {"exact"} and not report.passed
    assert report.table["why"].str.contains("same numerics portable-a").all()

    # Another machine: within the measured spread passes, and the report says why.
    other = _frame(tmp_path, "o.csv", [_rows(56.0, "portable-b", 0), _rows(57.0, "portable-b", 1)])
    report = regress.compare(other, base, tol_pp=0.0, spread_table=table)
    assert report.passed and set(report.table["gate"]) == {"tolerance"}
    assert report.table["why"].str.contains("portable-a vs portable-b: measured spread 5").all()

    # A planted drop beyond the spread fails on another machine too.
    planted = _frame(
        tmp_path, "d.csv", [_rows(54.0, "portable-b", 0), _rows(57.0, "portable-b", 1)]
    )
    report = regress.compare(planted, base, tol_pp=0.0, spread_table=table)
    assert not report.passed and report.table["status"].tolist()[0] == "REGRESSED"

    # Without a measured spread another machine's rows fall back to the Wilson interval.
    report = regress.compare(other, base, tol_pp=0.0)
    assert set(report.table["gate"]) == {"interval"}
    assert report.table["why"].str.contains("no measured spread").all()
    with pytest.raises(ValueError, match="measured spread"):
        regress.compare(other, base, mode="tolerance")


def test_regress_command_measures_and_uses_the_spread_file(tmp_path: Path, capsys):
    base, perturbed = tmp_path / "base.csv", tmp_path / "perturbed.csv"
    results.append(base, [_rows(60.0, "portable-a", 0), _rows(57.0, "portable-a", 1)])
    results.append(perturbed, [_rows(58.0, "native-z", 0), _rows(57.0, "native-z", 1)])
    argv = ["regress", "--results", str(perturbed), "--baseline", str(base)]
    assert main([*argv, "--measure-spread", str(perturbed)]) == 0
    written = tmp_path / "base.spread.csv"
    assert spread.read(written)["tolerance"].tolist() == [5.0]
    capsys.readouterr()
    assert main(argv) == 0  # the spread beside the baseline is found by its name
    out = capsys.readouterr().out
    assert "tolerance: 2 rows (numerics portable-a vs native-z: measured spread 5)" in out
    planted = tmp_path / "planted.csv"
    results.append(planted, [_rows(50.0, "native-z", 0), _rows(57.0, "native-z", 1)])
    assert main(["regress", "--results", str(planted), "--baseline", str(base)]) == 1
    assert "REGRESSED" in capsys.readouterr().out
    written.write_text("a,b\n1,2\n")
    assert main(argv) == 2
    assert "expected" in capsys.readouterr().err


def test_the_bench_retrains_each_model_on_a_perturbed_path_for_its_spread(tmp_path: Path):
    from robustbench_lr import leaderboard, perturbed
    from robustbench_lr.bench import run_bench
    from robustbench_lr.profiles import load_profile
    from tests.conftest import TINY_PROFILE

    text = TINY_PROFILE.replace("n = 40\n", "n = 40\nnumerics_spread = true\n", 1)
    (tmp_path / "spread.toml").write_text(text)
    profile = load_profile(str(tmp_path / "spread.toml"))
    assert profile.numerics_spread
    out, ck = tmp_path / "out", tmp_path / "ck"
    run_bench(profile, out, ck, "cpu", progress=False, stages=["train", "numerics"])
    frame = results.read(out / "results.csv")
    clean = frame[frame["experiment"] == "clean"]["value"].item()
    rows = frame[frame["experiment"] == perturbed.EXPERIMENT].set_index("metric")["value"]
    assert rows["clean_move_pp"] == pytest.approx(abs(rows["clean_acc"] - clean))
    again = json.loads(next((ck / perturbed.FOLDER).rglob("meta.json")).read_text())
    assert again["numerics"]["levers"] == numerics.PERTURBED  # the child really ran elsewhere
    assert again["numerics_key"] != numerics.current_key()
    board = leaderboard.build(frame, leaderboard.Threat(eps=16 / 255, steps=3))
    assert board["numerics_spread"].item() == pytest.approx(rows["clean_move_pp"])


def test_a_retraining_that_diverges_is_recorded_as_an_unbounded_spread(tmp_path: Path, monkeypatch):
    """A perturbed-path run whose loss turns non-finite is a measurement (the training is
    numerically fragile): NaN accuracy, spread inf, said on the leaderboard; the bench goes on."""
    import math

    from robustbench_lr import leaderboard, perturbed
    from robustbench_lr.bench import run_bench
    from robustbench_lr.profiles import load_profile
    from tests.conftest import TINY_PROFILE

    def diverges(request: dict) -> dict:
        raise FloatingPointError("loss became nan at epoch 3, step 25")

    monkeypatch.setattr(perturbed, "train", lambda *a, **k: diverges({}))
    child = perturbed._child({"config": {"epochs": 1}, "root": str(tmp_path), "data_root": None})
    assert child["clean_acc"] is None and "loss became nan" in child["diverged"]
    monkeypatch.undo()

    text = TINY_PROFILE.replace("n = 40\n", "n = 40\nnumerics_spread = true\n", 1)
    (tmp_path / "spread.toml").write_text(text)
    monkeypatch.setattr(
        perturbed, "retrain", lambda *a, **k: {"clean_acc": None, "diverged": "loss became nan"}
    )
    out = tmp_path / "out"
    run_bench(
        load_profile(str(tmp_path / "spread.toml")),
        out,
        tmp_path / "ck",
        "cpu",
        progress=False,
        stages=["train", "numerics"],
    )
    frame = results.read(out / "results.csv")
    rows = frame[frame["experiment"] == perturbed.EXPERIMENT].set_index("metric")["value"]
    assert math.isnan(rows["clean_acc"]) and rows["clean_move_pp"] == math.inf
    threat = leaderboard.Threat(eps=16 / 255, steps=3)
    board = leaderboard.build(frame, threat)
    assert board["numerics_spread"].item() == math.inf
    text = leaderboard.write(board, threat, tmp_path / "lb.md")[0].read_text()
    assert "inf = that retraining diverged" in text


def test_a_spread_file_row_without_an_attack_still_matches_its_rows(tmp_path: Path):
    """The analyses' rows have no attack (""): their measured tolerance must reach them after a
    round trip through the spread file, or the gate falls back to a stricter rule."""
    rows = pd.DataFrame(
        {
            "experiment": ["hybrid", "attack"],
            "attack": ["", "ifsgm"],
            "metric": ["hybrid_acc", "acc"],
        }
    )
    table = pd.DataFrame(
        [
            ["hybrid", "", "hybrid_acc", 1.5, 2.5, 4.0, 12],
            ["attack", "ifsgm", "acc", 10, 9, 19, 48],
        ],
        columns=spread.COLUMNS,
    )
    path = tmp_path / "b.spread.csv"
    table.to_csv(path, index=False)
    assert spread.tolerances(rows, spread.read(path)).tolist() == [4.0, 19.0]
