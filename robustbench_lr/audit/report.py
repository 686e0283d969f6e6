"""A finished audit: the battery, every check's verdict and the aggregate accuracies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from robustbench_lr.audit.battery import Battery, percent
from robustbench_lr.audit.checks import CheckResult
from robustbench_lr.audit.optimality import Optimality
from robustbench_lr.audit.standard import agreement


@dataclass(frozen=True)
class AuditReport:
    """What rows and audit.md are made of; `timings` are each run's seconds, by label;
    `optimality` each attack setting's AttackBench optimality, by the label of its first run."""

    battery: Battery
    checks: tuple[CheckResult, ...]
    seconds: float = 0.0
    timings: Mapping[str, float] = field(default_factory=dict)
    optimality: Mapping[str, Optimality] = field(default_factory=dict)

    @property
    def worst_case_acc(self) -> float:
        """The model's robust accuracy: worst case per example over every attack at ε."""
        return percent(self.battery.worst_case)

    @property
    def autoattack_acc(self) -> float:
        """Worst case per example over AutoAttack's components (APGD-CE, APGD-T, FAB-T, Square)."""
        return percent(self.battery.autoattack)

    @property
    def has_standard_autoattack(self) -> bool:
        """Whether the battery ran the authors' AutoAttack (a hand-built battery may not)."""
        return self.battery.part("standard") in self.battery.evaluations

    @property
    def standard_autoattack_acc(self) -> float:
        """Standard AutoAttack from its authors' package (`standard.py`)."""
        return percent(self.battery.flags(self.battery.part("standard")))

    @property
    def autoattack_agreement(self) -> dict[str, float]:
        """Per example: the authors' AutoAttack vs the port's four components."""
        standard = self.battery.flags(self.battery.part("standard"))
        return agreement(standard, self.battery.autoattack)

    @property
    def whitebox_acc(self) -> float:
        return percent(self.battery.whitebox)

    @property
    def clean_acc(self) -> float:
        return percent(self.battery.clean)

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.status == status)
