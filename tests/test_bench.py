"""The smoke profile end to end: bench, resume without redoing work, and the regression gate.

This is what CI runs on every submission: if a change lowers a robustness number of the smoke
models beyond the gate's tolerance, or drops a row, this test fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from robustbench_lr import regress, results
from robustbench_lr.bench import run_bench
from robustbench_lr.profiles import load_profile

BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baseline" / "smoke.csv"


def test_smoke_bench_resumes_and_passes_the_gate(tmp_path: Path):
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
    assert second.ran["attacks"] > 0
    for name in ("table1", "table2", "table3", "table4", "table5a", "table7"):
        assert (out / f"{name}.md").exists() and (out / f"{name}.csv").exists(), name
    assert (out / "README.md").read_text().count("### table") >= 6
    assert (out / "figures" / "fig2_variance_ratio.png").stat().st_size > 1000
    third = run_bench(profile, out, ckpts, device="cpu", progress=False)
    assert sum(third.ran.values()) == 0 and third.trained == 0

    report = regress.compare(results.read(out / "results.csv"), results.read(BASELINE))
    assert report.passed, regress.render(report)


PLANNED = """
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
[attacks]
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
    ctx = BenchContext(
        load_profile(str(path)), tmp_path, tmp_path / "ck", "cpu", LoadOptions(), False
    )
    return [job.key for job in STAGES.get(stage)(ctx)]


def test_minrho_runs_only_on_the_selected_models(tmp_path: Path):
    keys = _planned_keys(tmp_path, "minrho")
    # 3 ResNet18 models white-box, and the two that are not the N-LR source black-box.
    assert len(keys) == 5 and all("resnet18" in k for k in keys)


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
    text = PLANNED.replace(
        'methods = ["nlr", "1lr"]\n[attacks]',
        'methods = ["nlr", "1lr"]\n[models.method_options.1lr]\nlr_rank = "3"\n'
        '[method_options.1lr]\nlr_rank = "5"\n[attacks]',
    )
    path = tmp_path / "groups.toml"
    path.write_text(text)
    models = load_profile(str(path)).models
    ranks = {c.arch: c.method_options["lr_rank"] for c in models if c.method == "1lr"}
    assert ranks == {"resnet18": "5", "vgg19": "3"}


def test_attacking_analyses_use_the_attacks_subset(tmp_path: Path):
    from robustbench_lr.bench import STAGES, BenchContext
    from robustbench_lr.data import LoadOptions

    path = tmp_path / "planned.toml"
    path.write_text(PLANNED.replace('dataset = "digits"', 'dataset = "digits"\nn = 123', 1))
    ctx = BenchContext(
        load_profile(str(path)), tmp_path, tmp_path / "ck", "cpu", LoadOptions(), False
    )
    subsets = {job.key.split(":")[1]: job.run.args[3].n for job in STAGES.get("analyses")(ctx)}
    assert subsets == {"maxmargin": 123, "rank": None}
