"""The battery: which attacks the audit runs, what each counts for, and what they yielded.

Every run sees all examples, so each run's own accuracy is exact and the worst case per
example over any set of runs is the AND of their per-example flags (AutoAttack's aggregation,
Croce & Hein 2020), never above any single run's accuracy on the same examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from robustbench_lr.attacks.harness import Evaluation
from robustbench_lr.attacks.loop import PathRecord
from robustbench_lr.audit.options import AuditOptions
from robustbench_lr.audit.probes import GradientProbe
from robustbench_lr.audit.threats import THREATS, Run

__all__ = ["Battery", "Run", "battery", "percent"]


def battery(options: AuditOptions, with_source: bool, dims: int = 0) -> list[Run]:
    """Every attack the audit runs under `options.threat`, in order (`AuditThreat.runs`)."""
    return THREATS[options.threat].runs(options, with_source, dims)


def percent(flags: torch.Tensor) -> float:
    """Share (%) of True among per-example flags: an accuracy."""
    return 100.0 * flags.float().mean().item()


@dataclass(frozen=True)
class Battery:
    """What the checks read: every run's evaluation, the paths of the loop's runs, the probes.

    `instability`: per example, the mean relative change of its loss under small uniform noise
    (`probes.probe_stability`); `input_norms`: ‖x‖₂ per example, which turns a run's ρ back
    into the L2 size of its perturbation.
    """

    options: AuditOptions
    runs: Mapping[str, Run]
    evaluations: Mapping[str, Evaluation]
    gradients: GradientProbe
    nondeterminism: float
    num_classes: int
    clean: torch.Tensor
    paths: Mapping[str, PathRecord] = field(default_factory=dict)
    instability: torch.Tensor | None = None
    input_norms: torch.Tensor | None = None

    @property
    def threat(self) -> str:
        """The ball every run at ε attacks in ("Linf", "L2"): the rows' `threat` column."""
        return self.options.threat

    def part(self, name: str) -> str:
        """The label of the run that plays part `name` (`threats.PARTS`) in this threat."""
        return THREATS[self.threat].parts[name]

    def flags(self, label: str) -> torch.Tensor:
        """Per example: still correct under this run (worst case over its draws)."""
        return self.evaluations[label].robust.all(0)

    def acc(self, label: str) -> float:
        return percent(self.flags(label))

    def combined(self, keep: Callable[[Run], bool]) -> torch.Tensor:
        """Per example: correct under every selected run (the worst case per example)."""
        flags = self.clean.clone()
        for label, run in self.runs.items():
            if keep(run):
                flags &= self.flags(label)
        return flags

    @property
    def whitebox(self) -> torch.Tensor:
        return self.combined(lambda r: r.role == "gradient")

    @property
    def worst_case(self) -> torch.Tensor:
        return self.combined(lambda r: r.at_eps)

    @property
    def autoattack(self) -> torch.Tensor:
        return self.combined(lambda r: r.autoattack)
