"""The `robustbench-lr` command line: one subcommand per module in `robustbench_lr.commands`.

Library code raises; this is the one place that turns expected errors into a one-line message
and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from robustbench_lr import __version__
from robustbench_lr.errors import RobustbenchLRError

# Subcommand modules, each named as its command, in the order `--help` lists them.
COMMAND_MODULES = tuple(
    "train evaluate attack minrho corruptions shift audit analyze regress bench report leaderboard".split()
)


def error_line(prog: str, message: str) -> str:
    """`<prog>: error: <message>` on one line, whatever line breaks the message carries."""
    return f"{prog}: error: {' '.join(message.split())}\n"


class Parser(argparse.ArgumentParser):
    """Usage errors as the one line `robustbench-lr <command>: error: <message>`, exit status 2.

    argparse's default prints the whole usage first, which buries the one line that matters;
    the subcommand parsers are of this class too (add_subparsers makes them of the parent's).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, error_line(self.prog, message))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="robustbench-lr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"robustbench-lr {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details to stderr"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"robustbench_lr.commands.{module_name}")
        # argparse %-formats a subcommand's help in the command list, not its description.
        help_text = module.HELP.replace("%", "%%")
        cmd = sub.add_parser(module_name, help=help_text, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(handler=module.run, usage_error=cmd.error)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse `argv`; a stray argument is reported by its subcommand, like every other flag error."""
    args, stray = build_parser().parse_known_args(argv)
    if stray:
        args.usage_error(f"unrecognized arguments: {' '.join(stray)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except (RobustbenchLRError, ValueError, OSError) as err:
        sys.stderr.write(error_line(f"robustbench-lr {args.command}", str(err)))
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
