"""The threats the audit runs under (L∞, L2): each one's battery and how the audit names it.

A robustness number is a claim about one ball, so the audit runs per threat: the same roles
(single-step and iterative gradient attacks, restarts, AutoAttack's components and the
authors' AutoAttack, Square, blind noise, transfer, DeepFool, an ε-sweep to chance), each
filled by that ball's attack from the same libraries. The L∞ battery is the paper's; the L2
one is RobustBench's second track (`attacks.l2`). The checks compare runs by the part they
play (`AuditThreat.parts`), so a check is written once and reads either battery.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from robustbench_lr.audit.standard import ATTACK as STANDARD
from robustbench_lr.data import DATASETS, l2_eps
from robustbench_lr.registry import Registry

if TYPE_CHECKING:
    from robustbench_lr.audit.options import AuditOptions

# The parts the checks compare, each filled by one run label per threat.
PARTS = (
    "single-step",  # one gradient step of the full ε
    "steps-7",
    "steps-20",  # the iterative attack the sweep and the transfer repeat
    "steps-100",
    "restarts",  # the 20-step attack from random starts
    "square",  # AutoAttack's gradient-free component
    "noise",  # blind random points of the ball
    "transfer",  # the 20-step iterative attack crafted on the source model
    "standard",  # the authors' AutoAttack
)


# The paper's budget; a dataset may set its own (its registry entry's `audit_eps`).
DEFAULT_EPS = 8 / 255


@dataclass(frozen=True)
class Run:
    """One attack setting of the battery.

    `role`: "gradient" (white-box, uses the target's gradients), "blind" (no gradients of the
    target: Square, transfer, noise), "unbounded" (DeepFool, the ε-sweep). Gradient and blind
    runs at the audit ε form the worst case; `autoattack` marks AutoAttack's four components.
    A white-box run on the signed-gradient loop (`backend`) has its path recorded
    (`Battery.paths`): what the indicators of attack failure read, at no extra attack run.
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


def linf_eps(dataset: str) -> float:
    """The L∞ ε a dataset is audited at: its registry entry's `audit_eps` (digits: 32/255, wide
    margins), else the paper's 8/255 (also for an npz of one's own)."""
    entry = DATASETS[dataset] if dataset in DATASETS else None
    return entry.audit_eps if entry is not None and entry.audit_eps is not None else DEFAULT_EPS


def l2_sweep_top(sweep_max: float, dims: int) -> float:
    """The L2 sweep's top: `sweep_max`·√d. Every image in [0, 1]^d lies within 0.5·√d of the
    mid-gray one, so at that radius (the L2 twin of L∞ 0.5) any model can be driven to one
    prediction for every input, and an attack that does not bring accuracy to chance fails."""
    if dims < 1:
        raise ValueError(f"the L2 sweep needs the number of values per input, got {dims}")
    return sweep_max * math.sqrt(dims)


@dataclass(frozen=True)
class AuditThreat:
    """One threat of the audit: its battery, the run that plays each part, its ε and names."""

    name: str
    ball: str  # as reports write it
    iterative: str  # the iterative attack's name in reports
    attack: str  # the iterative attack (7/20/100 steps, transfer, the sweep)
    backend: str | None  # L∞'s: the signed-gradient loop, which records its path
    single_step: Callable[[float], Run]  # the single-step run at ε
    suffix: str  # ends the names of the library attacks (APGD, FAB, Square, AutoAttack)
    sweep_top: Callable[[float, int], float]  # (sweep_max, values per input): the sweep's end
    default_eps: Callable[[str], float]  # the ε a dataset is audited at
    eps_max: Callable[[float], float]  # (sweep_max): the largest ε accepted
    eps_text: Callable[[float], str]  # ε as audit.md writes it
    file_tag: Callable[[float], str]  # ε as audit.md's file name writes it
    eps_scale: float  # the optimality table's ε column (L∞ in 1/255 steps)
    eps_header: str

    @property
    def parts(self) -> dict[str, str]:
        """The run label of each `PARTS` entry."""
        return {
            "single-step": self.single_step(0.0).label,
            **{f"steps-{n}": f"{self.attack}-{n}" for n in (7, 20, 100)},
            "restarts": f"{self.attack}-restarts",
            "square": f"square{self.suffix}",
            "noise": f"{self.name.lower()}-noise",
            "transfer": "transfer",
            "standard": f"{STANDARD}{self.suffix}",
        }

    def step(self, label: str, eps: float, steps: int, role: str = "gradient") -> Run:
        """The iterative attack at `eps` (on L∞'s loop: its best iterate, its path recorded)."""
        return Run(label, self.attack, {"eps": eps, "steps": steps}, role, backend=self.backend)

    def runs(self, o: AuditOptions, with_source: bool, dims: int = 0) -> list[Run]:
        """The battery, in order (transfer only with a source model; `dims` sizes the sweep)."""
        part, s = self.parts, self.suffix

        def library(name: str, role="gradient", autoattack=False, draws=1, **params: Any) -> Run:
            """A randomized attack: ε, then `params`, then the attack seed."""
            seeded = {"eps": o.eps, **params, "seed": o.attack_seed}
            return Run(name, name, seeded, role, draws=draws, autoattack=autoattack)

        runs = [
            self.single_step(o.eps),
            *(self.step(part[f"steps-{n}"], o.eps, n) for n in (7, 20, 100)),
            library(part["restarts"], steps=20, restarts=o.restarts),
            library(f"apgd-ce{s}", autoattack=True, steps=o.steps, restarts=1),
            library(f"apgd-dlr{s}", steps=o.steps, restarts=o.dlr_restarts),
            library(f"apgd-t{s}", autoattack=True, steps=o.steps, targets=o.targets, restarts=1),
            library(f"fab-t{s}", autoattack=True, steps=o.steps, targets=o.targets),
            library(part["square"], "blind", True, queries=o.queries),
            # The authors' own AutoAttack (`standard.py`), the leaderboard's column: it ends with
            # Square, so it counts in the worst case but not as a gradient attack.
            library(part["standard"], "blind", steps=o.steps, targets=o.targets, queries=o.queries),
            library(part["noise"], "blind", draws=o.noise_draws),
        ]
        if with_source:
            params = {"eps": o.eps, "steps": 20}
            runs.append(Run(part["transfer"], self.attack, params, "blind", transfer=True))
        runs.append(Run("deepfool", "deepfool", {"steps": o.deepfool_steps}, "unbounded"))
        for value in sweep_eps(o.eps, self.sweep_top(o.sweep_max, dims))[1:]:
            runs.append(self.step(f"sweep-{value:.4g}", value, 20, "unbounded"))
        return runs


THREATS: Registry[AuditThreat] = Registry("audit threat")
for _threat in (
    AuditThreat(
        name="Linf",
        ball="L∞",
        iterative="IFSGM",
        attack="ifsgm",
        backend="ours",
        single_step=lambda eps: Run("fgsm", "fgsm", {"eps": eps}, "gradient"),
        suffix="",
        # Every input reaches mid-gray at L∞ 0.5, whatever its size.
        sweep_top=lambda sweep_max, dims: sweep_max,
        default_eps=linf_eps,
        eps_max=lambda sweep_max: sweep_max,
        eps_text=lambda eps: f"{eps * 255:g}/255 ({eps:.4g})",
        file_tag=lambda eps: f"eps{eps * 255:g}",
        eps_scale=255.0,
        eps_header="ε × 255",
    ),
    AuditThreat(
        name="L2",
        ball="L2",
        iterative="PGD-L2",
        attack="pgd-l2",
        backend=None,
        # The fast gradient method: one step of length ε.
        single_step=lambda eps: Run("pgd-l2-1", "pgd-l2", {"eps": eps, "steps": 1}, "gradient"),
        suffix="-l2",
        sweep_top=l2_sweep_top,
        default_eps=l2_eps,
        # An L2 ball has no radius that holds every image of every size; the sweep's top
        # follows the input size instead (`l2_sweep_top`).
        eps_max=lambda sweep_max: math.inf,
        eps_text=lambda eps: f"{eps:.4g}",
        file_tag=lambda eps: f"L2-eps{eps:.4g}",
        eps_scale=1.0,
        eps_header="ε",
    ),
):
    THREATS.add(_threat.name, _threat)
