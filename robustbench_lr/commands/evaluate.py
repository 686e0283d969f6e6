"""`robustbench-lr evaluate`: clean test accuracy of a checkpoint or an external model."""

from __future__ import annotations

import argparse

from robustbench_lr.commands.argtypes import count
from robustbench_lr.commands.common import Flag, add_flags, add_run_flags, json_line
from robustbench_lr.commands.evalflags import add_model_flags, load_target_from
from robustbench_lr.evaluation import accuracy

HELP = "print the clean test accuracy of a checkpoint, your own model or a RobustBench model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    test_limit = (
        "stratified test subset of this size (default: the checkpoint's own test split; "
        "an external model's: the dataset's whole test split)"
    )
    add_flags(
        parser,
        [
            Flag.switch("--json", "end with one JSON line: clean_acc (percent), n, ..."),
            Flag("--test-limit", test_limit, count),
        ],
    )
    add_run_flags(parser)


def run(args: argparse.Namespace) -> int:
    target = load_target_from(args, n=None, test_limit=args.test_limit)
    cfg, data = target.meta["config"], target.data
    acc = accuracy(target.model, data.x_test, data.y_test)
    print(f"{target.checkpoint}: clean test accuracy {acc:.2f}% on {len(data.y_test)} images")
    if args.json:
        row = {
            "checkpoint": target.checkpoint,
            "clean_acc": acc,
            "n": len(data.y_test),
            "dataset": target.columns["dataset"],
            "arch": cfg["arch"],
            "method": cfg["method"],
        }
        print(json_line(row))
    return 0
