"""The schema's building blocks on pydantic: the leaf types only a profile has (the shared ones,
with the command line, are `robustbench_lr.settings`), the `Table` base every profile table
derives from, and the translator from pydantic's ValidationError to the one line a bad profile
gets.

pydantic does the checking (types, bounds, patterns); the wrappers here only reword its errors,
because a profile's author should read `attacks.ifsgm_eps[1] = '2' is not a budget in (0, 1]`,
not a multi-line report. Registry names are looked up when a value is checked, so a name registered
after the schema was built counts.
"""

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs, InitErrorDetails

from robustbench_lr.data import dataset_names
from robustbench_lr.registry import UnknownNameError, unknown_name
from robustbench_lr.settings import MESSAGES, error, leaf, rule


def _allowed(kind: Any) -> str:
    """What a type made with `rule` (or a `Table`) accepts, in words."""
    if isinstance(kind, type) and issubclass(kind, Table):
        return kind.allowed
    wraps = [m.func for m in kind.__metadata__ if isinstance(m, WrapValidator)]
    return wraps[-1].allowed  # the outermost


# ---- leaf types only a profile has ---------------------------------------------------------

# The profile's name names its report folder (`reports/<name>`).
FileName = leaf(
    StrictStr,
    "a name of 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit",
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
)
_Finite = Annotated[StrictFloat, Field(allow_inf_nan=False)]
# A `--option KEY=VALUE` value, as the text the analysis parses.
TextOrNumber = leaf(
    StrictStr | StrictInt | _Finite, "a string or a finite number", AfterValidator(str)
)
# A value `selects` compares with `str(getattr(cfg, field))`.
SelectorValue = leaf(
    StrictBool | StrictStr | StrictInt | _Finite,
    "a string, a number or a boolean",
    AfterValidator(str),
)


def items(item: Any, *, nonempty: bool = True, unique: bool = False) -> Any:
    """A TOML array whose items are each an `item`, as a tuple.

    The list's own faults (not a TOML array: pydantic alone would also take a set; empty;
    repeated items) are raised as `is not <allowed>` by its checks, with no rewording layer
    around the list: pydantic then calls the item's checks straight from the table's, and an
    item's error stays the item's."""
    size, distinct = "non-empty " if nonempty else "", "distinct " if unique else ""
    allowed = f"a {size}list of {distinct}items, each {_allowed(item)}"

    def listed(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise error("not_allowed", allowed=allowed)
        return value

    def whole(values: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(values) < nonempty or (unique and len(set(values)) < len(values)):
            raise error("not_allowed", allowed=allowed)
        return values

    return Annotated[tuple[item, ...], BeforeValidator(listed), AfterValidator(whole)]


# ---- registry names: looked up when a profile is checked -------------------------------------


def check_name(kind: str, value: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    if value not in valid:
        raise error("unknown_name", text=unknown_name(kind, value, valid))
    return value


def name_of(kind: str, names: Iterable[str]) -> Any:
    """A string among `names` (a registry: read when a value is checked, so a name registered
    later counts); an unknown one keeps the registries' UnknownNameError."""
    return Annotated[
        StrictStr,
        AfterValidator(lambda value: check_name(kind, value, names)),
        rule(f"a string (one of the {kind} names)"),
    ]


def _dataset(value: str) -> str:
    """A registered dataset, or a user's own archive `npz:PATH` (checked when loaded)."""
    if value.startswith("npz:") and len(value) > 4:
        return value
    return check_name("dataset", value, dataset_names())


Dataset = Annotated[StrictStr, AfterValidator(_dataset), rule('a dataset name or "npz:PATH"')]


# ---- tables ----------------------------------------------------------------------------------


class Table:
    """Base of every profile table (a frozen pydantic dataclass with `extra="forbid"`): a value
    that is not a table, an unknown key (with the closest valid one) and a missing key each
    get their error in words. `names` marks tables whose keys are registry names."""

    noun: ClassVar[str] = "key"
    allowed: ClassVar[str] = "a table"
    names: ClassVar[bool] = False

    @model_validator(mode="wrap")
    @classmethod
    def _as_table(cls, value: Any, handler: Callable[[Any], Any]) -> Any:
        # ArgsKwargs: the dataclass built in code, `AttackGrid(curves=True)`.
        if not isinstance(value, (dict, ArgsKwargs, cls)):
            raise error("not_allowed", allowed=cls.allowed)
        try:
            return handler(value)
        except ValidationError as err:
            details = [cls._reworded(e) for e in err.errors()]
            raise ValidationError.from_exception_data(cls.__name__, details) from None

    @classmethod
    def _reworded(cls, e: Any) -> InitErrorDetails:
        kind, ctx = e["type"], e.get("ctx", {})
        if kind in ("extra_forbidden", "unexpected_keyword_argument") and len(e["loc"]) == 1:
            kind, ctx = "unknown_key", {"noun": cls.noun, "valid": cls.keys(), "names": cls.names}
        elif kind in ("missing", "missing_argument", "missing_keyword_argument"):
            kind, ctx = "missing_key", {"noun": cls.noun}
        elif kind not in MESSAGES:
            kind, ctx = "pydantic", {"text": e["msg"]}
        return InitErrorDetails(type=error(kind, **ctx), loc=e["loc"], input=e["input"])

    @classmethod
    def keys(cls) -> list[str]:
        return list(cls.__pydantic_fields__)  # type: ignore[attr-defined]


# Every table is a frozen pydantic dataclass (dataclasses.replace and fields work on the grids);
# its validator is built on first use, not with this module.
table = dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid", defer_build=True))


def dynamic_table(name: str, kinds: dict[str, Any], noun: str, base: type = Table) -> type:
    """A table whose keys, each optional, are known only when a profile is checked or are
    declared elsewhere (`kinds`), after the keys of `base`."""
    namespace = {"__annotations__": {k: v | None for k, v in kinds.items()}, "noun": noun}
    return table(type(name, (base,), {**namespace, **dict.fromkeys(kinds)}))


def fail(kind: str, value: Any, loc: tuple[Any, ...] = (), **ctx: Any) -> ValidationError:
    """An error at `loc` below the value being checked (pydantic prefixes the outer path)."""
    detail = InitErrorDetails(type=error(kind, **ctx), loc=loc, input=value)
    return ValidationError.from_exception_data("profile", [detail])


@contextmanager
def within(key: Any) -> Iterator[None]:
    """Errors raised inside, one level down: at `key` of the table being checked."""
    try:
        yield
    except ValidationError as err:
        details = [
            InitErrorDetails(
                type=error(e["type"], **e.get("ctx", {})), loc=(key, *e["loc"]), input=e["input"]
            )
            for e in err.errors()
        ]
        raise ValidationError.from_exception_data("profile", details) from None


def given(parsed: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """The keys `raw` set, with their checked values, in the order written."""
    return {key: getattr(parsed, key) for key in raw}


# ---- from pydantic's errors to one line ------------------------------------------------------


def _show(value: Any) -> str:
    """The offending value as it appears in an error (repr escapes newlines: one line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: Any) -> str:
    """`path.key` or `path[i]`, quoting a key that TOML would quote (and escaping newlines)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    part = text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text)
    return f"{path}.{part}" if path else part


def path_of(loc: Iterable[Any]) -> str:
    return functools.reduce(_join, loc, "")


def _position(raw: Any, loc: tuple[Any, ...]) -> list[int]:
    """Where `loc` comes in a depth-first walk of `raw` in the order it was written, a missing
    key after the keys given: the error reported is the first one an author reading the
    file would reach."""
    position, node = [], raw
    for key in loc:
        if isinstance(node, dict):
            keys = list(node)
            position.append(keys.index(key) if key in node else len(keys))
        elif isinstance(node, (list, tuple)) and isinstance(key, int) and key < len(node):
            position.append(key)
        else:
            break
        node = node[key] if position[-1] < len(node) else None
    return position


def one_line(err: ValidationError, raw: Any) -> tuple[type[Exception], str]:
    """The error type and the one-line message (without the source) for `err`'s first error."""
    first = min(err.errors(), key=lambda e: _position(raw, e["loc"]))
    kind, ctx, loc = first["type"], first.get("ctx", {}), first["loc"]
    table = path_of(loc[:-1])
    where = f"in [{table}]" if table else "at the top level"
    named = kind == "unknown_name" or (kind == "unknown_key" and ctx["names"])
    unknown = unknown_name(ctx.get("noun", ""), loc[-1] if loc else "", ctx.get("valid", ()), where)
    message = MESSAGES.get(kind, MESSAGES["pydantic"]).format(
        **{"text": first["msg"], **ctx},
        path=path_of(loc) or "the profile",
        value=_show(first["input"]),
        where=where,
        key=loc[-1] if loc else "",
        unknown=unknown,
    )
    return (UnknownNameError if named else ValueError), message
