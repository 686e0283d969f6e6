"""Gradient-sign L-inf attacks: FGSM, IFSGM (Eq. 5) and the iterative least-likely class (Eq. 6).

Args of the iterative ones: eps, steps (7 or 20 in Table 2), alpha (default 2.5·eps/steps;
Appendix D's ρ searches use 1/255).

- `ifsgm` (Kurakin et al. 2017, no random start): torchattacks' `PGD(random_start=False)`,
  which reproduces foolbox's `LinfBasicIterativeAttack` bit for bit on CPU (torchattacks' `BIM`
  clips differently); `foolbox` runs foolbox's; `ours` the suite's loop (`loop.py`).
- `ill` is written here because no library does what Eq. 6 says: the least-likely class is
  recomputed at every step n from the current iterate x_n.
- `ill-fixed` is Kurakin et al.'s ILLC, the target fixed on the clean input: torchattacks'
  least-likely targeted PGD, and `ours`, `ill`'s loop with the target frozen, the `--verify`
  cross-check that ties `ill`'s update to a library. As the library's twin, `ours` returns the
  final iterate: a best iterate would be a second difference and hide the first.
- `fgsm` (Goodfellow et al. 2015): one signed-gradient step, the single-step baseline of the
  audit's "iterative beats single step" check.

The library backends return their final iterate; `ifsgm`'s `ours` and `ill` the loop's best
(the latest one that fooled the model): the same examples wherever the final one fools it.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from robustbench_lr.attacks.base import AttackFn, least_likely, register, run_foolbox
from robustbench_lr.attacks.loop import STEP_RULES, StepRule, signed_gradient_loop, towards_label

LINF_DEFAULTS = {"eps": 8 / 255, "steps": 7, "alpha": None}


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    least_likely_target: bool = False,
    library: str = "PGD",
) -> Tensor:
    """torchattacks' `library` ("PGD"; "PGDL2" in the L2 ball) without random start;
    `least_likely_target`: aimed at the least-likely class of the clean input (`ill-fixed`)."""
    import torchattacks

    make = getattr(torchattacks, library)
    attack = make(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    if least_likely_target:
        attack.set_mode_targeted_least_likely(quiet=True)
    return attack(x, y)


def _ifsgm_foolbox(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float, steps: int, alpha: float
) -> Tensor:
    import foolbox as fb

    attack = fb.attacks.LinfBasicIterativeAttack(
        abs_stepsize=alpha, steps=steps, random_start=False
    )
    return run_foolbox(attack, model, x, y, eps)


def _looped(rule: StepRule) -> AttackFn:
    """The attack that runs `rule` through the signed-gradient loop and keeps its best iterates."""

    def attack(
        model: nn.Module, x: Tensor, y: Tensor, *, eps: float, steps: int, alpha: float
    ) -> Tensor:
        return signed_gradient_loop(model, x, y, rule=rule, eps=eps, alpha=alpha, steps=steps).best

    return attack


def _ill_fixed_ours(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float, steps: int, alpha: float
) -> Tensor:
    """`ill`'s loop towards the least-likely class of the clean input, its final iterate."""
    with torch.no_grad():
        target = least_likely(model(x), y)
    return signed_gradient_loop(
        model, x, y, rule=towards_label, eps=eps, alpha=alpha, steps=steps, labels=target
    ).final


def _fgsm_torchattacks(model: nn.Module, x: Tensor, y: Tensor, *, eps: float) -> Tensor:
    import torchattacks

    return torchattacks.FGSM(model, eps=eps)(x, y)


register(
    "ifsgm",
    {"torchattacks": pgd, "foolbox": _ifsgm_foolbox, "ours": _looped(STEP_RULES["ifsgm"])},
    "linf",
    LINF_DEFAULTS,
    verify="ifsgm",
    fills=("robust_acc", "eps_sweep"),
)
register("ill", {"ours": _looped(STEP_RULES["ill"])}, "linf", LINF_DEFAULTS, verify="ill-fixed")
register(
    "ill-fixed",
    {"torchattacks": partial(pgd, least_likely_target=True), "ours": _ill_fixed_ours},
    "linf",
    LINF_DEFAULTS,
    verify="ill-fixed",
)
register("fgsm", {"torchattacks": _fgsm_torchattacks}, "linf", {"eps": 8 / 255})
