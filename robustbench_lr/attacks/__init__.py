"""The attack registry and its one entry point, `run_attack` (Section 3, Appendix D).

    >>> x_adv = run_attack("ifsgm", model, x, y, eps=8 / 255, steps=7)

Registered attacks: `ifsgm`, `ill`, `ill-fixed`, `fgsm` (iterative.py), `deepfool`, the noises
(noise.py), the audit's stronger attacks (strong.py) and the L2 track (l2.py, with the threats each
attack supports). A module adds attacks by calling `register(...)` with `AttackSpec`'s fields at
import and joining `ATTACK_MODULES`. The minimum-perturbation searches are `search.SEARCHES`; the
loop they and the iterative attacks share is `loop.signed_gradient_loop`. Attacks craft in the
precision `precision.crafting_in` / `precision.choose` selects (strict float32 by default); every
robust/fooled decision is `precision.verdict`'s (`robust_flags`), in strict float32.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from robustbench_lr.attacks.base import (
    ATTACKS,
    AttackSpec,
    derive_seed,
    frozen,
    register,
    rho,
    robust_flags,
)
from robustbench_lr.attacks.precision import PRECISIONS, crafting, crafting_in, verdict
from robustbench_lr.devices import model_device

# Modules whose import registers attacks, in the order `--help` and the registry list them.
ATTACK_MODULES = ("iterative", "deepfool", "noise", "strong", "l2")
for _module in ATTACK_MODULES:
    importlib.import_module(f"robustbench_lr.attacks.{_module}")

DEFAULT_BATCH = 256


def run_attack(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    backend: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    **params: Any,
) -> torch.Tensor:
    """Adversarial examples for `x` (in [0, 1]) against `model`, returned where `x` lives.

    One entry point, so every caller gets the same parameter resolution, frozen weights in eval
    mode, bounds check and chunking by `batch_size`. Randomized attacks get a seed per chunk
    derived from `seed`, so results depend on the caller's batching only through `batch_size`.
    """
    spec = ATTACKS.get(name)
    backend, resolved = spec.resolve(backend, **params)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    attack = spec.backends[backend]
    device = model_device(model)
    out = []
    with frozen(model), crafting(device):
        for start in range(0, len(x), batch_size):
            chunk = dict(resolved)
            if spec.randomized:
                chunk["seed"] = derive_seed(resolved["seed"], start)
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            out.append(attack(model, xb, yb, **chunk).detach().to(x.device))
    x_adv = torch.cat(out) if out else x.clone()
    check_bounds(spec, x_adv, x, resolved)
    return x_adv


BOUND_SLACK = 1e-6


def check_bounds(
    spec: AttackSpec, x_adv: torch.Tensor, x: torch.Tensor, params: dict[str, Any]
) -> None:
    """Fail loudly if an attack left [0, 1] or its L-inf / L2 ball (a wrapped library's bug or ours).

    A result outside the threat model would make every robustness number built on it wrong.
    """
    if len(x) == 0:
        return
    low, high = x_adv.min().item(), x_adv.max().item()
    if low < -BOUND_SLACK or high > 1 + BOUND_SLACK:
        raise RuntimeError(f"attack {spec.name!r} left [0, 1]: values span [{low}, {high}]")
    if spec.norm == "linf":
        size, limit = (x_adv - x).abs().max().item(), params["eps"]
    elif spec.norm == "l2" and "eps" in params:
        # float32 norms of ~3000 pixels carry relative rounding of ~1e-6: slack scales with eps.
        size, limit = (x_adv - x).flatten(1).norm(dim=1).max().item(), params["eps"] * (1 + 1e-4)
    else:
        return
    if size > limit + BOUND_SLACK:
        ball = {"linf": "L-inf", "l2": "L2"}[spec.norm]
        raise RuntimeError(
            f"attack {spec.name!r} left its {ball} ball: {size} > eps {params['eps']}"
        )


def filling(slot: str) -> str:
    """The registered attack whose rows fill the report slot `slot` (`AttackSpec.fills`)."""
    (name,) = [name for name in ATTACKS if slot in ATTACKS[name].fills]
    return name


def resolve(name: str, backend: str | None = None, **params: Any) -> tuple[str, dict[str, Any]]:
    """The backend and full hyper-parameters `run_attack(name, ...)` would use (to record them)."""
    return ATTACKS.get(name).resolve(backend, **params)


__all__ = [
    "ATTACKS",
    "PRECISIONS",
    "AttackSpec",
    "crafting_in",
    "filling",
    "frozen",
    "register",
    "resolve",
    "rho",
    "robust_flags",
    "run_attack",
    "verdict",
]
