"""Bench profiles: TOML files naming the models to train and the experiments to run on them.

Shipped profiles live beside this file (`smoke`, `cpu`, `paper`, `paper-fast`); a user's own
is passed by path. A profile is checked against a schema before any work starts, because a
typo that parses (`ifsgm_epss = [...]`, `blackbox = "false"`) would otherwise run hours of the
bench on defaults: every key at every level is known or rejected with the closest valid name,
every value is type- and range-checked, and every name is looked up in its registry. Each error
is one line, `profile <source>: <key path> ...`: a ValueError, or the registries'
UnknownNameError for an unknown name.

The schema is the `Table`s below (key -> rule). Defaults are not in it: a key left out keeps
its dataclass default (`AttackGrid`, `Profile`, `TrainConfig`), so each default lives in one
place.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from robustbench_lr.config import TrainConfig, parse_fraction
from robustbench_lr.registry import UnknownNameError
from robustbench_lr.registry import unknown_name as _unknown

if TYPE_CHECKING:  # the registries are imported when a profile is parsed, not with this module
    from robustbench_lr.external import ExternalModelSpec
    from robustbench_lr.methods import Option


@dataclass(frozen=True)
class AttackGrid:
    """Which attacks the bench runs on every model (SPEC §3)."""

    ifsgm_eps: tuple[float, ...] = (8 / 255,)
    ifsgm_steps: tuple[int, ...] = (7, 20)
    blackbox: bool = True
    # The method whose model of the same dataset, arch and width crafts the black-box examples
    # (the paper: "the N-LR model of the same architecture"), and which seed of it
    # (`BLACKBOX_PROTOCOLS`): by default another seed than the attacked model's.
    blackbox_source: str = "nlr"
    blackbox_protocol: str = "independent"
    noise_p: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)
    noise_draws: int = 1
    minrho: tuple[str, ...] = ()
    minrho_n: int = 200
    # The search's own knobs (`robustbench-lr minrho` flags); the paper's D.3 uses α = 1/255.
    minrho_options: dict[str, Any] = field(default_factory=dict)
    # Which models get the searches, as TrainConfig field -> allowed values (empty: every model).
    # The paper's Tables 3 and 10 are ResNet18 only; the searches are the bench's costliest stage.
    minrho_only: dict[str, tuple[str, ...]] = field(default_factory=dict)
    curves: bool = False
    curve_eps: float = 8 / 255  # budget of the instantaneous/cumulative curves (Fig. 11)
    square_queries: int = 1000


@dataclass(frozen=True)
class CorruptionGrid:
    """The common-corruptions track (`experiments.corruption`): off unless `enabled`; `source`
    `generate` corrupts each model's test subset, `files` reads CIFAR-10-C / CIFAR-100-C under
    --data-root; empty `corruptions` / `severities` mean all 15 / all 5; `n` None: profile n;
    `datasets` restricts the track to those datasets' models (empty: every model)."""

    enabled: bool = False
    source: str = "generate"
    n: int | None = None
    seed: int = 0
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class L2Grid:
    """The L2 track (`attacks.l2`): off unless `enabled`; each model of `datasets` (empty:
    every model) under `pgd-l2` (`pgd_steps`) and the authors' AutoAttack at L2 (`steps`
    APGD/FAB iterations, `targets`, `queries`), on `n` images (None: profile n), at its
    dataset's L2 ε (`data.l2_eps`). `audit`: also the gradient-masking audit in the L2 ball
    (`robustbench-lr audit --norm L2`) at these budgets; off by default, as it costs about
    as much as the L∞ audit."""

    enabled: bool = False
    audit: bool = False
    n: int | None = None
    pgd_steps: int = 20
    steps: int = 100
    targets: int = 9
    queries: int = 5000
    datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShiftGrid:
    """Natural distribution shifts (`shifts.py`): off unless `enabled`; the models of each
    shift's own dataset (and of `datasets`, when given) on `n` images (None: profile n) of
    every set in `shifts`, read under --data-root."""

    enabled: bool = False
    shifts: tuple[str, ...] = ("cifar10.1",)
    n: int | None = None
    datasets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """A parsed profile: the training configs and the experiment settings."""

    name: str
    description: str = ""
    models: tuple[TrainConfig, ...] = ()
    # `[[models]]` entries naming a model the bench does not train: `external = {...}` (your
    # factory and weights) or `robustbench = {...}` (a zoo entry); `external.load_external_target`
    # loads each.
    external_models: tuple[ExternalModelSpec, ...] = ()
    n: int = 500
    attacks: AttackGrid = field(default_factory=AttackGrid)
    analyses: tuple[str, ...] = ()
    audit: bool = False
    audit_n: int = 200
    audit_eps: float = 8 / 255
    # The `[audit]` budget keys the profile set, as `AuditOptions` field -> value (each is the
    # `robustbench-lr audit --<field with dashes>` flag); the others keep AuditOptions' defaults.
    audit_options: dict[str, int] = field(default_factory=dict)
    # `--option KEY=VALUE` pairs handed to every analysis (e.g. the attacks' eps for Table 6).
    analysis_options: dict[str, str] = field(default_factory=dict)
    # Table 6's N-LR protocol (D.5): the black-box source's model is attacked until this
    # method's model of the same dataset, arch, width and seed is fooled.
    matched_partner: str = "1lr"
    tables: tuple[str, ...] = ()
    source_path: str = ""
    corruptions: CorruptionGrid = field(default_factory=CorruptionGrid)
    l2: L2Grid = field(default_factory=L2Grid)
    shifts: ShiftGrid = field(default_factory=ShiftGrid)
    # Retrain every model under a perturbed code path (`perturbed.py`): its numerics spread.
    numerics_spread: bool = False

    def partner(self, cfg: TrainConfig, method: str) -> TrainConfig | None:
        """This profile's `method` model of the same dataset, arch, width and seed as `cfg`."""
        return _same_seed(cfg, self._relatives(cfg, method))

    def black_box_source(self, cfg: TrainConfig) -> TrainConfig | None:
        """The model black-box examples for `cfg` are crafted on (`attacks.blackbox_protocol`),
        or None when that would be `cfg` itself (examples crafted on the attacked model are
        white-box, whatever a column says)."""
        relatives = self._relatives(cfg, self.attacks.blackbox_source)
        source = BLACKBOX_PROTOCOLS[self.attacks.blackbox_protocol].pick(cfg, relatives)
        return source if source is not None and source != cfg else None

    def _relatives(self, cfg: TrainConfig, method: str) -> list[TrainConfig]:
        """The `method` models of `cfg`'s dataset, arch and width, by seed."""
        return sorted(
            (
                m
                for m in self.models
                if (m.method, m.dataset, m.arch, m.width)
                == (method, cfg.dataset, cfg.arch, cfg.width)
            ),
            key=lambda m: m.seed,
        )


def _same_seed(cfg: TrainConfig, relatives: list[TrainConfig]) -> TrainConfig | None:
    return next((m for m in relatives if m.seed == cfg.seed), None)


def _next_seed(cfg: TrainConfig, relatives: list[TrainConfig]) -> TrainConfig | None:
    """The source model with the next seed after `cfg`'s, cyclically (seeds 0, 1: 0 -> 1 and
    1 -> 0), never `cfg`'s own seed."""
    others = [m for m in relatives if m.seed != cfg.seed]
    return next((m for m in others if m.seed > cfg.seed), others[0] if others else None)


@dataclass(frozen=True)
class BlackBoxProtocol:
    """Which seed of the source method crafts a model's black-box examples, and why."""

    pick: Callable[[TrainConfig, list[TrainConfig]], TrainConfig | None]
    description: str


# Measured on CIFAR-10: examples crafted on N-LR seed 0 leave 2.0 % accuracy on 1-LR
# seed 0, which shares its initialization, data order and warm-up epochs, but 27.0 % when
# crafted on N-LR seed 1; same-seed transfer makes LR look weaker than it is. So the default is
# an independently seeded source, and every model (N-LR too) gets black-box rows: N-LR's are
# the N-LR -> N-LR control that tells "robust to transfer" from "a different model".
BLACKBOX_PROTOCOLS: dict[str, BlackBoxProtocol] = {
    "independent": BlackBoxProtocol(
        _next_seed, "crafted on an independently seeded model (the next seed of the source)"
    ),
    "same-seed": BlackBoxProtocol(
        _same_seed, "crafted on the source model of the same seed (the paper's protocol)"
    ),
}


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with the package."""
    return sorted(
        p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".toml")
    )


def selects(only: dict[str, tuple[str, ...]], cfg: TrainConfig) -> bool:
    """Whether `cfg` passes a selector such as `{"arch": ("resnet18",)}` (empty: everything)."""
    return all(str(getattr(cfg, key)) in values for key, values in only.items())


# ---- the schema's machinery ------------------------------------------------------------------


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


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad()
    return value


BOOLEAN = Rule("true or false (a TOML boolean, unquoted)", _boolean)


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


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad()
    return value


TEXT = Rule("a string", _text)


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


# ---- the schema ------------------------------------------------------------------------------

COUNT = _integer(1)
POSITIVE = _number("a number > 0", lambda v: v > 0)
PROBABILITY = _number("a number in [0, 1]", lambda v: 0 <= v <= 1)

# Training keys; a [[models]] group takes those it does not set from the top level.
TRAINING = {
    "dataset": DATASET,
    "epochs": COUNT,
    "lr": POSITIVE,
    "train_limit": COUNT,
    "test_limit": COUNT,
}


def _method_tables() -> dict[str, Table]:
    """[method_options.<method>]: each method's keys are its own options (methods/base.py)."""
    from robustbench_lr.methods import METHODS

    return {
        name: Table({o.name: _option(o) for o in METHODS[name].options}, noun="option")
        for name in METHODS
    }


METHOD_OPTIONS_TABLE = Table(_method_tables, noun="method", names=True)

GROUP_TABLE = Table(
    {
        **TRAINING,
        "arch": ARCH,
        "methods": ListOf(METHOD, unique=True),
        "seeds": ListOf(_integer(0), unique=True),
        "width": POSITIVE,
        "method_options": METHOD_OPTIONS_TABLE,
    },
    required=("arch", "methods"),
    allowed="a table ([[models]])",
)


def _factory(value: Any) -> str:
    """`MODULE:FACTORY` as written; it is imported when the model is loaded, not here."""
    from robustbench_lr.external import check_factory

    if not isinstance(value, str):
        raise _Bad()
    try:
        return check_factory(value)
    except ValueError:
        raise _Bad() from None


def _model_name(value: Any) -> str:
    from robustbench_lr.external import check_name

    if not isinstance(value, str):
        raise _Bad()
    try:
        return check_name(value)
    except ValueError:
        raise _Bad() from None


def _zoo_threats() -> tuple[str, ...]:
    from robustbench_lr.external import THREATS

    return THREATS


MODEL_NAME = Rule("a name of 1-64 letters, digits, '.', '_' or '-'", _model_name)
# What an external entry shares: its name in result rows, its data, the tap analyses read.
_EXTERNAL_COMMON = {"name": MODEL_NAME, "dataset": DATASET, "tap": TEXT}
EXTERNAL_ENTRY = Table(
    {
        "external": Table(
            {
                "factory": Rule('"MODULE:FACTORY" (e.g. "mypkg.models:build")', _factory),
                "weights": TEXT,
            },
            required=("factory",),
            allowed='a table such as { factory = "mypkg.models:build", weights = "w.safetensors" }',
        ),
        **_EXTERNAL_COMMON,
    },
    allowed="a table ([[models]])",
)
ZOO_ENTRY = Table(
    {
        "robustbench": Table(
            {
                "name": TEXT,
                "threat": _one_of("threat model", _zoo_threats),
                "model_dir": TEXT,
                "download": BOOLEAN,
            },
            required=("name",),
            allowed='a table such as { name = "Wong2020Fast", model_dir = "models" }',
        ),
        **_EXTERNAL_COMMON,
    },
    allowed="a table ([[models]])",
)
# The key that makes a [[models]] entry an external model instead of a training group.
EXTERNAL_KINDS = {"external": EXTERNAL_ENTRY, "robustbench": ZOO_ENTRY}


@dataclass(frozen=True)
class ModelEntry:
    """A `[[models]]` item: a training group, or one external model (`EXTERNAL_KINDS`)."""

    allowed: str = GROUP_TABLE.allowed

    def apply(self, value: Any, path: str) -> dict[str, Any]:
        kinds = [k for k in EXTERNAL_KINDS if isinstance(value, dict) and k in value]
        if len(kinds) > 1:
            raise _Rejected(f"{path}: an entry is external or robustbench, not both")
        return (EXTERNAL_KINDS[kinds[0]] if kinds else GROUP_TABLE).apply(value, path)


# The knobs of `experiments.minrho.Search` (= `minrho` flags) a profile may set; the bench sets
# the attacks, the subset and the per-sample curves itself.
MINRHO_OPTIONS_TABLE = Table(
    {
        "alpha": BUDGET,
        "max_steps": COUNT,
        "tol": BUDGET,
        "eps_max": BUDGET,
        "rate": _number("a number in (0, 1)", lambda v: 0 < v < 1),
        "backend": _one_of("deepfool backend", _deepfool_backends),
        "batch_size": COUNT,
    },
    noun="minrho option",
)

# A selector compares `str(getattr(cfg, field))` with the listed values (see `selects`).
SELECTOR_TABLE = Table(
    {
        **{
            name: ListOf(SELECTOR_VALUE)
            for name in TrainConfig.__dataclass_fields__
            if name != "method_options"
        },
        "dataset": ListOf(DATASET),
        "arch": ListOf(ARCH),
        "method": ListOf(METHOD),
    },
    noun="model field",
)

ATTACKS_TABLE = Table(
    {
        "ifsgm_eps": ListOf(BUDGET),
        "ifsgm_steps": ListOf(COUNT),
        "blackbox": BOOLEAN,
        "blackbox_source": METHOD,
        "blackbox_protocol": _one_of("black-box protocol", lambda: BLACKBOX_PROTOCOLS),
        "noise_p": ListOf(PROBABILITY),
        "noise_draws": COUNT,
        "minrho": ListOf(MINRHO_ATTACK, nonempty=False, unique=True),
        "minrho_n": COUNT,
        "minrho_options": MINRHO_OPTIONS_TABLE,
        "minrho_only": SELECTOR_TABLE,
        "curves": BOOLEAN,
        "curve_eps": BUDGET,
        "square_queries": COUNT,
    }
)

# Analysis options are free-form: each analysis reads its own (`AnalysisOptions.get`) and no
# one place declares them. `source` and `stop_on` are the bench's, set per model.
BENCH_SETS = Rule("allowed here: the bench sets it per model", _never)
ANALYSES_TABLE = Table(
    {
        "kinds": ListOf(ANALYSIS, nonempty=False, unique=True),
        "matched_partner": METHOD,
        "options": Table(
            {"source": BENCH_SETS, "stop_on": BENCH_SETS},
            noun="analysis option",
            any_key=TEXT_OR_NUMBER,
        ),
    }
)


def _corruption_names() -> list[str]:
    from robustbench_lr.corruptions import CORRUPTIONS

    return list(CORRUPTIONS)


CORRUPTIONS_TABLE = Table(
    {
        "enabled": BOOLEAN,
        "source": _one_of("corruption source", lambda: ("generate", "files")),
        "n": COUNT,
        "seed": _integer(0),
        "corruptions": ListOf(_one_of("corruption", _corruption_names), unique=True),
        "severities": ListOf(
            Rule(
                "an integer in 1..5",
                lambda v: _integer(1).convert(v) if v in range(1, 6) else _never(v),
            ),
            unique=True,
        ),
        "datasets": ListOf(DATASET, unique=True),
    }
)

# `AuditOptions` fields a profile may set besides n and eps: the battery's budget. The Square
# queries are `[attacks] square_queries`; the subset seed and batch size are the bench's.
AUDIT_OPTIONS = {
    "steps": COUNT,
    "targets": COUNT,
    "restarts": COUNT,
    "dlr_restarts": COUNT,
    "noise_draws": COUNT,
    "deepfool_steps": COUNT,
    "attack_seed": _integer(0),
}
AUDIT_TABLE = Table({"enabled": BOOLEAN, "n": COUNT, "eps": BUDGET, **AUDIT_OPTIONS})


def _shift_names() -> list[str]:
    from robustbench_lr.shifts import SHIFTS

    return list(SHIFTS)


SHIFTS_TABLE = Table(
    {
        "enabled": BOOLEAN,
        "shifts": ListOf(_one_of("distribution shift", _shift_names), unique=True),
        "n": COUNT,
        "datasets": ListOf(DATASET, unique=True),
    }
)

L2_TABLE = Table(
    {
        "enabled": BOOLEAN,
        "audit": BOOLEAN,
        "n": COUNT,
        "pgd_steps": COUNT,
        "steps": COUNT,
        "targets": COUNT,
        "queries": COUNT,
        "datasets": ListOf(DATASET, unique=True),
    }
)

PROFILE_TABLE = Table(
    {
        "name": FILE_NAME,
        "description": TEXT,
        **TRAINING,
        "n": COUNT,
        "models": ListOf(ModelEntry()),
        "method_options": METHOD_OPTIONS_TABLE,
        "attacks": ATTACKS_TABLE,
        "analyses": ANALYSES_TABLE,
        "audit": AUDIT_TABLE,
        "tables": ListOf(TABLE, nonempty=False, unique=True),
        "corruptions": CORRUPTIONS_TABLE,
        "l2": L2_TABLE,
        "shifts": SHIFTS_TABLE,
        "numerics_spread": BOOLEAN,
    },
    required=("name", "models"),
)


# ---- from checked tables to the dataclasses --------------------------------------------------


def _renamed(table: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The keys given in `table`, under their dataclass field names (absent: the default)."""
    return {name: table[key] for key, name in fields.items() if key in table}


def _group_configs(group: dict[str, Any], index: int, top: dict[str, Any]) -> list[TrainConfig]:
    """One TrainConfig per method and seed of a [[models]] group."""
    from robustbench_lr.methods import METHODS

    path = f"models[{index}]"
    own_options = group.get("method_options", {})
    stray = [m for m in own_options if m not in group["methods"]]
    if stray:
        raise _Rejected(
            f"{_join(_join(path, 'method_options'), stray[0])}: the group does not train "
            f"method {stray[0]!r} (its methods: {', '.join(group['methods'])})"
        )
    settings = {
        **_renamed(top, {key: key for key in TRAINING}),
        **_renamed(group, {key: key for key in (*TRAINING, "width")}),
    }
    configs = []
    for method in group["methods"]:
        # A group's own [models.method_options.<method>] overrides the profile's.
        given = {**top.get("method_options", {}).get(method, {}), **own_options.get(method, {})}
        options = METHODS.get(method).resolve(given)
        for seed in group.get("seeds", (TrainConfig.seed,)):
            configs.append(
                TrainConfig(
                    **settings,
                    arch=group["arch"],
                    method=method,
                    seed=seed,
                    method_options=options,
                )
            )
    return configs


def _models(top: dict[str, Any]) -> tuple[TrainConfig, ...]:
    """Every group's configs; two groups training one checkpoint folder are an error.

    The folder is told by the fields `config.checkpoint_dir` names it from (that function is
    not called: for an npz it reads the file, which a profile check must not need).
    """
    owner: dict[tuple[Any, ...], int] = {}
    configs = []
    for index, group in enumerate(top["models"]):
        if any(kind in group for kind in EXTERNAL_KINDS):
            continue
        for cfg in _group_configs(group, index, top):
            first = owner.setdefault(
                (cfg.dataset, cfg.arch, cfg.width, cfg.method, cfg.seed), index
            )
            if first != index:
                raise _Rejected(
                    f"models[{first}] and models[{index}] both train {cfg.method} {cfg.arch} "
                    f"width {cfg.width:g} seed {cfg.seed} on {cfg.dataset!r} (one checkpoint "
                    "folder; merge the groups or tell them apart)"
                )
            configs.append(cfg)
    return tuple(configs)


def _beside(folder: Path | None, name: str) -> str:
    """`name` read from `folder` when it is relative (and not empty); else as written."""
    if not name or folder is None or Path(name).is_absolute():
        return name
    return os.path.normpath(folder / name)


def _external_models(top: dict[str, Any], folder: Path | None) -> tuple[ExternalModelSpec, ...]:
    """One spec per external [[models]] entry; its dataset is its own, else the profile's.

    A relative `weights` or `model_dir` is read from the profile file's `folder`, as a file
    named in a config is expected to be, so a profile and the weights beside it work from any
    working directory (a profile built in code, with no folder: from the working directory).

    Two entries of one name would share every row column the name fills; a zoo entry must be
    of a dataset RobustBench has. Nothing is imported or read here: the factory, the weights
    and the zoo files are the loader's (`external.resolve`).
    """
    from robustbench_lr.external import DEFAULT_MODEL_DIR, ExternalModelSpec
    from robustbench_lr.zoo import DATASETS as ZOO_DATASETS

    specs: dict[str, tuple[int, ExternalModelSpec]] = {}
    for index, entry in enumerate(top["models"]):
        own, zoo = entry.get("external"), entry.get("robustbench")
        if own is None and zoo is None:
            continue
        dataset = entry.get("dataset", top.get("dataset", TrainConfig.dataset))
        common = {"dataset": dataset, "name": entry.get("name", ""), "tap": entry.get("tap", "")}
        if own is not None:
            weights = _beside(folder, own.get("weights", ""))
            spec = ExternalModelSpec(factory=own["factory"], weights=weights, **common)
        else:
            if dataset not in ZOO_DATASETS:
                raise _Rejected(
                    f"models[{index}]: dataset {dataset!r} has no RobustBench models; "
                    f"set dataset to one of {', '.join(ZOO_DATASETS)}"
                )
            spec = ExternalModelSpec(
                robustbench=zoo["name"],
                threat=zoo.get("threat", "Linf"),
                model_dir=_beside(folder, zoo.get("model_dir", DEFAULT_MODEL_DIR)),
                download=zoo.get("download", False),
                **common,
            )
        first, _ = specs.setdefault(spec.label, (index, spec))
        if first != index:
            raise _Rejected(
                f"models[{first}] and models[{index}] are both named {spec.label!r}; "
                'give one a name = "..."'
            )
    return tuple(spec for _, spec in specs.values())


def _attack_grid(attacks: dict[str, Any]) -> AttackGrid:
    return AttackGrid(**attacks)


def _check_black_box_sources(profile: Profile) -> None:
    """Every model has a black-box source under the profile's protocol, so no black-box table
    silently loses a row (the source model itself is exempt under the same-seed protocol)."""
    grid = profile.attacks
    if not grid.blackbox:
        return
    for cfg in profile.models:
        exempt = grid.blackbox_protocol == "same-seed" and cfg.method == grid.blackbox_source
        if not exempt and profile.black_box_source(cfg) is None:
            fix = (
                f"add another seed to the {grid.blackbox_source} model"
                if grid.blackbox_protocol == "independent"
                else f"add a {grid.blackbox_source} model of seed {cfg.seed}"
            )
            raise _Rejected(
                f"[attacks] blackbox_protocol = {grid.blackbox_protocol!r}: the {cfg.method} "
                f"model ({cfg.dataset}, {cfg.arch}, width {cfg.width}, seed {cfg.seed}) has no "
                f"{grid.blackbox_source} model to craft its black-box examples on; {fix}, or "
                "set blackbox = false"
            )


def parse_profile(raw: dict[str, Any], source: str, folder: Path | None = None) -> Profile:
    """Check a profile's parsed TOML against the schema and build the `Profile`.

    Raises a one-line ValueError (UnknownNameError for an unknown registry name) that starts
    with `profile <source>:`; nothing else, whatever `raw` holds.
    """
    try:
        top = PROFILE_TABLE.apply(raw, "")
        analyses, audit = top.get("analyses", {}), top.get("audit", {})
        profile = Profile(
            name=top["name"],
            models=_models(top),
            external_models=_external_models(top, folder),
            attacks=_attack_grid(top.get("attacks", {})),
            corruptions=CorruptionGrid(**top.get("corruptions", {})),
            l2=L2Grid(**top.get("l2", {})),
            shifts=ShiftGrid(**top.get("shifts", {})),
            source_path=source,
            **_renamed(
                top,
                {
                    "description": "description",
                    "n": "n",
                    "tables": "tables",
                    "numerics_spread": "numerics_spread",
                },
            ),
            **_renamed(
                analyses,
                {
                    "kinds": "analyses",
                    "options": "analysis_options",
                    "matched_partner": "matched_partner",
                },
            ),
            **_renamed(audit, {"enabled": "audit", "n": "audit_n", "eps": "audit_eps"}),
            audit_options={key: audit[key] for key in AUDIT_OPTIONS if key in audit},
        )
        _check_black_box_sources(profile)
        return profile
    except _Rejected as err:
        kind = UnknownNameError if err.unknown_name else ValueError
        raise kind(" ".join(f"profile {source}: {err.message}".splitlines())) from None


def _read(name_or_path: str) -> tuple[str, str, Path]:
    """The TOML text of a shipped profile or a file, the source to name in errors, and the
    folder its relative file names are read from (`_external_models`)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"profile file {path} does not exist")
        return path.read_text(), str(path), path.parent
    if name_or_path not in shipped_profiles():
        raise ValueError(
            f"unknown profile {name_or_path!r}; valid choices: {', '.join(shipped_profiles())} or a path to a .toml file"
        )
    folder = resources.files(__name__)
    text = folder.joinpath(f"{name_or_path}.toml").read_text()
    return text, f"robustbench_lr/profiles/{name_or_path}.toml", Path(str(folder))


def load_profile(name_or_path: str) -> Profile:
    """Parse and validate a profile by shipped name or path (see the module docstring)."""
    text, source, folder = _read(name_or_path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(
            " ".join(f"profile {source}: not valid TOML: {err}".splitlines())
        ) from None
    return parse_profile(raw, source, folder)
