"""Flags shared by commands that evaluate a checkpoint on a test subset.

`attack`, `minrho`, `audit` and `analyze` use them: the target checkpoint, an optional
black-box source, the seeded uniform subset (`--n`, `--seed`), the results file, the device.
What they load is one `target.Target` (`load_target_from`).
"""

from __future__ import annotations

import argparse

from robustbench_lr.commands.argtypes import count, seed
from robustbench_lr.commands.common import add_data_flags, add_device_flag, load_options
from robustbench_lr.target import DEFAULT_N, Target

DEFAULT_RESULTS = "reports/results.csv"


def add_eval_flags(parser: argparse.ArgumentParser, n_default: int | None = DEFAULT_N) -> None:
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
        default=n_default,
        help="uniformly sampled test subset size; all if fewer "
        f"(default: {n_default if n_default is not None else 'the whole test set'})",
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


def load_target_from(args: argparse.Namespace) -> Target:
    """The target the eval flags name; CPU runs bit-for-bit repeatable (`use_device`)."""
    from robustbench_lr.devices import use_device
    from robustbench_lr.target import load_target

    return load_target(
        args.checkpoint,
        n=args.n,
        seed=args.seed,
        source=args.source,
        device=use_device(args.device),
        options=load_options(args),
    )
