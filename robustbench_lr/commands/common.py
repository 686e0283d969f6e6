"""Flags shared by several subcommands, defined once."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from robustbench_lr.commands.argtypes import device, key_value, value_of
from robustbench_lr.config import TrainConfig
from robustbench_lr.data import DEFAULT_DATA_ROOT, LoadOptions
from robustbench_lr.devices import DEVICE_CHOICES
from robustbench_lr.settings import Budget


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

    @classmethod
    def pairs(cls, name: str, help: str) -> Flag:
        """A repeatable `KEY=VALUE` flag: the (key, value) pairs given, in order."""
        return cls(name, help, key_value, [], "append", metavar="KEY=VALUE")


def settings_flags(cls: type, names: Iterable[str], prefix: str = "") -> list[Flag]:
    """The flags `--<prefix><field with dashes>` of fields `names` of settings class `cls`, each
    from its declaration (`settings.setting`): its default, its value type and its help.

    A field that is off unless asked for is a switch; a budget's default reads as k/255.
    """
    declared = {f.name: f for f in fields(cls)}
    rows = []
    for name in names:
        field, flag = declared[name], f"--{prefix}{name}".replace("_", "-")
        kind, text = field.metadata["kind"], field.metadata["help"].replace("%", "%%")
        if field.default is False:
            rows.append(Flag.switch(flag, text))
            continue
        shown = f"{field.default * 255:g}/255" if kind is Budget else "%(default)s"
        text = text if field.default is None else f"{text} (default: {shown})"
        rows.append(Flag(flag, text, value_of(kind) if kind else None, field.default))
    return rows


def add_flags(target: argparse.ArgumentParser | argparse._ArgumentGroup, flags: Iterable[Flag]):
    for flag in flags:
        options = {k: v for k, v in asdict(flag).items() if v is not None and k != "name"}
        target.add_argument(flag.name, **options)


def add_run_flags(parser: argparse.ArgumentParser, training: bool = False) -> None:
    """--device, and the data group: the data's source (for training also its limits).

    Commands that evaluate a checkpoint take the split and limits from its meta.json (the
    data it was trained and tested on), so they do not offer flags they would have to ignore.
    """
    where = "where to run (default: auto = cuda if present)"
    add_flags(parser, [Flag("--device", where, device, "auto", choices=DEVICE_CHOICES)])
    root_help = "folder with CIFAR/SVHN files in torchvision's layout (default: %(default)s)"
    flags = [
        Flag("--data-root", root_help, default=DEFAULT_DATA_ROOT),
        Flag.switch("--download", "download CIFAR/SVHN through torchvision (needs network)"),
    ]
    if training:
        flags += settings_flags(TrainConfig, ("svhn_extra", "train_limit", "test_limit"))
    add_flags(parser.add_argument_group("data"), flags)


def load_options(args: argparse.Namespace) -> LoadOptions:
    """The LoadOptions named by the data flags; beside `--checkpoint`, `--dataset npz:PATH` is
    where the checkpoint's npz lies now (`data.load_for_checkpoint` checks its content)."""
    moved = getattr(args, "dataset", None) if getattr(args, "checkpoint", None) else None
    npz = moved[len("npz:") :] if moved and moved.startswith("npz:") else None
    return LoadOptions(data_root=args.data_root, download=args.download, npz=npz)


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
