"""`make bench`: train what is missing, run every experiment not yet done, render everything.

The bench is a list of `Job`s grouped into stages (train, attacks, minrho, audit, analyses).
Each job's rows go to its own shard `<out>/jobs/<key digest>.csv`, and the ledger
(`ledger.py`, `<out>/bench_ledger.jsonl`) records, per job, what it read and wrote. A job counts
as done only while all of that still holds; anything else is re-run and the summary says why.
`results.csv` is then merged from the shards of the profile's done jobs, in plan order, by this
one writer. A kill at any moment loses at most the jobs that were running: shards are written to
temporary names and renamed, ledger lines are appended and fsynced. Training resumes inside a
model from its last epoch (see `train.py`).
"""

from __future__ import annotations

# The stages register in this order: the bench's own, then the threat tracks'.
from robustbench_lr.bench import stages, tracks  # noqa: F401  (registers the stages)
from robustbench_lr.bench.context import (
    BENCH_LOCK,
    RESULTS_FILE,
    STAGES,
    BenchContext,
    Job,
    TargetSpec,
)
from robustbench_lr.bench.run import (
    BenchJobsFailed,
    BenchSummary,
    dependencies,
    plan,
    run_bench,
)

__all__ = [
    "BENCH_LOCK",
    "RESULTS_FILE",
    "STAGES",
    "BenchContext",
    "BenchJobsFailed",
    "BenchSummary",
    "Job",
    "TargetSpec",
    "dependencies",
    "plan",
    "run_bench",
]
