"""The package's error types: one base every deliberate error shares, and `InvalidArgument`.

A notebook user catches `RobustbenchLRError` and knows the message is meant for them (a bad
argument, a missing dataset, a broken checkpoint), while a bug still surfaces as whatever it
is. The other error types (`CheckpointError`, `DatasetError`, `UnknownNameError`,
`FolderBusyError`) also have a standard base, so `except ValueError` / `except KeyError` and
the CLI's mapping to exit status 2 catch them.

This module imports nothing of the package's (and no torch): every module may import it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class RobustbenchLRError(Exception):
    """Base of every error the package raises on purpose; its message is one line for users."""


class InvalidArgument(RobustbenchLRError, ValueError):
    """An argument of a public call is not acceptable: the message names the argument, the
    value given and what is valid (the choices, with "did you mean" for a near miss).

    `valid` is either the valid names (listed, and searched for a close match to a text
    value) or a phrase saying what is valid ("a number in (0, 1]").
    """

    def __init__(
        self, argument: str, value: Any, valid: str | Iterable[str], problem: str = ""
    ) -> None:
        self.argument, self.value = argument, value
        if isinstance(valid, str):
            self.valid, hint = valid, ""
        else:
            names = [str(name) for name in valid]
            self.valid, hint = ", ".join(names), did_you_mean(value, names)
        what = problem or "is not valid"
        super().__init__(f"{argument}={_shown(value)} {what}{hint}; valid: {self.valid}")


def did_you_mean(value: Any, names: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the registered name closest to `value` (ignoring case), or ""."""
    if not isinstance(value, str):
        return ""
    by_lower = {name.lower(): name for name in reversed(list(names))}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def _shown(value: Any) -> str:
    """The value as the message shows it: short, on one line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."
