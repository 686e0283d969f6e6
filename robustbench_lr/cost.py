"""What each model cost: training wall time, peak memory and device, and the bench's attack and
audit seconds (FastAT Benchmark's cost columns, reported beside the accuracies).

- Training (`TrainingMeter`): wall seconds over every epoch run (a resume adds to `cost.json`'s)
  and peak memory: CUDA's `max_memory_allocated`, or on the CPU the process' peak resident set,
  an upper bound when one process trains several models. Kept in `cost.json`, not meta.json,
  whose bytes are the same on every run.
- Evaluation: the ledger's seconds per done job, summed per model (`ATTACK_STAGES`).

Rows (`experiment = "cost"`; `attack` = `train` / `attacks` / `audit`; metrics `seconds`,
`peak_memory_mb`) go to `<report>/cost.csv`, not `results.csv`: timings change on every run,
and the regression gate compares every row of `results.csv` bit for bit.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robustbench_lr import results

EXPERIMENT = "cost"
COST_FILE = "cost.csv"
CHECKPOINT_FILE = "cost.json"  # beside a checkpoint's files, vouched for by nothing
# Bench stages whose seconds count as time spent attacking a model.
ATTACK_STAGES = {"attacks": "attacks", "minrho": "attacks", "l2": "attacks", "audit": "audit"}
# ru_maxrss is in KiB on Linux and in bytes on macOS.
_RSS_BYTES = 1 if sys.platform == "darwin" else 1024


class TrainingMeter:
    """Wall time and peak memory of one training run on `device`."""

    def __init__(self, device: torch.device, seconds_before: float = 0.0) -> None:
        self.device = device
        self.seconds_before = float(seconds_before)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.start = time.perf_counter()

    def record(self) -> dict[str, Any]:
        """`cost.json`: seconds so far, peak memory (MiB), how it was measured, device."""
        if self.device.type == "cuda":
            peak, how = torch.cuda.max_memory_allocated(self.device), "cuda max_memory_allocated"
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_BYTES
            how = "process peak RSS"
        return {
            "train_seconds": round(self.seconds_before + time.perf_counter() - self.start, 3),
            "peak_memory_mb": round(peak / 2**20, 1),
            "memory": how,
            "device": self.device.type,
        }


def save_training(folder: str | Path, record: dict[str, Any]) -> None:
    """Write a checkpoint's `cost.json` after its commit point: a plain write, as it is a
    measurement, not part of the model, and a torn file reads as no record (`training`)."""
    (Path(folder) / CHECKPOINT_FILE).write_text(json.dumps(record, sort_keys=True) + "\n")


def training(folder: str | Path) -> dict[str, Any]:
    """A checkpoint's training cost ({} when none was recorded or the file is unreadable)."""
    try:
        record = json.loads((Path(folder) / CHECKPOINT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def training_rows(meta: dict[str, Any], folder: str | Path) -> list[dict[str, Any]]:
    """A trained model's cost rows from its `cost.json` (none when it has no record)."""
    cost = training(folder)
    if not cost:
        return []
    base = {**results.model_fields(meta, folder), "experiment": EXPERIMENT, "attack": "train"}
    return [
        {**base, "metric": "seconds", "value": cost["train_seconds"]},
        {**base, "metric": "peak_memory_mb", "value": cost["peak_memory_mb"]},
    ]


MODEL_COLUMNS = ("dataset", "arch", "width", "method", "seed", "checkpoint", "device", "numerics")


def job_rows(jobs: Iterable[tuple[str, Path, float]]) -> list[dict[str, Any]]:
    """Attack and audit seconds per model from done jobs `(stage, shard, seconds)`.

    A job's model is the one its shard's rows name (a black-box job's rows name the attacked
    model, which is whose robustness the seconds bought).
    """
    totals: dict[tuple, float] = {}
    for stage, shard, seconds in jobs:
        if stage not in ATTACK_STAGES:
            continue
        rows = results.read(shard)
        if rows.empty:
            continue
        model = tuple(rows.iloc[0][c] for c in MODEL_COLUMNS)
        key = (*model, ATTACK_STAGES[stage])
        totals[key] = totals.get(key, 0.0) + float(seconds)
    return [
        {
            **dict(zip(MODEL_COLUMNS, key[:-1], strict=True)),
            "experiment": EXPERIMENT,
            "attack": key[-1],
            "metric": "seconds",
            "value": round(value, 3),
        }
        for key, value in totals.items()
    ]


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    """`cost.csv` in the results format (rewritten whole: it describes the last run)."""
    frame = pd.DataFrame([results.make_row(**r) for r in rows], columns=results.COLUMNS)
    results.write(path, frame)


def with_cost(frame: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """`frame` plus the report folder's cost rows, for the leaderboard."""
    path = Path(out_dir) / COST_FILE
    if not path.exists():
        return frame
    return pd.concat([frame, results.read(path)], ignore_index=True)
