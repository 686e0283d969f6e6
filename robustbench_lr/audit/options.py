"""The settings of one audit: its threat, the ε it is run at and the budget of every attack in
its battery."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from robustbench_lr.attacks import DEFAULT_BATCH
from robustbench_lr.audit.threats import DEFAULT_EPS, THREATS
from robustbench_lr.config import count
from robustbench_lr.data import DATASETS
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.settings import Count, Seed, setting

__all__ = ["BUDGET", "COUNTS", "DEFAULT_EPS", "AuditOptions", "audit_eps_by_dataset", "default_eps"]


def default_eps(dataset: str, threat: str = "Linf") -> float:
    """The ε a dataset is audited at under `threat` (L∞: `threats.linf_eps`, L2: `data.l2_eps`)."""
    return THREATS[threat].default_eps(dataset)


def audit_eps_by_dataset() -> dict[str, float]:
    """Every registered dataset with an audit ε of its own (for help texts)."""
    return {name: DATASETS[name].audit_eps for name in DATASETS.names() if DATASETS[name].audit_eps}


@dataclass(frozen=True)
class AuditOptions:
    """Settings of one audit. Defaults fit a digits model at n = 200 in < 2 min on 2 CPU cores.

    The `paper` and `paper-fast` profiles set AutoAttack's standard budget (see `BUDGET`); the
    CPU defaults shorten APGD/FAB and try the 3 most likely wrong classes.

    `threat`: the ball the battery attacks in, "Linf" or "L2" (`threats.THREATS`); an L2 ε has
    no upper bound here (its sweep's top follows the input size, `threats.l2_sweep_top`).
    """

    eps: float | None = None  # None: default_eps(dataset)
    n: int = 200
    seed: int = 0  # of the test subset
    attack_seed: int = setting(0, Seed, "seed of the randomized attacks")
    queries: int = count(1000, "Square queries; AutoAttack uses 5000")
    steps: int = count(50, "APGD-CE / APGD-DLR / APGD-T / FAB-T iterations; AutoAttack uses 100")
    targets: int = count(3, "APGD-T / FAB-T target classes; AutoAttack uses 9")
    restarts: int = count(5, "IFSGM random restarts")
    dlr_restarts: int = count(2, "APGD-DLR restarts")
    noise_draws: int = count(10, "random corners of the eps-ball per example")
    deepfool_steps: int = count(50, "DeepFool iterations")
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
            if (value := getattr(self, name)) < 1:
                raise ValueError(f"audit option {name} must be at least 1, got {value}")

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
