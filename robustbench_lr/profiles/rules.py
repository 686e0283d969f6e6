"""The schema's machinery: rules, lists and tables that check a TOML value and say in one
line what was wrong, where, and the closest valid name.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from robustbench_lr.config import parse_fraction
from robustbench_lr.registry import UnknownNameError
from robustbench_lr.registry import unknown_name as _unknown

if TYPE_CHECKING:  # the registries are imported when a profile is parsed, not with this module
    from robustbench_lr.methods import Option


class _Bad(Exception):
    """A leaf value broke its rule; `Rule.apply` adds the key path and the value.

    `detail` is a foreign parser's own explanation (a method option's); `unknown_name` marks
    an unknown registry name, which keeps the registries' error type.
    """

    def __init__(self, detail: str = "", unknown_name: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.unknown_name = unknown_name


class _Rejected(Exception):
    """A profile error with its key path; `parse_profile` prefixes the source."""

    def __init__(self, message: str, unknown_name: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unknown_name = unknown_name


def _show(value: Any) -> str:
    """The offending value as it appears in an error (repr escapes newlines: one line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: Any) -> str:
    """`path.key`, quoting a key that TOML would have to quote (and escaping any newline)."""
    text = str(key)
    part = text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text)
    return f"{path}.{part}" if path else part


def _where(path: str) -> str:
    return f"in [{path}]" if path else "at the top level"


@dataclass(frozen=True)
class Rule:
    """A leaf value's rule: `convert` returns the parsed value or raises `_Bad`."""

    allowed: str  # what the rule accepts, completing "<path> = <value> is not ..."
    convert: Callable[[Any], Any]

    def apply(self, value: Any, path: str) -> Any:
        try:
            return self.convert(value)
        except _Bad as bad:
            if bad.unknown_name:
                raise _Rejected(f"{path}: {bad.detail}", unknown_name=True) from None
            if bad.detail:
                message = f"{path} = {_show(value)} is invalid: {bad.detail}"
            else:
                message = f"{path} = {_show(value)} is not {self.allowed}"
            raise _Rejected(message) from None


@dataclass(frozen=True)
class ListOf:
    """A TOML array whose items each follow `item`; returned as a tuple."""

    item: Rule | Table
    nonempty: bool = True
    unique: bool = False

    @property
    def allowed(self) -> str:
        size = "non-empty " if self.nonempty else ""
        distinct = "distinct " if self.unique else ""
        return f"a {size}list of {distinct}items, each {self.item.allowed}"

    def apply(self, value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list) or (self.nonempty and not value):
            raise _Rejected(f"{path} = {_show(value)} is not {self.allowed}")
        items = tuple(self.item.apply(v, f"{path}[{i}]") for i, v in enumerate(value))
        if self.unique and len(set(items)) < len(items):
            raise _Rejected(f"{path} = {_show(value)} is not {self.allowed}")
        return items


@dataclass(frozen=True)
class Table:
    """A TOML table: its known keys and their rules; any other key is an error.

    `keys` may be a function, for tables whose keys come from a registry (imported on first
    use). `any_key` makes a free-form table: keys not in `keys` follow that rule. `names`
    marks keys that are registry names, whose errors keep the registries' UnknownNameError.
    """

    keys: Mapping[str, Rule | ListOf | Table] | Callable[[], Mapping[str, Rule | Table]]
    required: tuple[str, ...] = ()
    noun: str = "key"
    any_key: Rule | None = None
    names: bool = False
    allowed: str = "a table"

    def apply(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Rejected(f"{path or 'the profile'} = {_show(value)} is not {self.allowed}")
        keys = self.keys() if callable(self.keys) else self.keys
        parsed = {}
        for key, item in value.items():
            rule = keys.get(key, self.any_key)
            if rule is None:
                message = _unknown(self.noun, key, list(keys), _where(path))
                raise _Rejected(message, unknown_name=self.names)
            parsed[key] = rule.apply(item, _join(path, key))
        for key in self.required:
            if key not in value:
                raise _Rejected(f"missing required {self.noun} {key!r} {_where(path)}")
        return parsed


# ---- leaf rules ------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A number that is not nan or ±inf (any int is: `math.isfinite` would overflow on some)."""
    return _is_number(value) and (isinstance(value, int) or math.isfinite(value))


def _typed(kind: type, allowed: str) -> Rule:
    """A value TOML already parsed as `kind`, kept as written: a quoted "true" or a number where
    text goes is a mistake in the file, not a value to convert."""

    def convert(value: Any) -> Any:
        if not isinstance(value, kind):
            raise _Bad()
        return value

    return Rule(allowed, convert)


BOOLEAN = _typed(bool, "true or false (a TOML boolean, unquoted)")
TEXT = _typed(str, "a string")


def _integer(low: int) -> Rule:
    """A TOML integer >= `low` (a float or a string is a mistake, not a count)."""

    def convert(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise _Bad()
        return value

    return Rule(f"an integer >= {low}", convert)


def _number(allowed: str, ok: Callable[[float], bool]) -> Rule:
    """A finite TOML number with `ok(value)`, as a float."""

    def convert(value: Any) -> float:
        if not _is_number(value):
            raise _Bad()
        try:
            number = float(value)
        except OverflowError:
            raise _Bad() from None
        if not (math.isfinite(number) and ok(number)):
            raise _Bad()
        return number

    return Rule(allowed, convert)


def _budget(value: Any) -> float:
    """An L∞ budget: a fraction like "8/255" or a number (`config.parse_fraction`), in (0, 1]."""
    if not (isinstance(value, str) or _is_number(value)):
        raise _Bad()
    try:
        eps = parse_fraction(value)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise _Bad() from None
    if not 0 < eps <= 1:
        raise _Bad()
    return eps


BUDGET = Rule('a budget in (0, 1]: a fraction like "8/255" or a number', _budget)


def _file_name(value: Any) -> str:
    """The profile's name names its report folder (`reports/<name>`)."""
    if not (isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value)):
        raise _Bad()
    return value


FILE_NAME = Rule(
    "a name of 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit",
    _file_name,
)


def _text_or_number(value: Any) -> str:
    """A `--option KEY=VALUE` value, as the text the analysis parses."""
    if not (isinstance(value, str) or _is_finite(value)):
        raise _Bad()
    return str(value)


TEXT_OR_NUMBER = Rule("a string or a finite number", _text_or_number)


def _selector_value(value: Any) -> str:
    """A value `selects` compares with `str(getattr(cfg, field))`."""
    if isinstance(value, bool):
        return str(value)
    return _text_or_number(value)


SELECTOR_VALUE = Rule("a string, a number or a boolean", _selector_value)


def _never(value: Any) -> Any:
    raise _Bad()


def _one_of(kind: str, names: Callable[[], Iterable[str]]) -> Rule:
    """A name among `names()` (looked up on use: the registries import torch)."""

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad()
        valid = list(names())
        if value not in valid:
            raise _Bad(_unknown(kind, value, valid), unknown_name=True)
        return value

    return Rule(f"a string (one of the {kind} names)", convert)


def _registered(module: str, registry: str) -> Callable[[], list[str]]:
    """The names in `module.registry`, imported on first use."""
    return lambda: getattr(importlib.import_module(module), registry).names()


def _deepfool_backends() -> list[str]:
    from robustbench_lr.attacks import ATTACKS

    return list(ATTACKS.get("deepfool").backends)


ARCH = _one_of("architecture", _registered("robustbench_lr.models", "ARCHS"))
METHOD = _one_of("method", _registered("robustbench_lr.methods", "METHODS"))
ANALYSIS = _one_of("analysis", _registered("robustbench_lr.analysis", "ANALYSES"))
TABLE = _one_of("table", _registered("robustbench_lr.tables", "TABLES"))
MINRHO_ATTACK = _one_of("minrho attack", _registered("robustbench_lr.attacks.search", "SEARCHES"))


def _dataset_names() -> list[str]:
    from robustbench_lr.data import dataset_names

    return dataset_names()


DATASET_NAME = _one_of("dataset", _dataset_names)


def _dataset(value: Any) -> str:
    """A registered dataset or a user's own archive, `npz:PATH` (checked when loaded)."""
    if isinstance(value, str) and value.startswith("npz:") and len(value) > 4:
        return value
    return DATASET_NAME.convert(value)


DATASET = Rule('a dataset name or "npz:PATH"', _dataset)


def _option(option: Option) -> Rule:
    """A method option, checked by the method's own parser; kept as written for `resolve`."""

    def convert(value: Any) -> Any:
        if not (isinstance(value, str) or _is_number(value)):
            raise _Bad()
        try:
            option.type(value)
        except UnknownNameError as err:
            raise _Bad(str(err), unknown_name=True) from None
        except (ValueError, TypeError, OverflowError) as err:
            raise _Bad(str(err) or f"not a value {option.flag} takes") from None
        return value

    return Rule(f"a string or a number that {option.flag} takes", convert)
