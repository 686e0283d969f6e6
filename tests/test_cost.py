"""Cost columns: training wall time, peak memory and device in meta.json, the ledger's attack
and audit seconds per model, and their leaderboard columns and model_info fields."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_lr import checkpoints, cost, leaderboard, results


def test_training_records_its_cost_beside_the_checkpoint(nlr_digits: Path):
    assert "cost" not in checkpoints.read_meta(nlr_digits)  # the checkpoint's bytes stay fixed
    record = cost.training(nlr_digits)
    assert record["device"] == "cpu" and record["memory"] == "process peak RSS"
    assert 0 < record["train_seconds"] < 3600 and 50 < record["peak_memory_mb"] < 64_000
    rows = cost.training_rows(checkpoints.read_meta(nlr_digits), nlr_digits)
    values = {r["metric"]: r["value"] for r in rows}
    assert values == {
        "seconds": record["train_seconds"],
        "peak_memory_mb": record["peak_memory_mb"],
    }


def test_meter_adds_the_seconds_of_a_resumed_run():
    meter = cost.TrainingMeter(torch.device("cpu"), seconds_before=100.0)
    first = meter.record()["train_seconds"]
    assert 100.0 <= first < 110.0 and meter.record()["train_seconds"] >= first


def _model(method: str, seed: int = 0) -> dict:
    return {"dataset": "digits", "arch": "resnet18", "width": 0.25, "method": method, "seed": seed}


def test_ledger_seconds_summed_per_model_and_category(tmp_path: Path):
    shards = {}
    for name, method in (("a", "nlr"), ("b", "1lr")):
        shards[name] = tmp_path / f"{name}.csv"
        row = {**_model(method), "checkpoint": f"ck/{method}", "experiment": "attack"}
        results.write(shards[name], pd.DataFrame([results.make_row(**row, value=1.0)]))
    jobs = [
        ("attacks", shards["a"], 2.0),
        ("minrho", shards["a"], 3.0),
        ("l2", shards["a"], 1.5),
        ("audit", shards["a"], 4.0),
        ("train", shards["a"], 9.0),  # training seconds come from meta.json, not the ledger
        ("analyses", shards["a"], 7.0),
        ("attacks", shards["b"], 0.5),
    ]
    rows = {(r["method"], r["attack"]): r["value"] for r in cost.job_rows(jobs)}
    assert rows == {("nlr", "attacks"): 6.5, ("nlr", "audit"): 4.0, ("1lr", "attacks"): 0.5}


def test_leaderboard_columns_and_model_info(tmp_path: Path):
    base = {**_model("nlr"), "device": "cpu", "checkpoint": "ck"}
    rows = [
        {**base, "experiment": "clean", "attack": "clean", "metric": "clean_acc", "value": 90.0},
        {**base, "experiment": "cost", "attack": "train", "metric": "seconds", "value": 12.5},
        {**base, "experiment": "cost", "attack": "train", "metric": "peak_memory_mb", "value": 700},
        {**base, "experiment": "cost", "attack": "attacks", "metric": "seconds", "value": 30.0},
        {**base, "experiment": "cost", "attack": "audit", "metric": "seconds", "value": 45.0},
        {**base, "seed": 1, "experiment": "clean", "metric": "clean_acc", "value": 92.0},
        {
            **base,
            "seed": 1,
            "experiment": "cost",
            "attack": "train",
            "metric": "seconds",
            "value": 17.5,
        },
    ]
    frame = pd.DataFrame([results.make_row(**r) for r in rows])
    threat = leaderboard.Threat()
    table = leaderboard.build(frame, threat)
    row = table.iloc[0]
    assert row["train_seconds"] == pytest.approx(15.0) and row["audit_seconds"] == 45.0
    info = leaderboard.model_info(row, threat)["cost"]
    assert info == {
        "training_time_s": 15.0,
        "peak_memory_mb": 700.0,
        "training_device": "cpu",
        "attack_time_s": 30.0,
        "audit_time_s": 45.0,
    }
    leaderboard.write(table, threat, tmp_path / "board.md")
    text = (tmp_path / "board.md").read_text()
    assert "train_seconds" in text and "15.0" in text and "process peak RSS" in text
