"""Results file, tables, leaderboard and the regression gate, on hand-made result rows."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from robustbench_lr import attacks, leaderboard, regress, results, tables
from robustbench_lr.analysis.rank import plot_curves
from robustbench_lr.cli import main
from robustbench_lr.report import render_report

MODEL = {"dataset": "digits", "arch": "resnet18", "width": 0.25}


def _rows() -> list[dict]:
    rows = []
    for method, seed, clean, adv in [
        ("nlr", 0, 97.0, 40.0),
        ("nlr", 1, 96.0, 44.0),
        ("1lr", 0, 98.0, 60.0),
    ]:
        ck = f"/x/{method}/seed{seed}"
        rows.append(
            {
                **MODEL,
                "method": method,
                "seed": seed,
                "checkpoint": ck,
                "experiment": "clean",
                "attack": "clean",
                "metric": "clean_acc",
                "value": clean,
                "n": 450,
            }
        )
        for eps, steps, drop in [(8 / 255, 7, 0.0), (8 / 255, 20, 5.0)]:
            rows.append(
                {
                    **MODEL,
                    "method": method,
                    "seed": seed,
                    "checkpoint": ck,
                    "experiment": "attack",
                    "attack": "ifsgm",
                    "box": "white",
                    "eps": eps,
                    "steps": steps,
                    "metric": "acc",
                    "value": adv - drop,
                    "n": 100,
                }
            )
        rows.append(
            {
                **MODEL,
                "method": method,
                "seed": seed,
                "checkpoint": ck,
                "experiment": "minrho",
                "attack": "deepfool",
                "box": "white",
                "metric": "rho",
                "value": 0.1 + seed / 100,
                "n": 100,
            }
        )
        rows.append(
            {
                **MODEL,
                "method": method,
                "seed": seed,
                "checkpoint": ck,
                "experiment": "attack",
                "attack": "noise",
                "p": 0.4,
                "param": "draws=2;seed=0",
                "metric": "acc",
                "value": clean - 10,
                "n": 100,
            }
        )
    # One numeric path for every row: the gate compares them exactly.
    for row in rows:
        row["numerics"] = "portable-0123456789"
    return rows


@pytest.fixture()
def results_csv(tmp_path: Path) -> Path:
    path = tmp_path / "results.csv"
    results.append(path, _rows())
    return path


def test_append_replaces_rows_with_the_same_key(results_csv: Path):
    before = results.read(results_csv)
    changed = dict(_rows()[0], value=12.5)
    results.append(results_csv, [changed])
    after = results.read(results_csv)
    assert len(after) == len(before)
    assert after[(after["checkpoint"] == "/x/nlr/seed0") & (after["metric"] == "clean_acc")][
        "value"
    ].tolist() == [12.5]
    with pytest.raises(KeyError, match="unknown result columns"):
        results.make_row(colour="red")


def test_a_rerun_trace_replaces_the_whole_old_trace(results_csv: Path):
    search = {**MODEL, "checkpoint": "/x/nlr/seed0", "experiment": "minrho-bisection"}
    search.update(attack="ifsgm", box="white", metric="misclassified", n=100)
    first = [dict(search, eps=e, value=v) for e, v in ((0.25, 90.0), (0.375, 99.5), (0.3125, 98.0))]
    results.append(results_csv, first, trace=("eps",))
    other = dict(first[0], attack="ill")  # another search: not part of the trace
    results.append(results_csv, [other], trace=("eps",))
    rerun = [
        dict(search, eps=e, value=v) for e, v in ((0.25, 91.0), (0.375, 99.6), (0.4375, 100.0))
    ]
    frame = results.append(results_csv, rerun, trace=("eps",))
    traced = frame[frame["experiment"] == "minrho-bisection"]
    assert sorted(traced[traced["attack"] == "ifsgm"]["eps"]) == [0.25, 0.375, 0.4375]
    assert (traced["attack"] == "ill").sum() == 1
    assert len(frame) == len(_rows()) + 4


# (experiment, param) as files before the p/dim/severity/tap columns wrote them
# -> (p, dim, severity, tap, param).
NAN = math.nan
OLDER_PARAMS = [
    ("attack", "draws=2;mask=pixel;p=0.4;seed=0", (0.4, NAN, NAN, "", "draws=2;mask=pixel;seed=0")),
    ("attack", "draws=1;p=1;seed=0", (1.0, NAN, NAN, "", "draws=1;seed=0")),
    ("clean", "", (NAN, NAN, NAN, "", "")),
    ("corruption", "seed=0;severity=3", (NAN, NAN, 3.0, "", "seed=0")),
    ("hybrid", "pre_fc:d=full", (NAN, math.inf, NAN, "pre_fc", "")),
    ("hybrid", "pre_block4:d=20", (NAN, 20.0, NAN, "pre_block4", "")),
    ("hybrid", "pre_fc", (NAN, NAN, NAN, "pre_fc", "")),
    ("maxmargin", "fc3_in:d=full", (NAN, math.inf, NAN, "fc3_in", "")),
    ("transfer", "pre_fc:labels=digits:d=5", (NAN, 5.0, NAN, "pre_fc", "labels=digits")),
    ("classwise", "features:class=3", (NAN, NAN, NAN, "features", "class=3")),
    ("stability", "pre_fc:bin=0.0316..0.1", (NAN, NAN, NAN, "pre_fc", "bin=0.0316..0.1")),
    ("rank", "pre_fc", (NAN, NAN, NAN, "pre_fc", "")),
    ("cushion", "stages.layer1.0.conv1", (NAN, NAN, NAN, "stages.layer1.0.conv1", "")),
    ("cushion", "random-init:stages.fc", (NAN, NAN, NAN, "stages.fc", "random-init")),
    ("corruption", "", (NAN, NAN, NAN, "", "")),  # a corruption's mean: no severity
    ("corruption", "severity=5;subset_seed=1", (NAN, NAN, 5.0, "", "subset_seed=1")),
]


def test_a_file_from_before_the_split_columns_reads_them_out_of_param(tmp_path: Path):
    header = [c for c in results.COLUMNS if c not in (*results.SPLIT_COLUMNS, "threat")]
    rows = [
        results.make_row(**MODEL, experiment=e, param=text, metric="m", value=float(i))
        for i, (e, text, _) in enumerate(OLDER_PARAMS)
    ]
    path = tmp_path / "old.csv"
    pd.DataFrame(rows)[header].to_csv(path, index=False)
    frame = results.read(path)
    last = len(OLDER_PARAMS) - 1
    assert list(frame.columns) == results.COLUMNS and frame["value"].tolist() == [*range(last + 1)]
    got = list(zip(*(frame[c] for c in (*results.SPLIT_COLUMNS, "param")), strict=True))
    want = [split for _, _, split in OLDER_PARAMS]
    assert pd.DataFrame(got).equals(pd.DataFrame(want))  # NaN where NaN, inf where full
    # A re-run writes the same key: it replaces the older row instead of doubling it.
    for i in (4, 3):
        e, _, (p, dim, severity, tap, param) = OLDER_PARAMS[i]
        fields = dict(p=p, dim=dim, severity=severity, tap=tap, param=param)
        rerun = dict(MODEL, experiment=e, **fields, metric="m", value=99.0 + i)
        merged = results.append(path, [rerun])
    assert len(merged) == len(OLDER_PARAMS) and sorted(merged["value"])[-3:] == [last, 102, 103]
    assert 3.0 not in merged["value"].tolist() and 4.0 not in merged["value"].tolist()
    assert path.read_text().splitlines()[0] == ",".join(results.COLUMNS)


def test_a_file_with_tap_but_no_severity_reads_only_severity_out_of_param(tmp_path: Path):
    rows = [
        results.make_row(**MODEL, **fields, metric="m", value=1.0)
        for fields in (
            dict(experiment="corruption", param="seed=0;severity=3"),
            dict(experiment="classwise", tap="features", param="class=3"),
            dict(experiment="attack", p=0.4, param="draws=2;seed=0"),
        )
    ]
    path = tmp_path / "old.csv"
    header = [c for c in results.COLUMNS if c != "severity"]
    pd.DataFrame(rows)[header].to_csv(path, index=False)
    frame = results.read(path)
    assert frame["param"].tolist() == ["seed=0", "class=3", "draws=2;seed=0"]
    assert frame["tap"].tolist() == ["", "features", ""]
    assert frame["severity"].fillna(0).tolist() == [3.0, 0, 0]
    assert frame["p"].fillna(0).tolist() == [0, 0, 0.4]


def test_append_is_byte_stable(results_csv: Path):
    first = results_csv.read_bytes()
    results.append(results_csv, _rows())
    assert results_csv.read_bytes() == first


def test_table1_means_over_seeds(results_csv: Path, tmp_path: Path):
    table = tables.render(results.read(results_csv), tables.TABLES.get("table1"), tmp_path / "out")
    numbers = table.numbers
    nlr7 = numbers[(numbers["method"] == "nlr") & (numbers["steps"] == 7)].iloc[0]
    assert nlr7["mean"] == pytest.approx(42.0) and nlr7["count"] == 2
    assert nlr7["std"] == pytest.approx(pd.Series([40.0, 44.0]).std())
    text = (tmp_path / "out" / "table1.md").read_text()
    assert "42.0 ± 2.8" in text and "60.0" in text
    assert (tmp_path / "out" / "table1.csv").exists()
    # digits is not the paper's setting: the paper's CIFAR number sits beside ours, marked
    assert "| 42.0 ± 2.8 " in text and "| 43.1*" in text
    assert "paper: cifar10 resnet50" in text


def test_noise_table_spreads_the_p_column(results_csv: Path, tmp_path: Path):
    table = tables.render(results.read(results_csv), tables.TABLES.get("table4"), tmp_path)
    assert set(table.numbers["p"]) == {0.4}
    assert "p=0.4" in table.markdown


def test_paper_rows_are_the_method_families_in_paper_order():
    assert tables.LR_METHODS == ("nlr", "1lr", "2lr", "bottle-lr")
    assert tables.ALL_METHODS == ("nlr", "snip", "srn", "sn", "1lr", "2lr", "bottle-lr")


def test_each_report_slot_names_one_attack():
    slots = [slot for name in attacks.ATTACKS for slot in attacks.ATTACKS[name].fills]
    assert len(slots) == len(set(slots))
    assert leaderboard.Threat().attack == attacks.filling("robust_acc") == "ifsgm"
    assert attacks.filling("noise_acc") == "noise"


def test_table_without_data_is_skipped_with_reason(results_csv: Path, tmp_path: Path):
    table = tables.render(results.read(results_csv), tables.TABLES.get("table5b"), tmp_path)
    assert table.numbers is None and "no results" in table.skipped_reason
    assert not (tmp_path / "table5b.md").exists()


def test_paper_number_lands_beside_the_same_setting(tmp_path: Path):
    row = {
        "dataset": "cifar10",
        "arch": "resnet50",
        "width": 1.0,
        "method": "nlr",
        "seed": 0,
        "checkpoint": "c",
        "experiment": "attack",
        "attack": "ifsgm",
        "box": "white",
        "eps": 8 / 255,
        "steps": 7,
        "metric": "acc",
        "value": 41.0,
        "n": 10000,
    }
    path = tmp_path / "r.csv"
    results.append(path, [row])
    table = tables.render(results.read(path), tables.TABLES.get("table2"), tmp_path)
    assert table.numbers["paper"].tolist() == [43.1]
    assert "paper ε=8/255 7 steps" in table.markdown


def test_leaderboard_ranks_and_writes_model_info(results_csv: Path, tmp_path: Path):
    threat = leaderboard.Threat(eps=8 / 255, steps=20)
    board = leaderboard.build(results.read(results_csv), threat)
    assert board["method"].tolist() == ["1lr", "nlr"]
    assert board.loc[board["method"] == "nlr", "robust_acc"].item() == pytest.approx(37.0)
    files = leaderboard.write(board, threat, tmp_path / "lb.md")
    info = pd.read_json(files[1], typ="series")
    assert info["threat_model"] == "Linf" and info["eps"] == "8/255" and info["reported"] == 55.0


def test_leaderboard_keeps_models_trained_on_different_devices_apart(
    results_csv: Path, tmp_path: Path
):
    frame = results.read(results_csv)
    nlr = frame[frame["method"] == "nlr"]
    both = pd.concat([nlr.assign(device="cpu"), nlr.assign(device="cuda", value=nlr["value"] - 1)])
    threat = leaderboard.Threat(eps=8 / 255, steps=20)
    board = leaderboard.build(both, threat)
    assert board["device"].tolist() == ["cpu", "cuda"] and board["seeds"].tolist() == [2, 2]
    files = leaderboard.write(board, threat, tmp_path / "lb.md")
    names = sorted(p.name for p in files[1:])
    assert names == ["digits__resnet18-w0.25__nlr.json", "digits__resnet18-w0.25__nlr@cuda.json"]


def test_gate_passes_on_itself_and_fails_on_a_planted_regression(
    results_csv: Path, tmp_path: Path, capsys
):
    assert main(["regress", "--results", str(results_csv), "--baseline", str(results_csv)]) == 0
    frame = results.read(results_csv)
    moved = frame.assign(checkpoint=frame["checkpoint"].str.replace("/x/", "/elsewhere/"))
    regressed = moved.copy()
    mask = (
        (regressed["method"] == "1lr") & (regressed["metric"] == "acc") & (regressed["steps"] == 7)
    )
    regressed.loc[mask, "value"] -= 2.5
    worse = tmp_path / "worse.csv"
    regressed.to_csv(worse, index=False)
    capsys.readouterr()
    assert main(["regress", "--results", str(worse), "--baseline", str(results_csv)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "FAIL" in out
    # a drop inside the tolerance passes; a rho drop beyond 10% fails; a missing row fails
    assert (
        regress.compare(moved.assign(value=moved["value"] - 1.5), frame).passed is False
    )  # rho fell >10%
    accs_only = moved.assign(
        value=moved["value"].where(moved["metric"] != "acc", moved["value"] - 1.5)
    )
    assert regress.compare(accs_only, frame).passed
    assert not regress.compare(moved.iloc[1:], frame).passed
    rho_rows = moved["metric"] == "rho"
    assert not regress.compare(
        moved.assign(value=moved["value"].where(~rho_rows, moved["value"] * 0.8)), frame
    ).passed


def test_gate_counts_not_reached_twice_as_unchanged(results_csv: Path):
    frame = results.read(results_csv)
    rho = frame["metric"] == "rho"
    unreached = frame.assign(value=frame["value"].where(~rho, float("nan")))
    report = regress.compare(unreached, unreached)
    assert report.passed and (report.table["status"] == "ok").all()


def test_gate_refuses_to_compare_models_trained_on_different_devices(
    results_csv: Path, tmp_path: Path, capsys
):
    frame = results.read(results_csv)
    on_cpu, on_cuda = frame.assign(device="cpu"), frame.assign(device="cuda")
    assert regress.compare(on_cpu, on_cpu).passed
    with pytest.raises(regress.DeviceMismatch, match="baseline cpu vs new cuda"):
        regress.compare(on_cuda, on_cpu)
    cuda_csv = tmp_path / "cuda.csv"
    on_cuda.to_csv(cuda_csv, index=False)
    on_cpu.to_csv(results_csv, index=False)
    assert main(["regress", "--results", str(cuda_csv), "--baseline", str(results_csv)]) == 2
    assert "different devices" in capsys.readouterr().err
    # A file written before the column existed reads as "device unknown" and is still compared.
    old = tmp_path / "old.csv"
    on_cpu.drop(columns="device").to_csv(old, index=False)
    assert (results.read(old)["device"] == "").all()
    assert regress.compare(on_cuda, results.read(old)).passed


def test_rows_record_the_device_the_model_was_trained_on():
    meta = {
        "config": {
            "dataset": "digits",
            "arch": "resnet18",
            "width": 0.25,
            "method": "nlr",
            "seed": 0,
        },
        "device": "cuda",
    }
    assert results.model_fields(meta, "/ck")["device"] == "cuda"
    row = results.make_row(**results.model_fields(meta, "/ck"), metric="clean_acc", value=97.0)
    assert row["device"] == "cuda"


def _hybrid_row(arch: str, method: str, seed: int, tap: str, d: float, value: float) -> dict:
    return {
        "dataset": "cifar10",
        "arch": arch,
        "width": 1.0,
        "method": method,
        "seed": seed,
        "checkpoint": f"/x/{arch}/{method}/seed{seed}",
        "experiment": "hybrid",
        "tap": tap,
        "dim": d,
        "metric": "hybrid_acc",
        "value": value,
        "n": 10000,
    }


def test_table8_is_the_vgg19_hybrid_before_the_third_last_fc(tmp_path: Path):
    rows = [
        _hybrid_row("vgg19", method, seed, "fc1_in", d, base + seed + i)
        for method, base in (("nlr", 80.0), ("2lr", 85.0))
        for seed in (0, 1)
        for i, d in enumerate((math.inf, 20, 10))
    ]
    rows += [_hybrid_row("vgg19", "nlr", 0, "fc3_in", math.inf, 50.0)]  # Table 5a's tap
    rows += [_hybrid_row("resnet18", "nlr", 0, "pre_block4", 20, 70.0)]  # Table 5b's
    path = tmp_path / "r.csv"
    frame = results.append(path, rows)
    numbers = tables.render(frame, tables.TABLES.get("table8"), tmp_path).numbers
    cells = {(r.method, r.dim): (r.mean, r.count, r.paper) for r in numbers.itertuples()}
    assert cells == {
        ("nlr", math.inf): (80.5, 2, 89.7),
        ("nlr", 20): (81.5, 2, 89.78),
        ("nlr", 10): (82.5, 2, 89.65),
        ("2lr", math.inf): (85.5, 2, 89.8),
        ("2lr", 20): (86.5, 2, 89.85),
        ("2lr", 10): (87.5, 2, 89.79),
    }
    markdown = (tmp_path / "table8.md").read_text()
    assert "89.85" in markdown and "| d=full " in markdown and "| d=20 " in markdown
    deep = tables.render(frame, tables.TABLES.get("table5b"), tmp_path).numbers
    assert deep[["arch", "dim", "mean"]].values.tolist() == [["resnet18", 20, 70.0]]


def test_fig3_stacks_every_models_deepfool_images(tmp_path: Path, caplog):
    import numpy as np

    from robustbench_lr import plots
    from robustbench_lr.analysis.examples import (
        EXPERIMENT,
        Examples,
        examples_figure,
        examples_path,
        report_blocks,
        save_examples,
    )

    figures, k = tmp_path / "figures", 5
    rng = np.random.default_rng(0)
    rows = []
    for method, seed, with_images in [
        ("nlr", 0, True),
        ("1lr", 0, True),
        ("2lr", 0, True),
        ("nlr", 1, True),  # a second seed: Fig. 3 shows one per model
        ("sn", 0, False),  # results copied without their figures folder
    ]:
        fields = {**MODEL, "method": method, "seed": seed}
        x = rng.random((k, 1, 8, 8), dtype=np.float32)
        if with_images:
            labels = np.arange(k)
            save_examples(
                examples_path(figures, fields),
                Examples(method, x, x * 0.5, labels, labels + 1, np.full(k, 0.1 * (seed + 1))),
            )
        row = {**fields, "checkpoint": f"/x/{method}/{seed}", "experiment": EXPERIMENT}
        row.update(attack="deepfool", box="white", metric="rho", value=0.1, n=1)
        rows += [{**row, "param": f"image={i}"} for i in range(k)]
    frame = results.append(tmp_path / "results.csv", rows)
    blocks = report_blocks(frame, figures)
    assert [b.label for b in blocks] == [
        "digits resnet18 nlr",
        "digits resnet18 1lr",
        "digits resnet18 2lr",
    ]
    assert all(np.allclose(b.rho, 0.1) for b in blocks)  # seed 0's images
    assert "sn" in caplog.text  # the model without images is named, not silently dropped
    fig = examples_figure(blocks)
    assert len(fig.axes) == 2 * len(blocks) * k  # originals above adversarials, per model
    png = plots.FIGURES.get("fig3_deepfool_examples")(frame, figures)
    assert png == figures / "fig3_deepfool_examples.png" and png.stat().st_size > 1000
    assert plots.FIGURES.get("fig3_deepfool_examples")(frame.iloc[:0], figures) is None


def _rank_rows(method: str, seed: int, slope: float) -> list[dict]:
    """A model's variance-ratio curve at `pre_fc` (k = 1..8) as the rank analysis writes it."""
    ck = f"/x/{method}/seed{seed}"
    base = {**MODEL, "method": method, "seed": seed, "checkpoint": ck, "experiment": "rank"}
    base |= {"tap": "pre_fc", "backend": "exact", "n": 100, "numerics": "portable-0123456789"}
    return [
        {**base, "metric": "variance_ratio", "steps": k, "value": min(1.0, slope * k)}
        for k in range(1, 9)
    ]


def test_the_reports_rank_figure_is_drawn_from_its_results_file_alone(tmp_path: Path):
    """A bench's rank job draws its figure from whatever the folder's results file held while
    it ran (here a model the merged rows do not hold); the report redraws it from the merged
    rows, so the figure is the same bytes as in a folder that never held anything else."""
    rows = _rank_rows("nlr", 0, 0.2) + _rank_rows("1lr", 0, 0.4)
    clean, stale = tmp_path / "clean", tmp_path / "stale"
    for folder in (clean, stale):
        results.append(folder / "results.csv", rows)
    results.append(stale / "results.csv", _rank_rows("srn", 0, 0.1))  # not in the merged rows
    cfg = {**MODEL, "method": "nlr", "seed": 0}
    png = plot_curves(stale / "results.csv", _rank_rows("nlr", 0, 0.2), cfg, "pre_fc")
    drawn_by_job = png.read_bytes()
    results.write(stale / "results.csv", pd.DataFrame([results.make_row(**r) for r in rows]))

    made = {p.name: p for p in render_report(None, clean) + render_report(None, stale)}
    fresh = (clean / "figures" / png.name).read_bytes()
    assert png.name in made and png.read_bytes() == fresh != drawn_by_job
