"""Bench profiles: TOML files naming the models to train and the experiments to run on them.

Shipped profiles live beside this file (`smoke`, `cpu`, `paper`, `paper-fast`); a user's own
is passed by path. A profile is checked against a schema before any work starts, because a
typo that parses (`ifsgm_epss = [...]`, `blackbox = "false"`) would otherwise run hours of the
bench on defaults: every key at every level is known or rejected with the closest valid name,
every value is type- and range-checked, and every name is looked up in its registry. Each error
is one line, `profile <source>: <key path> ...`: a ValueError, or the registries'
UnknownNameError for an unknown name.

The schema is the `Table`s of `schema.py` (key -> rule, built from `rules.py`). Defaults are
not in it: a key left out keeps its dataclass default (`model.py`: `AttackGrid`, `Profile`;
`TrainConfig`), so each default lives in one place. `loading.py` reads and builds.
"""

from __future__ import annotations

from robustbench_lr.profiles.loading import load_profile, parse_profile
from robustbench_lr.profiles.model import (
    BLACKBOX_PROTOCOLS,
    AttackGrid,
    BlackBoxProtocol,
    CorruptionGrid,
    L2Grid,
    Profile,
    ShiftGrid,
    selects,
    shipped_profiles,
)
from robustbench_lr.profiles.schema import AUDIT_OPTIONS, MINRHO_OPTIONS_TABLE, PROFILE_TABLE

__all__ = [
    "AUDIT_OPTIONS",
    "BLACKBOX_PROTOCOLS",
    "MINRHO_OPTIONS_TABLE",
    "PROFILE_TABLE",
    "AttackGrid",
    "BlackBoxProtocol",
    "CorruptionGrid",
    "L2Grid",
    "Profile",
    "ShiftGrid",
    "load_profile",
    "parse_profile",
    "selects",
    "shipped_profiles",
]
