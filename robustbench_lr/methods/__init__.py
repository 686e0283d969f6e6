"""Method registry: nlr, 1lr, 2lr, bottle-lr, snip, srn, sn, pgd-at, trades (each a `Method`)."""

from __future__ import annotations

from robustbench_lr.methods.adversarial import PGD_AT, TRADES
from robustbench_lr.methods.base import (
    Batch,
    Method,
    Objective,
    Option,
    PenaltyTerms,
    Progress,
    TrainContext,
)
from robustbench_lr.methods.lowrank import BOTTLE_LR, ONE_LR, TWO_LR
from robustbench_lr.methods.nlr import NLR
from robustbench_lr.methods.sn import SN
from robustbench_lr.methods.snip import SNIP
from robustbench_lr.methods.srn import SRN
from robustbench_lr.registry import Registry

METHODS: Registry[Method] = Registry("method")
for _method in (NLR, ONE_LR, TWO_LR, BOTTLE_LR, SNIP, SRN, SN, PGD_AT, TRADES):
    METHODS.add(_method.name, _method)


def all_options() -> list[Option]:
    """Every option of every method, once per name (methods may share options)."""
    seen: dict[str, Option] = {}
    for name in METHODS:
        for option in METHODS[name].options:
            seen.setdefault(option.name, option)
    return list(seen.values())


__all__ = [
    "METHODS",
    "Batch",
    "Method",
    "Objective",
    "Option",
    "PenaltyTerms",
    "Progress",
    "TrainContext",
    "all_options",
]
