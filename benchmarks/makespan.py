"""What more workers buy: the bench's job graph list-scheduled on 1-16 workers.

Costs are measured ones, never guesses:
- `cpu` profile: every job's seconds from the committed ledger (`reports/cpu/bench_ledger.jsonl`,
  one serial run on this machine's 2 cores), all stages;
- `paper` / `paper-fast`: training only, each model's epochs x (its dataset's training images /
  the img/s that `benchmarks/training.py` measured on CUDA for its arch and method, plus the
  measured per-epoch overhead), read from `reports/perf.md`. Attacks, audits and analyses have
  no measured GPU cost yet, so they are left out and the table says so.
Each worker is one GPU, or for `cpu` one more machine like this one: its job costs were
measured at 2 threads per job, so 2 workers sharing these 2 cores would each run slower (the
Ray-vs-serial wall time on this machine is not measured yet). The schedule is
`scheduling.simulate` (beside this script), the first-ready-first rule the executors follow, under the graph's
dependencies.
"""

from __future__ import annotations

import re
from pathlib import Path

from _report import write_section
from scheduling import simulate

from robustbench_lr.bench import BenchContext, dependencies, plan
from robustbench_lr.data import LoadOptions
from robustbench_lr.executors import Task
from robustbench_lr.ledger import Ledger
from robustbench_lr.profiles import load_profile

ROOT = Path(__file__).resolve().parent.parent
WORKERS = (1, 2, 4, 8, 16)
TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "cifar100-coarse": 50_000, "svhn": 73_257}


def _graph(profile_name: str, out: Path) -> tuple[BenchContext, dict, dict[str, tuple[str, ...]]]:
    ctx = BenchContext(load_profile(profile_name), out, Path("checkpoints"), "cpu", LoadOptions())
    planned = plan(ctx)
    return ctx, planned, dependencies(planned)


def _table(
    title: str, tasks: list[Task], seconds: dict[str, float], unit: float, name: str
) -> list[str]:
    lines = [
        f"**{title}**",
        "",
        f"| workers | makespan ({name}) | speed-up | critical path ({name}) |",
        "|---:|---:|---:|---:|",
    ]
    serial = simulate(tasks, seconds, 1).makespan
    for workers in WORKERS:
        schedule = simulate(tasks, seconds, workers)
        lines.append(
            f"| {workers} | {schedule.makespan / unit:.2f} | {serial / schedule.makespan:.2f}x | "
            f"{schedule.critical_seconds / unit:.2f} |"
        )
    longest = simulate(tasks, seconds, WORKERS[-1]).critical_path
    lines += ["", f"Critical path: {' -> '.join(longest)}", ""]
    return lines


def cpu_profile() -> list[str]:
    ledger = Ledger(ROOT / "reports" / "cpu")
    if ledger.note or not ledger.jobs:
        return ["`reports/cpu` has no current ledger: re-run `make bench` first.", ""]
    _, planned, needs = _graph("cpu", ROOT / "reports" / "cpu")
    jobs = [job for stage in planned.values() for job in stage if job.key in ledger.jobs]
    keys = {job.key for job in jobs}
    tasks = [Task(j.key, print, tuple(d for d in needs[j.key] if d in keys)) for j in jobs]
    seconds = {j.key: ledger.jobs[j.key]["seconds"] for j in jobs}
    title = f"`cpu` profile, all stages ({len(tasks)} jobs, {sum(seconds.values()) / 60:.1f} job-minutes measured serially)"
    return _table(title, tasks, seconds, 60.0, "min")


def _training_rates() -> dict[tuple[str, str], tuple[float, float]]:
    text = (ROOT / "reports" / "perf.md").read_text()
    section = text.split("<!-- training-cuda:start -->", 1)[1].split(
        "<!-- training-cuda:end -->", 1
    )[0]
    rates = {}
    for _data, arch, method, img_s, overhead in re.findall(
        r"^\| (\S+) \| (\S+) \| (\S+) \| (\d+) \| \*\*[\d.]+×\*\* \| ([\d.]+) \|$", section, re.M
    ):
        rates.setdefault((arch, method), (float(img_s), float(overhead)))
    return rates


def paper_training(profile_name: str) -> list[str]:
    rates = _training_rates()
    ctx, planned, _ = _graph(profile_name, ROOT / "reports" / profile_name)
    cfg_of = {ctx.folder(cfg): cfg for cfg in ctx.profile.models}
    tasks, seconds, unmeasured = [], {}, []
    for job in planned["train"]:
        cfg = cfg_of[job.inputs[0]]
        if (cfg.arch, cfg.method) not in rates:
            unmeasured.append(f"{cfg.arch} {cfg.method}")
            continue
        img_s, overhead = rates[(cfg.arch, cfg.method)]
        seconds[job.key] = cfg.epochs * (TRAIN_IMAGES[cfg.dataset] / img_s + overhead)
        tasks.append(Task(job.key, print))
    title = f"`{profile_name}`, training only ({len(tasks)} models, measured H100 rates)"
    lines = _table(title, tasks, seconds, 3600.0, "h")
    if unmeasured:
        lines += [f"Not modelled (no measured rate): {', '.join(sorted(set(unmeasured)))}.", ""]
    return lines


def main() -> None:
    lines = [
        "## Makespan on more workers (benchmarks/makespan.py)",
        "",
        __doc__.split("\n\n", 1)[1].strip(),
        "",
    ]
    lines += cpu_profile()
    for name in ("paper-fast", "paper"):
        lines += paper_training(name)
    print("\n".join(lines))
    write_section("makespan", "\n".join(lines))


if __name__ == "__main__":
    main()
