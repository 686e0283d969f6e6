"""The settings of one audit: its threat, the ε it is run at and the budget of every attack in
its battery."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from robustbench_lr.attacks import DEFAULT_BATCH
from robustbench_lr.audit.threats import DEFAULT_EPS, THREATS
from robustbench_lr.data import DATASETS
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.settings import Count, Seed, setting

__all__ = ["BUDGET", "COUNTS", "DEFAULT_EPS", "AuditOptions", "audit_eps_by_dataset", "default_eps"]


def default_eps(dataset: str, threat: str = "Linf") -> float:
    """The ε a dataset is audited at under `threat`: L∞ `threats.linf_eps`, L2 the L2 track's
    (`data.l2_eps`: digits 0.289, else RobustBench's 0.5)."""
    return THREATS[threat].default_eps(dataset)


def audit_eps_by_dataset() -> dict[str, float]:
    """Every registered dataset with an audit ε of its own (for help texts)."""
    return {name: DATASETS[name].audit_eps for name in DATASETS.names() if DATASETS[name].audit_eps}


@dataclass(frozen=True)
class AuditOptions:
    """Settings of one audit. Defaults fit a digits model at n = 200 in < 2 min on 2 CPU cores.

    AutoAttack's standard settings are `steps=100, targets=9, queries=5000`: the `paper` and
    `paper-fast` profiles set them (`[audit] steps, targets`, `[attacks] square_queries`). The
    CPU defaults shorten APGD/FAB and try the 3 most likely wrong classes.

    `threat`: the ball the battery attacks in, "Linf" or "L2" (`threats.THREATS`); an L2 ε has
    no upper bound here (its sweep's top follows the input size, `threats.l2_sweep_top`).
    """

    eps: float | None = None  # None: default_eps(dataset)
    n: int = 200
    seed: int = 0  # of the test subset
    attack_seed: int = setting(0, Seed, "seed of the randomized attacks")
    queries: int = setting(1000, Count, "Square queries; AutoAttack uses 5000")
    steps: int = setting(
        50, Count, "APGD-CE / APGD-DLR / APGD-T / FAB-T iterations; AutoAttack uses 100"
    )
    targets: int = setting(3, Count, "APGD-T / FAB-T target classes; AutoAttack uses 9")
    restarts: int = setting(5, Count, "IFSGM random restarts")
    dlr_restarts: int = setting(2, Count, "APGD-DLR restarts")
    noise_draws: int = setting(10, Count, "random corners of the eps-ball per example")
    deepfool_steps: int = setting(50, Count, "DeepFool iterations")
    sweep_max: float = 0.5
    batch_size: int = DEFAULT_BATCH
    threat: str = "Linf"
    # Where the audit's rows are bound: `run_audit` writes audit.md beside it (None: nowhere).
    results: Path | None = None

    def __post_init__(self) -> None:
        if self.threat not in THREATS:
            raise InvalidArgument("threat", self.threat, THREATS.names())
        top = THREATS[self.threat].eps_max(self.sweep_max)
        if self.eps is not None and not 0 < self.eps <= top:
            raise ValueError(f"audit eps must be in (0, {top:g}], got {self.eps}")
        for name in COUNTS:
            if getattr(self, name) < 1:
                raise ValueError(
                    f"audit option {name} must be at least 1, got {getattr(self, name)}"
                )

    def settings(self) -> dict[str, Any]:
        """What the result rows record about the audit's own budget (its `param` text)."""
        # As `apgd_steps`: `param` leaves out `steps`, which has a column of its own.
        return {("apgd_steps" if k == "steps" else k): getattr(self, k) for k in BUDGET}


# The battery's budget: the fields that say how hard each attack tries, each a flag
# `--<field with dashes>` of `robustbench-lr audit` and (but the Square queries, which are
# `[attacks] square_queries`) an `[audit]` key of a profile.
BUDGET = tuple(f.name for f in fields(AuditOptions) if f.metadata)
# Options that count something (iterations, queries, draws): each must be at least 1.
COUNTS = ("n", *(f.name for f in fields(AuditOptions) if f.metadata.get("kind") is Count))
