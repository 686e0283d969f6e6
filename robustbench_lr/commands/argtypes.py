"""argparse `type=` callables: every command checks its flag values here, while parsing.

A bad value then stops the command before it loads a model or writes a file (a negative step
count would run no attack and report clean accuracy as robust accuracy), and argparse prints
`argument --flag: <message>`, where each message names the value and the range it missed.
A number is checked by its leaf type of `robustbench_lr.settings`, the type a profile key of
the same setting is checked by, so both faces accept the same values.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch

from robustbench_lr import results
from robustbench_lr.attacks import ATTACKS
from robustbench_lr.bench import STAGES
from robustbench_lr.data import DATASETS, dataset_names
from robustbench_lr.external import check_factory, check_name
from robustbench_lr.registry import UnknownNameError, unknown_name
from robustbench_lr.settings import (
    Budget,
    Count,
    NonNegative,
    Positive,
    Probability,
    Seed,
    from_text,
)

T = TypeVar("T")


def _usage(parse: Callable[[str], T], *errors: type[Exception]) -> Callable[[str], T]:
    """`parse`, with its `errors` as usage errors: argparse prints `argument --flag: <message>`."""

    def checked(text: str) -> T:
        try:
            return parse(text)
        except errors as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return checked


def value_of(kind: Any) -> Callable[[str], Any]:
    """The flag value of a numeric leaf type of `settings`: the text as a number (a fraction
    like `8/255` for a real one, `parse_fraction`), checked by the type a profile key of the
    same setting is checked by."""
    return _usage(functools.partial(from_text, kind), ValueError)


def comma_list(item: Callable[[str], T]) -> Callable[[str], list[T]]:
    """`8/255,16/255` -> a list checked item by item. A sweep over nothing is an error, and so
    is an empty item (`8/255,,16/255`): dropping it would run a grid other than the one typed."""

    def parse(text: str) -> list[T]:
        parts = [part.strip() for part in text.split(",")]
        if not any(parts):
            shown = text if text.strip() else repr(text)  # a blank would read as a missing word
            raise argparse.ArgumentTypeError(f"{shown} is an empty list")
        if not all(parts):
            position = parts.index("") + 1
            raise argparse.ArgumentTypeError(
                f"{text} has an empty item at position {position}: separate items by one comma"
            )
        return [item(part) for part in parts]

    return parse


def checked_by(
    parse: Callable[[str], Any],
    errors: tuple[type[Exception], ...] = (ValueError, TypeError, UnknownNameError),
) -> Callable[[str], str]:
    """Run `parse` at parse time but keep the text: for values that a library parses again later.

    Method options are parsed by `Method.resolve`; checking them here too makes a bad one a
    usage error that names the flag, before any data is loaded.
    """

    def check(text: str) -> str:
        parse(text)
        return text

    return _usage(check, *errors)


def device(name: str) -> str:
    """A device that exists: CUDA asked for on a machine without one is a usage error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("cuda is not available (torch sees no CUDA device)")
    return name


def bench_stages(text: str) -> str:
    """Comma-separated bench stage names, kept as text (`bench` splits them itself).

    Checked here because the bench creates its report folder before it looks a stage up.
    """
    unknown = [name for name in comma_list(str)(text) if name not in STAGES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown bench stage(s) {', '.join(unknown)}; valid choices: {', '.join(STAGES)}"
        )
    return text


def dataset(text: str) -> str:
    """A registered dataset or `npz:PATH` (the file is read when the command runs)."""
    if text in DATASETS or (text.startswith("npz:") and len(text) > len("npz:")):
        return text
    raise argparse.ArgumentTypeError(unknown_name("dataset", text, dataset_names()))


def registered(noun: str, names: Iterable[str]) -> Callable[[str], str]:
    """A name among `names` (a registry), with "did you mean" for a near miss."""

    def check(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(unknown_name(noun, text, names))
        return text

    return check


def key_value(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (analysis options, extra sbatch options)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


count = value_of(Count)  # steps, epochs, batch sizes, --n, draws, queries, restarts, targets
seed = value_of(Seed)  # seeds (numpy refuses negative ones)
budget = value_of(Budget)  # L-inf eps and step sizes on [0, 1] images
probability = value_of(Probability)  # noise --p
positive = value_of(Positive)  # width, learning rate, Gaussian std
nonnegative = value_of(NonNegative)  # weight decay, overshoot, tolerances
attack_name = registered("attack", ATTACKS)
factory = checked_by(check_factory)  # --model MODULE:FACTORY, imported when the command runs
model_name = checked_by(check_name)  # --name: part of result rows and report file names
# A results CSV the command appends its rows to, checked before the work rather than after it.
results_file = checked_by(results.check_appendable, (ValueError, OSError))
