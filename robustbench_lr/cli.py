"""The `robustbench-lr` command line: one subcommand per module in `robustbench_lr.commands`.

Library code raises; this is the one place that turns expected errors into a one-line message
and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from robustbench_lr import __version__

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "train",
    "evaluate",
    "attack",
    "minrho",
    "audit",
    "analyze",
    "regress",
    "bench",
    "report",
    "leaderboard",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; each command module adds its own flags."""
    parser = argparse.ArgumentParser(prog="robustbench-lr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"robustbench-lr {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details to stderr"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"robustbench_lr.commands.{module_name}")
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and map known error types to a clear one-line message."""
    from robustbench_lr.checkpoints import CheckpointError
    from robustbench_lr.data import DatasetError
    from robustbench_lr.registry import UnknownNameError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except (CheckpointError, DatasetError, UnknownNameError, ValueError, FileNotFoundError) as err:
        print(f"robustbench-lr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
