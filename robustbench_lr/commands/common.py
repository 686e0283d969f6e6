"""Flags shared by several subcommands, defined once."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from robustbench_lr.commands.argtypes import count, device
from robustbench_lr.data import DEFAULT_DATA_ROOT, LoadOptions
from robustbench_lr.devices import DEVICE_CHOICES


@dataclass(frozen=True)
class Flag:
    """One option as a row of a table: its name, help, and the add_argument keywords it sets.

    Commands declare their options as tuples of these, one row per option, so a command's
    interface reads as a table (and the declarations do not repeat one call shape per flag).
    A keyword left at None is not passed, so argparse's own defaults apply.
    """

    name: str
    help: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    required: bool | None = None

    @classmethod
    def switch(cls, name: str, help: str) -> Flag:
        """An on/off flag (False unless given)."""
        return cls(name, help, action="store_true")


def add_flags(target: argparse.ArgumentParser | argparse._ArgumentGroup, flags: Iterable[Flag]):
    """Declare every row of `flags` on a parser or an argument group."""
    for flag in flags:
        options = {k: v for k, v in asdict(flag).items() if v is not None and k != "name"}
        target.add_argument(flag.name, **options)


def add_data_flags(parser: argparse.ArgumentParser, training: bool = False) -> None:
    """--data-root and --download; for training also --svhn-extra, --train-limit, --test-limit.

    Commands that evaluate a checkpoint take the split and limits from its meta.json (the
    data it was trained and tested on), so they do not offer flags they would have to ignore.
    """
    root_help = (
        f"folder with CIFAR/SVHN files in torchvision's layout (default: {DEFAULT_DATA_ROOT})"
    )
    flags = [
        Flag("--data-root", root_help, default=DEFAULT_DATA_ROOT),
        Flag(
            "--download",
            "download CIFAR/SVHN through torchvision (needs network)",
            action="store_true",
        ),
    ]
    if training:
        flags += [
            Flag(
                "--svhn-extra", "add SVHN's 'extra' split to its training set", action="store_true"
            ),
            Flag("--train-limit", "deterministic stratified training subset of this size", count),
            Flag("--test-limit", "deterministic stratified test subset of this size", count),
        ]
    add_flags(parser.add_argument_group("data"), flags)


def load_options(args: argparse.Namespace) -> LoadOptions:
    """The LoadOptions named by the data flags; beside `--checkpoint`, `--dataset npz:PATH` is
    where the checkpoint's npz lies now (`data.load_for_checkpoint` checks its content)."""
    moved = getattr(args, "dataset", None) if getattr(args, "checkpoint", None) else None
    npz = moved[len("npz:") :] if moved and moved.startswith("npz:") else None
    return LoadOptions(data_root=args.data_root, download=args.download, npz=npz)


def add_run_flags(parser: argparse.ArgumentParser, training: bool = False) -> None:
    """--device auto|cpu|cuda, and the data flags (`add_data_flags`)."""
    where = "where to run (default: auto = cuda if present)"
    add_flags(parser, [Flag("--device", where, device, "auto", choices=DEVICE_CHOICES)])
    add_data_flags(parser, training)


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
