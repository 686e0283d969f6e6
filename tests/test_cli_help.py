"""`--help` of the program and of every subcommand exits 0 and prints its usage.

argparse %-formats help texts only when it prints them, so a stray `%` (minrho's ">99%")
crashed `robustbench-lr --help` while every other command ran fine.
"""

from __future__ import annotations

import pytest

from robustbench_lr import cli


def _help_output(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_program_help_lists_every_command(capsys: pytest.CaptureFixture):
    out = _help_output([], capsys)
    assert out.startswith("usage: robustbench-lr ")
    assert all(name in out for name in cli.COMMAND_MODULES)


@pytest.mark.parametrize("command", cli.COMMAND_MODULES)
def test_command_help_prints_usage(command: str, capsys: pytest.CaptureFixture):
    out = _help_output([command], capsys)
    assert out.startswith(f"usage: robustbench-lr {command} ")
    assert "--help" in out


def test_every_command_module_is_a_subcommand():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(cli.COMMAND_MODULES)
