"""Bench profiles: TOML files naming the models to train and the experiments to run on them.

Shipped profiles live beside this file (`smoke`, `cpu`, `paper`, `paper-fast`); a user's own
is passed by path. A profile is checked against a schema before any work starts, because a
typo that parses (`ifsgm_epss = [...]`, `blackbox = "false"`) would otherwise run hours of the
bench on defaults: every key at every level is known or rejected with the closest valid name,
every value is type- and range-checked, and every name is looked up in its registry. Each error
is one line, `profile <source>: <key path> ...`: a ValueError, or the registries'
UnknownNameError for an unknown name.

`schema.py` declares every key once, on pydantic: its type, default, bound and meaning (a
training key left out keeps `TrainConfig`'s default). The value types are
`robustbench_lr.settings`', shared with the command line's flags; `rules.py` holds the
profile-only ones and turns pydantic's errors into that one line; `model.py` is the parsed `Profile`; `loading.py`
reads and builds.
"""

from __future__ import annotations

from robustbench_lr.profiles.loading import load_profile, parse_profile
from robustbench_lr.profiles.model import Profile, selects, shipped_profiles
from robustbench_lr.profiles.schema import AUDIT_OPTIONS, AttackGrid, MinrhoOptions

__all__ = [
    "AUDIT_OPTIONS",
    "AttackGrid",
    "MinrhoOptions",
    "Profile",
    "load_profile",
    "parse_profile",
    "selects",
    "shipped_profiles",
]
