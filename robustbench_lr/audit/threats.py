"""The threats the audit runs under (L∞, L2): each one's battery and how the audit names it.

A robustness number is a claim about one ball, so the audit runs per threat: the same roles
(single-step and iterative gradient attacks, restarts, AutoAttack's components and the
authors' AutoAttack, Square, blind noise, transfer, DeepFool, an ε-sweep to chance), each
filled by that ball's attack from the same libraries. The L∞ battery is the paper's; the L2
one is RobustBench's second track (`attacks.l2`). The checks compare runs by the part they
play (`AuditThreat.parts`), so a check is written once and reads either battery.

    >>> THREATS["L2"].runs(AuditOptions(eps=0.5, threat="L2"), False, 3 * 32 * 32)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from robustbench_lr.audit.runs import Run, sweep_eps
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
STANDARD_L2 = "autoattack-standard-l2"


# The paper's budget; a dataset may set its own (its registry entry's `audit_eps`).
DEFAULT_EPS = 8 / 255


def linf_eps(dataset: str) -> float:
    """The L∞ ε a dataset is audited at: its registry entry's `audit_eps` (digits: 32/255, wide
    margins), else the paper's 8/255 (also for an npz of one's own)."""
    entry = DATASETS[dataset] if dataset in DATASETS else None
    return entry.audit_eps if entry is not None and entry.audit_eps is not None else DEFAULT_EPS


@dataclass(frozen=True)
class AuditThreat:
    """One threat of the audit: its battery, the run that plays each part, its ε and names.

    - `runs(options, with_source, d)`: the battery, in order (`d`: values per input, which sizes
      the L2 sweep; transfer only with a source model);
    - `parts`: run label by `PARTS` entry;
    - `default_eps(dataset)`: the ε a dataset is audited at;
    - `eps_max(sweep_max)`: the largest ε accepted;
    - `eps_text(eps)`, `file_tag(eps)`: ε as audit.md and its file name write it;
    - `ball`: as reports write it; `iterative`: the iterative attack's name;
    - `eps_scale`, `eps_header`: the optimality table's ε column (L∞ in 1/255 steps).
    """

    name: str
    ball: str
    iterative: str
    runs: Callable[[AuditOptions, bool, int], list[Run]]
    parts: Mapping[str, str]
    default_eps: Callable[[str], float]
    eps_max: Callable[[float], float]
    eps_text: Callable[[float], str]
    file_tag: Callable[[float], str]
    eps_scale: float
    eps_header: str


def _seeding(options: AuditOptions) -> Callable[..., dict[str, Any]]:
    def seeded(**params: Any) -> dict[str, Any]:
        """ε, then `params`, then the attack seed: the randomized attacks' parameters."""
        return {"eps": options.eps, **params, "seed": options.attack_seed}

    return seeded


def _tail(
    o: AuditOptions,
    with_source: bool,
    transfer: str,
    sweep: Callable[[str, float, int, str], Run],
    top: float,
) -> list[Run]:
    """Transfer (`transfer`, 20 steps, crafted on the source), DeepFool, the ε-sweep to `top`."""
    runs = []
    if with_source:
        runs.append(Run("transfer", transfer, {"eps": o.eps, "steps": 20}, "blind", transfer=True))
    runs.append(Run("deepfool", "deepfool", {"steps": o.deepfool_steps}, "unbounded"))
    for value in sweep_eps(o.eps, top)[1:]:
        runs.append(sweep(f"sweep-{value:.4g}", value, 20, "unbounded"))
    return runs


def linf_runs(options: AuditOptions, with_source: bool, dims: int = 0) -> list[Run]:
    """The L∞ battery: FGSM, IFSGM at 7/20/100 steps (on the signed-gradient loop, which records
    its path) and from random starts, APGD-CE/-DLR/-T, FAB-T, Square, the authors' AutoAttack,
    random corners, transfer, DeepFool, an IFSGM sweep to `sweep_max` (`dims` is unused: every
    input reaches mid-gray at L∞ 0.5, whatever its size)."""
    o, eps, seeded = options, {"eps": options.eps}, _seeding(options)

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
            STANDARD, STANDARD, seeded(steps=o.steps, targets=o.targets, queries=o.queries), "blind"
        ),
        Run("linf-noise", "linf-noise", seeded(), "blind", draws=o.noise_draws),
    ]
    return runs + _tail(o, with_source, "ifsgm", looped, o.sweep_max)


def l2_sweep_top(sweep_max: float, dims: int) -> float:
    """The L2 sweep's top: `sweep_max`·√d. Every image in [0, 1]^d lies within 0.5·√d of the
    mid-gray one, so at that radius (the L2 twin of L∞ 0.5) any model can be driven to one
    prediction for every input, and an attack that does not bring accuracy to chance fails."""
    if dims < 1:
        raise ValueError(f"the L2 sweep needs the number of values per input, got {dims}")
    return sweep_max * math.sqrt(dims)


def l2_runs(options: AuditOptions, with_source: bool, dims: int = 0) -> list[Run]:
    """The L2 battery, the L∞ one's roles from the same libraries in the L2 ball: PGD-L2 at
    1 step (the fast gradient method: one step of length ε), 7, 20 and 100 steps and from random
    starts, APGD-CE/-DLR/-T, FAB-T and Square at norm="L2" (torchattacks), the authors'
    AutoAttack at L2, random points on the ε-sphere, transfer (PGD-L2), DeepFool (L2 already)
    and a PGD-L2 sweep to `l2_sweep_top`.

    No run records its path: PGD-L2 is torchattacks', and the signed-gradient loop (which
    records) is the L∞ step; the path indicators say so (`checks`).
    """
    o, seeded = options, _seeding(options)

    def pgd(label: str, value: float, steps: int, role: str = "gradient") -> Run:
        return Run(label, "pgd-l2", {"eps": value, "steps": steps}, role)

    def strong(name: str, role: str = "gradient", autoattack: bool = False, **params: Any) -> Run:
        return Run(name, name, seeded(**params), role, autoattack=autoattack)

    runs = [
        pgd("pgd-l2-1", o.eps, 1),
        pgd("pgd-l2-7", o.eps, 7),
        pgd("pgd-l2-20", o.eps, 20),
        pgd("pgd-l2-100", o.eps, 100),
        strong("pgd-l2-restarts", steps=20, restarts=o.restarts),
        strong("apgd-ce-l2", autoattack=True, steps=o.steps, restarts=1),
        strong("apgd-dlr-l2", steps=o.steps, restarts=o.dlr_restarts),
        strong("apgd-t-l2", autoattack=True, steps=o.steps, targets=o.targets, restarts=1),
        strong("fab-t-l2", autoattack=True, steps=o.steps, targets=o.targets),
        strong("square-l2", "blind", True, queries=o.queries),
        strong(STANDARD_L2, "blind", steps=o.steps, targets=o.targets, queries=o.queries),
        Run("l2-noise", "l2-noise", seeded(), "blind", draws=o.noise_draws),
    ]
    return runs + _tail(o, with_source, "pgd-l2", pgd, l2_sweep_top(o.sweep_max, dims))


THREATS: Registry[AuditThreat] = Registry("audit threat")
THREATS.add(
    "Linf",
    AuditThreat(
        "Linf",
        "L∞",
        "IFSGM",
        linf_runs,
        {
            "single-step": "fgsm",
            "steps-7": "ifsgm-7",
            "steps-20": "ifsgm-20",
            "steps-100": "ifsgm-100",
            "restarts": "ifsgm-restarts",
            "square": "square",
            "noise": "linf-noise",
            "transfer": "transfer",
            "standard": STANDARD,
        },
        linf_eps,
        lambda sweep_max: sweep_max,
        lambda eps: f"{eps * 255:g}/255 ({eps:.4g})",
        lambda eps: f"eps{eps * 255:g}",
        255.0,
        "ε × 255",
    ),
)
THREATS.add(
    "L2",
    AuditThreat(
        "L2",
        "L2",
        "PGD-L2",
        l2_runs,
        {
            "single-step": "pgd-l2-1",
            "steps-7": "pgd-l2-7",
            "steps-20": "pgd-l2-20",
            "steps-100": "pgd-l2-100",
            "restarts": "pgd-l2-restarts",
            "square": "square-l2",
            "noise": "l2-noise",
            "transfer": "transfer",
            "standard": STANDARD_L2,
        },
        l2_eps,
        # An L2 ball has no radius that holds every image of every size; the sweep's top
        # follows the input size instead (`l2_sweep_top`).
        lambda sweep_max: math.inf,
        lambda eps: f"{eps:.4g}",
        lambda eps: f"L2-eps{eps:.4g}",
        1.0,
        "ε",
    ),
)
