"""The battery: which attacks the audit runs, what each counts for, and what they yielded.

Every run sees all examples, so the worst case per example over any set of runs is the AND
of their per-example flags (AutoAttack's aggregation, Croce & Hein 2020), never above any
single run's accuracy on the same examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from robustbench_lr.attacks.harness import Evaluation
from robustbench_lr.attacks.loop import PathRecord
from robustbench_lr.audit.options import AuditOptions
from robustbench_lr.audit.probes import GradientProbe
from robustbench_lr.audit.standard import ATTACK as STANDARD


@dataclass(frozen=True)
class Run:
    """One attack setting of the battery.

    `role`: "gradient" (white-box, uses the target's gradients), "blind" (no gradients of the
    target: Square, transfer, noise), "unbounded" (DeepFool, the ε-sweep). Gradient and blind
    runs at the audit ε form the worst case; `autoattack` marks AutoAttack's four components.
    `backend`: the attack's backend (None: its default). A white-box run whose backend is the
    signed-gradient loop has its path recorded (`Battery.paths`): what the indicators of attack
    failure read, at no extra attack run.
    """

    label: str
    attack: str
    params: Mapping[str, Any]
    role: str
    transfer: bool = False
    draws: int = 1
    autoattack: bool = False
    backend: str | None = None

    @property
    def at_eps(self) -> bool:
        return self.role in ("gradient", "blind")


def sweep_eps(eps: float, top: float) -> list[float]:
    """ε, 2ε, 4ε, ... below `top`, then `top` itself (the "accuracy → chance" sweep)."""
    values = [eps]
    while values[-1] * 2 < top - 1e-12:
        values.append(values[-1] * 2)
    return values + [top] if values[-1] < top - 1e-12 else values


def battery(options: AuditOptions, with_source: bool) -> list[Run]:
    """Every attack the audit runs, in order (transfer only when a source model is given)."""
    o, eps = options, {"eps": options.eps}

    def seeded(**params: Any) -> dict[str, Any]:
        """ε, then `params`, then the attack seed: the randomized attacks' parameters."""
        return {**eps, **params, "seed": o.attack_seed}

    def looped(label: str, value: float, steps: int, role: str = "gradient") -> Run:
        """IFSGM on the signed-gradient loop: its best iterate, its path recorded."""
        return Run(label, "ifsgm", {"eps": value, "steps": steps}, role, backend="ours")

    runs = [
        Run("fgsm", "fgsm", eps, "gradient"),
        looped("ifsgm-7", o.eps, 7),
        looped("ifsgm-20", o.eps, 20),
        looped("ifsgm-100", o.eps, 100),
        Run("ifsgm-restarts", "ifsgm-restarts", seeded(steps=20, restarts=o.restarts), "gradient"),
        Run("apgd-ce", "apgd-ce", seeded(steps=o.steps, restarts=1), "gradient", autoattack=True),
        Run("apgd-dlr", "apgd-dlr", seeded(steps=o.steps, restarts=o.dlr_restarts), "gradient"),
        Run(
            "apgd-t",
            "apgd-t",
            seeded(steps=o.steps, targets=o.targets, restarts=1),
            "gradient",
            autoattack=True,
        ),
        Run(
            "fab-t", "fab-t", seeded(steps=o.steps, targets=o.targets), "gradient", autoattack=True
        ),
        Run("square", "square", seeded(queries=o.queries), "blind", autoattack=True),
        # The authors' own AutoAttack at the same budget, beside the port's four runs above
        # (`standard.py`): the leaderboard's AutoAttack column, and their per-example agreement.
        # It ends with Square, which needs no gradients, so it counts in the worst case but not
        # as a gradient attack (the masking checks compare those with the blind ones).
        Run(
            STANDARD,
            STANDARD,
            seeded(steps=o.steps, targets=o.targets, queries=o.queries),
            "blind",
        ),
        Run("linf-noise", "linf-noise", seeded(), "blind", draws=o.noise_draws),
    ]
    if with_source:
        runs.append(Run("transfer", "ifsgm", {**eps, "steps": 20}, "blind", transfer=True))
    runs.append(Run("deepfool", "deepfool", {"steps": o.deepfool_steps}, "unbounded"))
    for value in sweep_eps(o.eps, o.sweep_max)[1:]:
        runs.append(looped(f"sweep-{value:.4g}", value, 20, "unbounded"))
    return runs


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
