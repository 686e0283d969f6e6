"""A finished audit: the battery, every check's verdict and the aggregate accuracies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from robustbench_lr.audit.battery import Battery, percent
from robustbench_lr.audit.checks import CheckResult


@dataclass(frozen=True)
class AuditReport:
    """What rows and audit.md are made of; `timings` are each run's seconds, by label."""

    battery: Battery
    checks: tuple[CheckResult, ...]
    seconds: float = 0.0
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def worst_case_acc(self) -> float:
        """The model's robust accuracy: worst case per example over every L-inf attack at ε."""
        return percent(self.battery.worst_case)

    @property
    def autoattack_acc(self) -> float:
        """Worst case per example over AutoAttack's components (APGD-CE, APGD-T, FAB-T, Square)."""
        return percent(self.battery.autoattack)

    @property
    def whitebox_acc(self) -> float:
        return percent(self.battery.whitebox)

    @property
    def clean_acc(self) -> float:
        return percent(self.battery.clean)

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.status == status)
