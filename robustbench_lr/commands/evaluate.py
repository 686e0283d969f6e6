"""`robustbench-lr evaluate`: clean test accuracy of a checkpoint."""

from __future__ import annotations

import argparse

from robustbench_lr.commands.common import add_data_flags, add_device_flag, json_line, load_options

NAME = "evaluate"
HELP = "print a checkpoint's clean test accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --json, device and data flags."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (holds meta.json)")
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON line: clean_acc (percent), n, ..."
    )
    add_device_flag(parser)
    add_data_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, rebuild its test set, and report clean accuracy."""
    from robustbench_lr.checkpoints import load_model
    from robustbench_lr.data import load_for_checkpoint
    from robustbench_lr.devices import use_device
    from robustbench_lr.evaluation import accuracy

    model, meta = load_model(args.checkpoint, use_device(args.device))
    cfg = meta["config"]
    test_limit = args.test_limit if args.test_limit is not None else cfg.get("test_limit")
    data = load_for_checkpoint(
        meta, args.checkpoint, load_options(args), train_limit=1, test_limit=test_limit
    )
    acc = accuracy(model, data.x_test, data.y_test)
    print(f"{args.checkpoint}: clean test accuracy {acc:.2f}% on {len(data.y_test)} images")
    if args.json:
        print(
            json_line(
                {
                    "checkpoint": str(args.checkpoint),
                    "clean_acc": acc,
                    "n": len(data.y_test),
                    "dataset": cfg["dataset"],
                    "arch": cfg["arch"],
                    "method": cfg["method"],
                }
            )
        )
    return 0
