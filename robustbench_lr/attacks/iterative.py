"""Iterative L-inf attacks: IFSGM (Eq. 5) and the iterative least-likely class method (Eq. 6).

- `ifsgm` wraps torchattacks' `PGD(random_start=False)`, which reproduces foolbox's
  `LinfBasicIterativeAttack` bit for bit on CPU (torchattacks' `BIM` clips differently and does
  not); `backend="foolbox"` runs foolbox's.
- `ill-fixed` wraps torchattacks' PGD in least-likely targeted mode: the target is chosen once,
  on the clean input.
- `ill` is written here because no library does what Eq. 6 says: the least-likely class is
  recomputed at every step n from the current iterate x_n. It shares its loop with the
  `ours` backend of `ill-fixed`, which `--verify` checks against torchattacks.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lr.attacks.base import AttackSpec, least_likely, linf_project, register

LINF_DEFAULTS = {"eps": 8 / 255, "steps": 7, "alpha": None}


def _torchattacks_pgd(model: nn.Module, eps: float, alpha: float, steps: int):
    import torchattacks

    return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)


def ifsgm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """Iterative FGSM (Kurakin et al. 2017), L-inf, no random start (Eq. 5).

    Args: eps (L-inf radius, e.g. 8/255), steps (7 or 20 in Table 2), alpha (step size;
    default 2.5·eps/steps; Appendix D's ρ searches use 1/255), backend (torchattacks | foolbox).
    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> x_adv (N, C, H, W) within the eps-ball.
    """
    if backend == "foolbox":
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        attack = fb.attacks.LinfBasicIterativeAttack(
            abs_stepsize=alpha, steps=steps, random_start=False
        )
        _, clipped, _ = attack(fmodel, x, y, epsilons=eps)
        return clipped
    return _torchattacks_pgd(model, eps, alpha, steps)(x, y)


def least_likely_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    steps: int,
    alpha: float,
    per_step: bool,
) -> torch.Tensor:
    """x ← clip_{x,eps}(x − α·sign(∇ L(x, y_t))) towards the least-likely class y_t (Eq. 6).

    With `per_step` the target is `argmin_y P(y|x_n)` of the current iterate, read from the same
    forward pass that gives the gradient (no extra cost); without it, it is fixed on the clean
    input, which is torchattacks' least-likely mode. The loss is summed over the batch so a
    sample's path does not depend on which other samples share its batch.
    """
    target = None if per_step else least_likely(model(x), y)
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        goal = least_likely(logits, y) if per_step else target
        loss = F.cross_entropy(logits, goal, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = linf_project(x_adv.detach() - alpha * grad.sign(), x, eps)
    return x_adv


def ill(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    backend: str = "ours",
) -> torch.Tensor:
    """Iterative least-likely class method with the target recomputed every step (Eq. 6).

    Args as `ifsgm`. Hand-written: torchattacks and foolbox only fix the target up front.
    """
    return least_likely_loop(model, x, y, eps=eps, steps=steps, alpha=alpha, per_step=True)


def ill_fixed(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """Least-likely class attack with the target fixed on the clean input (Kurakin et al.'s ILLC).

    torchattacks' targeted least-likely PGD; `backend="ours"` is `ill`'s loop with the target
    frozen, the cross-check that ties `ill` to a library.
    """
    if backend == "ours":
        return least_likely_loop(model, x, y, eps=eps, steps=steps, alpha=alpha, per_step=False)
    attack = _torchattacks_pgd(model, eps, alpha, steps)
    attack.set_mode_targeted_least_likely(quiet=True)
    return attack(x, y)


register(
    AttackSpec(
        "ifsgm",
        ifsgm,
        "linf",
        LINF_DEFAULTS,
        ("torchattacks", "foolbox"),
        verify="ifsgm",
        summary="iterative FGSM, L-inf, no random start (Eq. 5)",
    )
)
register(
    AttackSpec(
        "ill",
        ill,
        "linf",
        LINF_DEFAULTS,
        ("ours",),
        verify="ill-fixed",
        summary="iterative least-likely class, target recomputed every step (Eq. 6)",
    )
)
register(
    AttackSpec(
        "ill-fixed",
        ill_fixed,
        "linf",
        LINF_DEFAULTS,
        ("torchattacks", "ours"),
        verify="ill-fixed",
        summary="iterative least-likely class, target fixed on the clean input (torchattacks)",
    )
)
