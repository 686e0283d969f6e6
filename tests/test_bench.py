"""The smoke profile end to end: bench, resume without redoing work, and the regression gate.

This is what CI runs on every submission: if a change lowers a robustness number of the smoke
models beyond the gate's tolerance, or drops a row, this test fails.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robustbench_lr import regress, results, spread
from robustbench_lr.bench import run_bench
from robustbench_lr.profiles import load_profile
from tests.conftest import TINY_PROFILE

BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baseline" / "smoke.csv"


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Results without where they were made: checkpoint paths out, sources as model identity."""
    frame = frame.drop(columns=["checkpoint"])
    frame["source"] = frame["source"].map(lambda s: "/".join(Path(s).parts[-4:]) if s else s)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_smoke_bench_on_a_fresh_folder_reproduces_the_baseline_exactly(tmp_path: Path):
    profile = load_profile("smoke")
    out, ckpts = tmp_path / "smoke", tmp_path / "checkpoints"
    # An "interrupted" bench: only the training stage ran.
    first = run_bench(profile, out, ckpts, device="cpu", progress=False, stages=["train"])
    assert first.trained == len(profile.models)
    second = run_bench(profile, out, ckpts, device="cpu", progress=False)
    assert (
        second.trained == 0
        and second.ran["train"] == 0
        and second.skipped["train"] == len(profile.models)
    )
    assert second.ran["attacks"] > 0 and set(second.reasons["attacks"]) == {"not run yet"}
    for name in ("table1", "table2", "table3", "table4", "table5a", "table7"):
        assert (out / f"{name}.md").exists() and (out / f"{name}.csv").exists(), name
    assert (out / "README.md").read_text().count("### table") >= 6
    assert (out / "figures" / "fig2_variance_ratio.png").stat().st_size > 1000
    third = run_bench(profile, out, ckpts, device="cpu", progress=False)
    assert sum(third.ran.values()) == 0 and third.trained == 0

    # On the baseline's numeric path (the portable setting, or the same fingerprint) every
    # number equals the committed baseline's, bit for bit; elsewhere the gate allows the
    # baseline's measured spread and nothing more.
    new, base = results.read(out / "results.csv"), results.read(BASELINE)
    table = spread.read(spread.path_for(BASELINE))
    report = regress.compare(new, base, spread_table=table)
    assert report.passed, regress.render(report)
    if set(new["numerics"]) == set(base["numerics"]):
        assert set(report.table["gate"]) == {"exact"}
        pd.testing.assert_frame_equal(_comparable(new), _comparable(base), check_exact=True)
    else:
        # Rows no tolerance can judge (counts, parameters: `regress.judged_kind` "info") keep the
        # exact label and never fail; every number the gate can judge gets a measured rule.
        judged = report.table["metric"].map(regress.judged_kind) != "info"
        assert set(report.table.loc[judged, "gate"]) <= {"tolerance", "interval"}


@pytest.fixture
def tiny(tiny_base: Path, tmp_path: Path, monkeypatch):
    """A copy of the finished tiny bench as the cwd, and a function re-running it there."""
    work = tmp_path / "work"
    shutil.copytree(tiny_base, work)
    monkeypatch.chdir(work)

    def bench(text: str = TINY_PROFILE, **kwargs):
        Path("tiny.toml").write_text(text)
        return run_bench(
            load_profile("tiny.toml"), Path("out"), Path("ck"), "cpu", progress=False, **kwargs
        )

    return bench


def _reasons(summary) -> dict[str, dict[str, int]]:
    return {stage: dict(counts) for stage, counts in summary.reasons.items() if counts}


def test_deleted_checkpoints_are_retrained_and_identical_ones_keep_their_rows(tiny, tmp_path: Path):
    before = (Path("out") / "results.csv").read_bytes()
    shutil.rmtree(Path("ck"))
    again = tiny()
    # Retraining writes the same bytes (CPU determinism), so the attacks' inputs are unchanged.
    assert _reasons(again) == {"train": {"checkpoint missing or changed": 1}}
    assert (Path("out") / "results.csv").read_bytes() == before


def test_a_changed_checkpoint_re_runs_the_jobs_that_read_it(tiny, tmp_path: Path):
    meta_path = next((Path("ck")).rglob("meta.json"))
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "note": "edited by hand"}))
    assert _reasons(tiny()) == {
        "train": {"checkpoint missing or changed": 1},
        "attacks": {"checkpoint missing or changed": 2},
    }


def test_a_changed_setting_re_runs_only_its_jobs(tiny):
    summary = tiny(TINY_PROFILE.replace("noise_p = [0.5]", "noise_p = [0.7]"))
    assert _reasons(summary) == {"attacks": {"settings changed": 1}}


def test_other_codes_rows_are_re_run_unless_reuse_is_asked_for(tiny, tmp_path: Path, monkeypatch):
    from robustbench_lr import ledger
    from robustbench_lr.bench import run as bench_run

    for module in (bench_run, ledger):  # the ledger records it, the bench lists reused rows by it
        monkeypatch.setattr(module, "code_identity", lambda: "another revision")
    reused = tiny(reuse_results=True)
    assert sum(reused.ran.values()) == 0 and len(reused.reused) == 3
    assert "3 job(s) reuse rows made by other code" in (Path("out") / "README.md").read_text()
    rerun = tiny()
    assert _reasons(rerun) == {"train": {"code changed": 1}, "attacks": {"code changed": 2}}
    assert rerun.reused == []


def test_a_ledger_from_an_older_version_trusts_nothing(tiny, tmp_path: Path):
    # What the committed reports/cpu held: every job "done", no checkpoints on a fresh clone.
    (Path("out") / "bench_ledger.jsonl").unlink()
    (Path("out") / "bench_state.json").write_text('{"done": ["train:x"], "seconds": {}}')
    summary = tiny()
    assert not (Path("out") / "bench_state.json").exists()  # replaced by the current ledger
    assert sum(summary.ran.values()) == 3 and {
        reason for counts in summary.reasons.values() for reason in counts
    } == {"its ledger was written by an older version or is unreadable"}


def test_a_lost_shard_re_runs_its_job(tiny, tmp_path: Path):
    shards = sorted((Path("out") / "jobs").glob("*.csv"))
    assert len(shards) == 3
    shards[0].write_text(shards[0].read_text().replace("cpu", "cuda"))
    assert sum(tiny().ran.values()) == 1


def test_a_second_bench_on_a_busy_folder_exits_2_naming_the_holder(tiny, tmp_path: Path, capsys):
    from robustbench_lr import locks
    from robustbench_lr.bench import BENCH_LOCK
    from robustbench_lr.cli import main

    out = Path("out")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with locks.exclusive(out, BENCH_LOCK):
        status = main(["bench", "--profile", "tiny.toml", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert f"pid {os.getpid()}" in err and "since" in err
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if "lock" not in p.name}
    assert after == {p: t for p, t in before.items() if "lock" not in p.name}


def test_a_lock_left_by_a_killed_bench_is_taken_over(tiny, tmp_path: Path):
    import subprocess
    import sys

    from robustbench_lr.bench import BENCH_LOCK

    holder = (
        "import os, signal; from robustbench_lr import locks\n"
        f"with locks.exclusive('out', {BENCH_LOCK!r}):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert subprocess.run([sys.executable, "-c", holder]).returncode == -9
    assert (Path("out") / f"{BENCH_LOCK}.holder.json").exists()  # the dead run's note
    assert sum(tiny().ran.values()) == 0


# The N-LR models of another seed that the black-box examples are crafted on by default.
SECOND_NLR_SEEDS = """[[models]]
arch = "resnet18"
width = 0.25
methods = ["nlr"]
seeds = [1]
[[models]]
arch = "vgg19"
width = 0.25
methods = ["nlr"]
seeds = [1]
"""
PLANNED = f"""
name = "planned"
dataset = "digits"
[[models]]
arch = "resnet18"
width = 0.25
methods = ["nlr", "1lr", "sn"]
[[models]]
arch = "vgg19"
width = 0.25
methods = ["nlr", "1lr"]
{SECOND_NLR_SEEDS}[attacks]
minrho = ["deepfool"]
[attacks.minrho_only]
arch = ["resnet18"]
[analyses]
kinds = ["maxmargin", "rank"]
"""


def _planned_keys(tmp_path: Path, stage: str, text: str = PLANNED) -> list[str]:
    from robustbench_lr.bench import STAGES, BenchContext
    from robustbench_lr.data import LoadOptions

    path = tmp_path / "planned.toml"
    path.write_text(text)
    ctx = BenchContext(load_profile(str(path)), tmp_path, tmp_path / "ck", "cpu", LoadOptions())
    return [job.key for job in STAGES.get(stage)(ctx)]


def test_minrho_runs_only_on_the_selected_models(tmp_path: Path):
    keys = _planned_keys(tmp_path, "minrho")
    # 4 ResNet18 models white-box and black-box (crafted on the other N-LR seed).
    assert len(keys) == 8 and all("resnet18" in k for k in keys)


def test_an_unknown_selector_field_lists_the_valid_ones(tmp_path: Path):
    bad = PLANNED.replace('arch = ["resnet18"]\n[analyses]', 'archs = ["resnet18"]\n[analyses]')
    with pytest.raises(ValueError, match="unknown model field 'archs'.*valid choices: .*arch"):
        _planned_keys(tmp_path, "minrho", bad)


def test_nlr_models_get_table6_matched_runs_against_their_1lr_partner(tmp_path: Path):
    matched = [k for k in _planned_keys(tmp_path, "analyses") if ":matched:" in k]
    assert sorted(matched) == sorted(
        f"analysis:maxmargin:matched:{tmp_path / 'ck' / 'digits' / arch / 'nlr' / 'seed0'}"
        for arch in ("resnet18-w0.25", "vgg19-w0.25")
    )


def test_a_group_can_override_a_methods_options(tmp_path: Path):
    vgg = 'arch = "vgg19"\nwidth = 0.25\nmethods = ["nlr", "1lr"]\n'
    text = PLANNED.replace(vgg, vgg + '[models.method_options.1lr]\nlr_rank = "3"\n').replace(
        "[attacks]\n", '[method_options.1lr]\nlr_rank = "5"\n[attacks]\n', 1
    )
    path = tmp_path / "groups.toml"
    path.write_text(text)
    models = load_profile(str(path)).models
    ranks = {c.arch: c.method_options["lr_rank"] for c in models if c.method == "1lr"}
    assert ranks == {"resnet18": "5", "vgg19": "3"}


def _target_n(job) -> int | None:
    """The test-subset size in a job's spec (the canonical text of its settings)."""
    _function, arguments = json.loads(job.spec)["settings"]
    (target,) = [a for a in arguments if isinstance(a, dict) and "checkpoint" in a]
    return target["n"]


def test_attacking_analyses_use_the_attacks_subset(tmp_path: Path):
    from robustbench_lr.bench import STAGES, BenchContext
    from robustbench_lr.data import LoadOptions

    path = tmp_path / "planned.toml"
    path.write_text(PLANNED.replace('dataset = "digits"', 'dataset = "digits"\nn = 123', 1))
    ctx = BenchContext(load_profile(str(path)), tmp_path, tmp_path / "ck", "cpu", LoadOptions())
    subsets = {job.key.split(":")[1]: _target_n(job) for job in STAGES.get("analyses")(ctx)}
    assert subsets == {"maxmargin": 123, "rank": None}


def test_the_profile_names_the_black_box_source_and_the_matched_partner(tmp_path: Path):
    # Every model needs a source: VGG19 gets its own SN model.
    one_seed = PLANNED.replace(SECOND_NLR_SEEDS, "").replace(
        'arch = "vgg19"\nwidth = 0.25\nmethods = ["nlr", "1lr"]',
        'arch = "vgg19"\nwidth = 0.25\nmethods = ["nlr", "1lr", "sn"]',
    )
    text = one_seed.replace(
        "[attacks]\n", '[attacks]\nblackbox_source = "sn"\nblackbox_protocol = "same-seed"\n', 1
    ).replace("[analyses]\n", '[analyses]\nmatched_partner = "nlr"\n', 1)
    black = [k for k in _planned_keys(tmp_path, "minrho", text) if k.startswith("minrho:black")]
    # ResNet18 nlr and 1lr are attacked with SN's examples; SN itself gets no black-box run.
    assert sorted(k.split("/")[-2] for k in black) == ["1lr", "nlr"]
    matched = [k for k in _planned_keys(tmp_path, "analyses", text) if ":matched:" in k]
    # The source of each arch, judged by its N-LR partner.
    assert [k.split("/")[-2] for k in matched] == ["sn", "sn"]


def test_the_step_curve_job_gives_the_sweeps_curves_without_re_scoring_the_attack(tiny_base):
    from robustbench_lr.experiments.attack import StepCurve, Sweep, run_setting, run_step_curve
    from robustbench_lr.target import load_target

    folder = next((tiny_base / "ck").rglob("meta.json")).parent
    target = load_target(folder, n=40, device="cpu")
    sweep = Sweep("ifsgm", {"eps": [16 / 255], "steps": [3]}, per_step=True)
    (params,) = sweep.settings()
    with_attack = run_setting(target, sweep, params).rows
    alone = run_step_curve(target, StepCurve("ifsgm", 16 / 255, 3)).rows
    assert alone == [r for r in with_attack if r["experiment"] == "step-curve"]
    assert {r["experiment"] for r in alone} == {"step-curve"} and len(alone) == 2 * 4
