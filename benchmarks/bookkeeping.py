"""The bench's own bookkeeping: what one job costs the driver, as results grow.

Each job's rows go to its own shard and the ledger records its digest, so committing a job
does not read or rewrite `results.csv`; the merge into `results.csv` runs once per bench.
Measured here against the results size R already on disk (1,000 to 1,000,000 rows):
- commit: writing one job's shard (100 rows) and its ledger entry, with R rows in other shards;
- the old way: `results.append` of the same 100 rows into a results file of R rows (what every
  command did per setting before, 0.5 s at the `cpu` profile's 16,000 rows);
- merge: all shards into `results.csv`, once per bench run.
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

import pandas as pd
from _report import machine, write_section

from robustbench_lr import results
from robustbench_lr.bench import Job
from robustbench_lr.bench.run import _merge
from robustbench_lr.ledger import Ledger

ROWS_PER_JOB = 100
SIZES = (1_000, 10_000, 100_000, 1_000_000)


def _rows(job: int) -> list[dict]:
    return [
        results.make_row(
            dataset="digits",
            arch="resnet18",
            method="nlr",
            seed=job,
            experiment="attack",
            attack="ifsgm",
            eps=k / 255,
            steps=7,
            metric="acc",
            value=50.0 + k / 7,
            n=500,
        )
        for k in range(ROWS_PER_JOB)
    ]


def _write_rows(path: Path, rows: list[dict]) -> None:
    """One job's shard, as a bench worker writes it (`bench.run._execute`)."""
    results.write(path, pd.DataFrame(rows, columns=results.COLUMNS))


def _job(index: int) -> Job:
    return Job("attacks", f"attack:{index}", "{}", (), partial(lambda: None))


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(size: int, root: Path) -> dict[str, float]:
    ledger = Ledger(root)
    jobs = size // ROWS_PER_JOB
    for index in range(jobs):  # R rows already committed, as after most of a bench
        job = _job(index)
        _write_rows(ledger.shard(job), _rows(index))
        ledger.jobs[job.key] = {
            "stage": "attacks",
            "spec": "{}",
            "code": "",
            "inputs": {},
            "shard": "",
            "seconds": 0.0,
        }
    ledger.compact()  # one line per job already committed
    rows, fresh = _rows(jobs), iter(range(jobs, jobs + 10))

    def commit() -> None:  # a new job each time, as in a bench
        new = _job(next(fresh))
        _write_rows(ledger.shard(new), rows)
        ledger.commit(new, {}, 0.0)

    shards = [ledger.shard(_job(i)) for i in range(jobs)]
    _merge(root / "results.csv", shards)
    old_way = partial(results.append, root / "results.csv", rows)
    return {
        "commit": _best(commit),
        "append": _best(old_way, repeats=1 if size >= 100_000 else 3),
        "merge": _best(partial(_merge, root / "merged.csv", shards), repeats=1),
    }


def main() -> None:
    lines = [
        "## Bench bookkeeping (benchmarks/bookkeeping.py)",
        "",
        f"Machine: {machine()}. One job = {ROWS_PER_JOB} rows; best of 3 (1 for the slow columns).",
        "",
        "| rows already in the results | commit one job (shard + ledger) | old way: results.append | merge all shards (once per run) |",
        "|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            got = measure(size, Path(tmp))
        print(size, got, flush=True)
        lines.append(
            f"| {size:,} | {got['commit'] * 1e3:.1f} ms | {got['append'] * 1e3:.0f} ms | {got['merge']:.2f} s |"
        )
    lines += [
        "",
        "A job's commit writes its own shard and appends one fsynced line to the ledger "
        "(`robustbench_lr/ledger.py`); it never reads or rewrites the results or the rest of "
        "the ledger, so its cost does not grow with the rows or jobs already done (here jobs = "
        "rows / 100). The old per-setting append grew with the results; the merge, linear in "
        "the rows, runs once per bench.",
    ]
    write_section("bookkeeping", "\n".join(lines))


if __name__ == "__main__":
    main()
