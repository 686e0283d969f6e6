"""The profile schema: every table and key a profile may hold, each with its rule.

Defaults are not in it: a key left out keeps its dataclass default (`model.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from robustbench_lr.config import TrainConfig
from robustbench_lr.profiles.model import BLACKBOX_PROTOCOLS
from robustbench_lr.profiles.rules import (
    ANALYSIS,
    ARCH,
    BOOLEAN,
    BUDGET,
    DATASET,
    FILE_NAME,
    METHOD,
    MINRHO_ATTACK,
    SELECTOR_VALUE,
    TABLE,
    TEXT,
    TEXT_OR_NUMBER,
    ListOf,
    Rule,
    Table,
    _Bad,
    _deepfool_backends,
    _integer,
    _never,
    _number,
    _one_of,
    _option,
    _Rejected,
)

if TYPE_CHECKING:  # the registries are imported when a profile is parsed, not with this module
    pass


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


def _external_check(allowed: str, check: str) -> Rule:
    """A string that `external.<check>` accepts (its ValueError rejects it): an external entry's
    factory and name pass the checks their command-line flags pass. `external` imports torch,
    so it is looked up when a profile is parsed, not when this module is imported."""

    def convert(value: Any) -> str:
        from robustbench_lr import external

        if not isinstance(value, str):
            raise _Bad()
        try:
            return getattr(external, check)(value)
        except ValueError:
            raise _Bad() from None

    return Rule(allowed, convert)


def _zoo_threats() -> tuple[str, ...]:
    from robustbench_lr.external import THREATS

    return THREATS


MODEL_NAME = _external_check("a name of 1-64 letters, digits, '.', '_' or '-'", "check_name")
# What an external entry shares: its name in result rows, its data, the tap analyses read.
_EXTERNAL_COMMON = {"name": MODEL_NAME, "dataset": DATASET, "tap": TEXT}
EXTERNAL_ENTRY = Table(
    {
        "external": Table(
            {
                # `MODULE:FACTORY` as written; it is imported when the model is loaded, not here.
                "factory": _external_check(
                    '"MODULE:FACTORY" (e.g. "mypkg.models:build")', "check_factory"
                ),
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
