"""`robustbench-lr evaluate`: clean test accuracy of a checkpoint."""

from __future__ import annotations

import argparse

from robustbench_lr.commands.argtypes import count
from robustbench_lr.commands.common import add_data_flags, add_device_flag, json_line, load_options

NAME = "evaluate"
HELP = "print a checkpoint's clean test accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --json, device and data flags."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (holds meta.json)")
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON line: clean_acc (percent), n, ..."
    )
    parser.add_argument(
        "--test-limit",
        type=count,
        default=None,
        help="stratified test subset of this size (default: the checkpoint's own test split)",
    )
    add_device_flag(parser)
    add_data_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, rebuild its test set, and report clean accuracy."""
    from robustbench_lr.devices import use_device
    from robustbench_lr.evaluation import accuracy
    from robustbench_lr.target import load_target

    target = load_target(
        args.checkpoint,
        n=None,
        device=use_device(args.device),
        options=load_options(args),
        test_limit=args.test_limit,
    )
    cfg, data = target.meta["config"], target.data
    acc = accuracy(target.model, data.x_test, data.y_test)
    print(f"{args.checkpoint}: clean test accuracy {acc:.2f}% on {len(data.y_test)} images")
    if args.json:
        print(
            json_line(
                {
                    "checkpoint": str(args.checkpoint),
                    "clean_acc": acc,
                    "n": len(data.y_test),
                    "dataset": target.columns["dataset"],
                    "arch": cfg["arch"],
                    "method": cfg["method"],
                }
            )
        )
    return 0
