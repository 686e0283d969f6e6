"""Flags shared by several subcommands, defined once."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from typing import Any

from robustbench_lr.commands.argtypes import count, device
from robustbench_lr.data import DEFAULT_DATA_ROOT, LoadOptions, dataset_names
from robustbench_lr.devices import DEVICE_CHOICES


def add_data_flags(parser: argparse.ArgumentParser, training: bool = False) -> None:
    """--data-root and --download; for training also --svhn-extra, --train-limit, --test-limit.

    Commands that evaluate a checkpoint take the split and limits from its meta.json (the
    data it was trained and tested on), so they do not offer flags they would have to ignore.
    """
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data-root",
        default=DEFAULT_DATA_ROOT,
        help=f"folder with CIFAR/SVHN files in torchvision's layout (default: {DEFAULT_DATA_ROOT})",
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="download CIFAR/SVHN through torchvision (needs network)",
    )
    if not training:
        return
    group.add_argument(
        "--svhn-extra", action="store_true", help="add SVHN's 'extra' split to its training set"
    )
    group.add_argument(
        "--train-limit",
        type=count,
        default=None,
        help="deterministic stratified training subset of this size",
    )
    group.add_argument(
        "--test-limit",
        type=count,
        default=None,
        help="deterministic stratified test subset of this size",
    )


def load_options(args: argparse.Namespace) -> LoadOptions:
    """The LoadOptions named by the data flags."""
    return LoadOptions(data_root=args.data_root, download=args.download)


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    """--device auto|cpu|cuda."""
    parser.add_argument(
        "--device",
        default="auto",
        type=device,
        choices=DEVICE_CHOICES,
        help="where to run (default: auto = cuda if present)",
    )


def dataset_help() -> str:
    """One line naming every dataset choice."""
    return "dataset: " + ", ".join(dataset_names())


def json_line(record: Mapping[str, Any]) -> str:
    """`record` as one line of valid JSON: NaN and infinities become null.

    json.dumps writes them as bare `NaN` / `Infinity`, which strict parsers (jq, JavaScript)
    reject; a lost accuracy is better read as null than not read at all.
    """
    finite = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in record.items()
    }
    return json.dumps(finite, allow_nan=False)
