"""The value types of every setting, shared by the bench profiles and the command line.

A setting is declared once, on its settings dataclass (`setting`): its default, its value type
from the vocabulary below and a one-line meaning. The profile schema (`profiles/`) checks a key
with that type; the command line (`commands/argtypes.py`) turns a flag's text into a number
and checks it with the same type, so a value is refused or accepted alike on both faces.

Each type is pydantic, with its errors reworded as `is not <what it accepts>` (`rule`), which
`profiles.rules.one_line` and the flags' converters put on one line. Importing this module
costs pydantic, never torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import field
from typing import Annotated, Any, TypeVar

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

T = TypeVar("T")

# The errors a check raises, and what each says: `path` is the key, `value` the offending
# value, `where` the table holding the key. Any other error is pydantic's, reworded by `rule`
# (or `profiles.rules.Table`) into one of these.
MESSAGES = {
    "not_allowed": "{path} = {value} is not {allowed}",
    "invalid": "{path} = {value} is invalid: {text}",  # a foreign parser's reason
    "unknown_name": "{path}: {text}",  # the registries' message, kept as UnknownNameError
    "rejected": "{path}: {text}",
    "unknown_key": "{unknown}",  # `registry.unknown_name`, with the closest valid key
    "missing_key": "missing required {noun} {key!r} {where}",
    "pydantic": "{path} = {value} is invalid: {text}",  # what no rule rewords
}


def error(kind: str, **ctx: Any) -> PydanticCustomError:
    """One of `MESSAGES`, worded by `profiles.rules.one_line`, which knows the path."""
    assert kind in MESSAGES, kind
    return PydanticCustomError(kind, kind, ctx)


def rule(allowed: str) -> WrapValidator:
    """Reword pydantic's errors for the value it wraps as `is not <allowed>`; the errors that
    already speak (a list item's, a nested key's, an unknown name) pass through."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as err:
            if all(e["type"] in MESSAGES for e in err.errors()):
                raise
            raise error("not_allowed", allowed=allowed) from None

    wrap.allowed = allowed  # type: ignore[attr-defined]  # read by `items` for its own text
    return WrapValidator(wrap)


def parse_fraction(text: str | float) -> float:
    """Parse `8/255`, `0.03` or `3e-2` (how budgets are written on command lines and in profiles).

    Junk, a zero denominator and non-finite values raise ValueError naming the text: a budget of
    `nan` or `inf` would otherwise run and report numbers that belong to no attack.
    """
    value = float(text) if isinstance(text, (int, float)) else _fraction_value(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _fraction_value(text: str) -> float:
    num, slash, den = text.partition("/")
    try:
        numerator, denominator = float(num), float(den) if slash else 1.0
    except ValueError:
        raise ValueError(f"{text!r} is not a number or a fraction like 8/255") from None
    if denominator == 0:
        raise ValueError(f"{text} has a zero denominator")
    return numerator / denominator


# ---- leaf types ------------------------------------------------------------------------------
# Strict: a quoted "true" or a number where text goes is a mistake in a profile, not a value to
# convert. A float accepts an integer (`lr = 1`) and stores it as a float.


def leaf(kind: Any, allowed: str, *checks: Any, **bounds: Any) -> Any:
    """`kind` within pydantic's `bounds`, after `checks`; any error says it is not `allowed`."""
    return Annotated[(kind, *checks, Field(**bounds), rule(allowed))]


def _fraction(value: Any) -> Any:
    """A budget as written, "8/255" or a number, as a float (`parse_fraction`)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value  # the strict float rejects it
    try:
        return parse_fraction(value)
    except (ZeroDivisionError, OverflowError) as err:
        raise ValueError(str(err)) from None


Boolean = leaf(StrictBool, "true or false (a TOML boolean, unquoted)")
Text = leaf(StrictStr, "a string")
Count = leaf(StrictInt, "an integer >= 1", ge=1)
Seed = leaf(StrictInt, "an integer >= 0", ge=0)
Severity = leaf(StrictInt, "an integer in 1..5", ge=1, le=5)
Classes = leaf(StrictInt, "an integer >= 2", ge=2)  # classes an attack considers
Positive = leaf(StrictFloat, "a number > 0", gt=0, allow_inf_nan=False)
NonNegative = leaf(StrictFloat, "a number >= 0", ge=0, allow_inf_nan=False)
Probability = leaf(StrictFloat, "a number in [0, 1]", ge=0, le=1, allow_inf_nan=False)
Rate = leaf(StrictFloat, "a number in (0, 1)", gt=0, lt=1, allow_inf_nan=False)
# An L∞ budget.
Budget = leaf(
    StrictFloat,
    'a budget in (0, 1]: a fraction like "8/255" or a number',
    BeforeValidator(_fraction),
    gt=0,
    le=1,
)


def accepted(kind: Any) -> str:
    """What a numeric leaf type accepts, from the bounds pydantic checks it against:
    `an integer >= 1`, `a number in (0, 1]`."""
    noun = "an integer" if kind.__origin__ is int else "a number"
    limits = {
        key: getattr(bound, key)
        for meta in kind.__metadata__
        for bound in getattr(meta, "metadata", ())
        for key in ("gt", "ge", "lt", "le")
        if hasattr(bound, key)
    }
    low, high = limits.get("gt", limits.get("ge")), limits.get("lt", limits.get("le"))
    low_open, high_open = "gt" in limits, "lt" in limits
    if low is None:  # no bounds (true or false, text): the words its rule declares
        return next(m.func.allowed for m in kind.__metadata__ if hasattr(m, "func"))
    if high is None:
        return f"{noun} {'>' if low_open else '>='} {low:g}"
    return f"{noun} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def from_text(kind: Any, text: str) -> Any:
    """A value of a numeric leaf type written as text (a flag, an `--option`): an integer one
    from whole-number text, a real one from a number or a fraction like `8/255`; ValueError
    saying what `kind` accepts."""
    integer, words = kind.__origin__ is int, accepted(kind)
    shown = text if text.strip() else repr(text)  # a blank would read as a missing word
    try:
        value = int(text) if integer else parse_fraction(text)
    except ValueError as err:
        raise ValueError(
            f"{shown} is not {words}" if integer else f"{err}; expected {words}"
        ) from None
    try:
        return adapter(kind).validate_python(value)
    except ValidationError:
        raise ValueError(f"{shown} is not {words}") from None


def doc(kind: Any, description: str, *checks: Any) -> Any:
    """`kind` (then `checks`), with what the key means as pydantic's field description."""
    return Annotated[(kind, Field(description=description), *checks)]


@functools.cache
def adapter(kind: Any) -> TypeAdapter:
    return TypeAdapter(kind)


# ---- settings declared once ------------------------------------------------------------------


def setting(default: T, kind: Any = None, help: str = "") -> T:
    """A settings dataclass field: its `default`, its value type (`kind`, one of the leaf types;
    None for free text) and what it means (`help`). A command's flag for the field
    (`commands.common.settings_flags`) and a profile key of its name take both from here."""
    return field(default=default, metadata={"kind": kind, "help": help})


def kind_of(cls: type, name: str) -> Any:
    """Field `name` of settings class `cls` as a profile key's type: its kind, described."""
    declared = cls.__dataclass_fields__[name].metadata  # type: ignore[attr-defined]
    return doc(declared["kind"], declared["help"])
