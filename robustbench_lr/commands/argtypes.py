"""argparse `type=` callables: every command checks its flag values here, while parsing.

A bad value then stops the command before it loads a model or writes a file (a negative step
count would run no attack and report clean accuracy as robust accuracy), and argparse prints
`argument --flag: <message>`, where each message names the value and the range it missed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from robustbench_lr.config import parse_fraction
from robustbench_lr.registry import UnknownNameError, unknown_name

T = TypeVar("T")


def _shown(text: str) -> str:
    """The value as typed; quoted when blank, so the message does not read as a missing word."""
    return text if text.strip() else repr(text)


def at_least(low: int) -> Callable[[str], int]:
    """Integers >= `low`: counts (steps, epochs, batch sizes, queries, ...) and seeds."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not an integer >= {low}")
        return value

    return parse


@dataclass(frozen=True)
class Range:
    """The real numbers a flag accepts; `high=inf` means no upper bound (values stay finite)."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


def real(accepted: Range) -> Callable[[str], float]:
    """Finite numbers in `accepted`, written `0.03`, `3e-2` or `8/255` (config.parse_fraction)."""

    def parse(text: str) -> float:
        try:
            value = parse_fraction(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{err}; expected a number {accepted}") from None
        if value not in accepted:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number {accepted}")
        return value

    return parse


def comma_list(item: Callable[[str], T]) -> Callable[[str], list[T]]:
    """`8/255,16/255` -> a list checked item by item; a sweep over nothing is an error."""

    def parse(text: str) -> list[T]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is an empty list")
        return [item(part) for part in parts]

    return parse


def checked_by(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """Run `parse` at parse time but keep the text: for values that a library parses again later.

    Method options are parsed by `Method.resolve`; checking them here too makes a bad one a
    usage error that names the flag, before any data is loaded.
    """

    def check(text: str) -> str:
        try:
            parse(text)
        except (ValueError, TypeError, UnknownNameError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return text

    return check


def device(name: str) -> str:
    """A device that exists: CUDA asked for on a machine without one is a usage error."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("cuda is not available (torch sees no CUDA device)")
    return name


def bench_stages(text: str) -> str:
    """Comma-separated bench stage names, kept as text (`bench` splits them itself).

    Checked here because the bench creates its report folder before it looks a stage up.
    """
    from robustbench_lr.bench import STAGES

    unknown = [name for name in comma_list(str)(text) if name not in STAGES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown bench stage(s) {', '.join(unknown)}; valid choices: {', '.join(STAGES)}"
        )
    return text


def factory(text: str) -> str:
    """`--model MODULE:FACTORY`, checked as written; it is imported when the command runs."""
    from robustbench_lr.external import check_factory

    return checked_by(check_factory)(text)


def model_name(text: str) -> str:
    """`--name`: it becomes part of result rows and report file names."""
    from robustbench_lr.external import check_name

    return checked_by(check_name)(text)


def dataset(text: str) -> str:
    """A registered dataset or `npz:PATH` (the file is read when the command runs)."""
    from robustbench_lr.data import DATASETS, dataset_names

    if text in DATASETS or (text.startswith("npz:") and len(text) > len("npz:")):
        return text
    raise argparse.ArgumentTypeError(unknown_name("dataset", text, dataset_names()))


def key_value(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (analysis options, extra sbatch options)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


count = at_least(1)  # steps, epochs, batch sizes, --n, draws, queries, restarts, targets, limits
seed = at_least(0)  # seeds (numpy refuses negative ones)
budget = real(Range(0, 1, low_open=True))  # L-inf eps and step sizes on [0, 1] images
probability = real(Range(0, 1))  # noise --p
positive = real(Range(0, low_open=True))  # width, learning rate, Gaussian std
nonnegative = real(Range(0))  # weight decay, overshoot, tolerances
open_unit = real(Range(0, 1, low_open=True, high_open=True))  # minrho --rate
