"""The smoke profile end to end: bench, resume without redoing work, and the regression gate.

This is what CI runs on every submission: if a change lowers a robustness number of the smoke
models beyond the gate's tolerance, or drops a row, this test fails.
"""

from __future__ import annotations

from pathlib import Path

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
