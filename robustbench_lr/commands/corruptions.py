"""`robustbench-lr corruptions`: accuracy under the 15 common corruptions x 5 severities
(the rows of `experiments.corruption`, which documents them)."""

from __future__ import annotations

import argparse

from robustbench_lr.commands.common import Flag, add_flags, settings_flags
from robustbench_lr.commands.evalflags import add_eval_flags, load_target_from, record
from robustbench_lr.corruptions import CORRUPTIONS, SEVERITIES, CorruptionError
from robustbench_lr.experiments.corruption import SOURCES, CorruptionSettings, run_corruptions

HELP = "accuracy under common corruptions (CIFAR-10-C style): per corruption and severity"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = CorruptionSettings
    names = f"comma-separated, of: {', '.join(CORRUPTIONS)} (default: all 15)"
    source = (
        "generate: the reference filters on the model's test subset; files: the "
        "published CIFAR-10-C / CIFAR-100-C .npy files under --data-root"
    )
    severities = "comma-separated, of 1..5 (default: all)"
    add_flags(
        parser,
        [
            Flag("--corruptions", names, None, ",".join(d.corruptions)),
            Flag("--severities", severities, None, ",".join(map(str, d.severities))),
            Flag("--corruption-source", source, None, d.source, choices=SOURCES),
            *settings_flags(d, ("seed",), prefix="corruption_"),
        ],
    )
    add_eval_flags(parser, batch_default=d.batch_size)


def _severities(text: str) -> tuple[int, ...]:
    """The severities as integers; a word is reported like an unknown severity."""
    values = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            values.append(int(part))
        except ValueError:
            raise CorruptionError(
                f"unknown corruption severity {part!r}; valid choices: "
                f"{', '.join(map(str, SEVERITIES))}"
            ) from None
    return tuple(values)


def settings_from(args: argparse.Namespace) -> CorruptionSettings:
    return CorruptionSettings(
        corruptions=tuple(c.strip() for c in args.corruptions.split(",") if c.strip()),
        severities=_severities(args.severities),
        source=args.corruption_source,
        seed=args.corruption_seed,
        data_root=args.data_root,
        batch_size=args.batch_size,
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)  # a bad name or severity is refused before the model loads
    return record(run_corruptions(load_target_from(args), settings), args.out)
