"""Flags and loading shared by commands that evaluate a checkpoint on a test subset.

`attack` and `minrho` use them (and `analyze` / `audit` can): the target checkpoint, an optional
black-box source, the seeded uniform subset (`--n`, `--seed`), the results file, the device.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from torch import nn

from robustbench_lr.commands.argtypes import count, seed
from robustbench_lr.commands.common import add_data_flags, add_device_flag, load_options
from robustbench_lr.evalset import DEFAULT_N, EvalSet

DEFAULT_RESULTS = "reports/results.csv"


def add_eval_flags(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --source, --n, --seed, --batch-size, --out, --device and the data flags."""
    parser.add_argument(
        "--checkpoint", required=True, help="target checkpoint folder (holds meta.json)"
    )
    parser.add_argument(
        "--source",
        default=None,
        help="black-box: craft on this checkpoint, evaluate the target (default: white-box)",
    )
    parser.add_argument(
        "--n",
        type=count,
        default=DEFAULT_N,
        help=f"uniformly sampled test subset size; all if fewer (default: {DEFAULT_N})",
    )
    parser.add_argument("--seed", type=seed, default=0, help="seed of the test subset (default: 0)")
    parser.add_argument(
        "--batch-size", type=count, default=256, help="attack batch size (default: 256)"
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_RESULTS,
        help=f"results CSV to append to (default: {DEFAULT_RESULTS})",
    )
    add_device_flag(parser)
    add_data_flags(parser)


@dataclass(frozen=True)
class Setup:
    """The target's evaluation set, the crafting model, and what identifies them in results."""

    eval_set: EvalSet
    source: nn.Module | None
    source_path: str
    model_columns: dict[str, Any]
    subset_extra: dict[str, Any]

    @property
    def box(self) -> str:
        return "white" if self.source is None else "black"


def load_setup(args: argparse.Namespace) -> Setup:
    """Load target, subset and (for black-box) source; make CPU runs bit-for-bit repeatable."""
    from robustbench_lr.checkpoints import CheckpointError, load_model
    from robustbench_lr.devices import use_device
    from robustbench_lr.evalset import load_eval_set
    from robustbench_lr.results import model_fields

    device = use_device(args.device)
    eval_set = load_eval_set(args.checkpoint, args.n, args.seed, device, load_options(args))
    source = None
    if args.source:
        source, source_meta = load_model(args.source, device)
        mine, theirs = eval_set.meta["dataset_spec"], source_meta["dataset_spec"]
        if (mine["name"], mine["num_classes"]) != (theirs["name"], theirs["num_classes"]):
            raise CheckpointError(
                f"--source {args.source} was trained on {theirs['name']} ({theirs['num_classes']} classes), "
                f"the target on {mine['name']} ({mine['num_classes']}): transfer needs the same dataset"
            )
    return Setup(
        eval_set,
        source,
        str(args.source or ""),
        model_fields(eval_set.meta, args.checkpoint),
        {"subset_seed": args.seed} if args.seed else {},
    )
