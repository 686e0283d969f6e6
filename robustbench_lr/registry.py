"""A name -> value mapping whose lookup errors list the valid choices.

Every pluggable piece (datasets, architectures, methods, attacks, analyses, tables) lives in one
of these, so the CLI, the bench and the tests enumerate them instead of branching on names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from robustbench_lr.errors import RobustbenchLRError, did_you_mean

T = TypeVar("T")


class UnknownNameError(RobustbenchLRError, KeyError):
    """Raised for a name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0])


def unknown_name(noun: str, name: Any, valid: Iterable[str], where: str = "") -> str:
    """`unknown <noun> 'x' <where>; did you mean 'y'? valid choices: ...` (difflib's pick).

    The one message every unknown name gets, on the command line and in profiles alike. The
    match ignores case, so `CIFAR10` finds `cifar10`.
    """
    valid = list(valid)
    hint = did_you_mean(str(name), valid) or ";"
    place = f" {where}" if where else ""
    return f"unknown {noun} {name!r}{place}{hint} valid choices: {', '.join(valid) or 'none'}"


class Registry(Generic[T]):
    """An ordered registry of named values of one kind (e.g. "dataset", "attack")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, value: T) -> T:
        """Register `value` under `name`; a second registration of a name is a bug."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = value
        return value

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda value: self.add(name, value)

    def get(self, name: str) -> T:
        """Look `name` up; an unknown name raises an error that lists every valid choice."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name(self.kind, name, self._items)) from None

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        """Registered names in registration order (used for CLI `choices`)."""
        return list(self._items)
