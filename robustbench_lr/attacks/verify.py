"""`--verify`: the same deterministic attack through a second backend, compared on a sample.

A number from one implementation is a claim; two independent implementations agreeing is
evidence. Each attack names the attack whose first two backends check it (`AttackSpec.verify`):
`ifsgm` torchattacks vs foolbox, `ill-fixed` torchattacks vs our loop (which `ill` shares),
`deepfool` ours vs foolbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustbench_lr.attacks import run_attack
from robustbench_lr.attacks.base import ATTACKS, rho, robust_flags

ACC_TOL_PP = 1.0  # robust accuracies may differ by at most this many percentage points
RHO_REL_TOL = 0.05  # mean ρ may differ by at most this fraction (plus 1e-4 absolute)


class VerificationError(ValueError):
    """Two backends disagree on the same attack, model and batch."""


@dataclass(frozen=True)
class Agreement:
    """What the two backends gave: robust accuracy (%) and mean ρ each, and the verdict."""

    attack: str
    backends: tuple[str, str]
    acc: tuple[float, float]
    rho: tuple[float, float]
    n: int

    @property
    def ok(self) -> bool:
        acc_ok = abs(self.acc[0] - self.acc[1]) <= ACC_TOL_PP
        rho_ok = abs(self.rho[0] - self.rho[1]) <= RHO_REL_TOL * max(self.rho) + 1e-4
        return acc_ok and rho_ok

    def describe(self) -> str:
        a, b = self.backends
        return (
            f"{self.attack} on {self.n} samples: {a} acc {self.acc[0]:.2f}% rho {self.rho[0]:.4g} vs "
            f"{b} acc {self.acc[1]:.2f}% rho {self.rho[1]:.4g} "
            f"(tolerance {ACC_TOL_PP} pp, {RHO_REL_TOL:.0%} rho)"
        )


def cross_check(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **params: Any
) -> Agreement:
    """Run `name`'s verification attack through its first two backends on the same batch."""
    spec = ATTACKS.get(name)
    if spec.verify is None:
        checkable = [n for n in ATTACKS if ATTACKS[n].verify is not None]
        raise ValueError(
            f"attack {name!r} has no second implementation to verify against; "
            f"--verify works for: {', '.join(checkable)}"
        )
    target = ATTACKS.get(spec.verify)
    first, second = list(target.backends)[:2]
    accs, rhos = [], []
    for backend in (first, second):
        x_adv = run_attack(target.name, model, x, y, backend=backend, **params)
        accs.append(100.0 * robust_flags(model, x_adv, y).float().mean().item())
        rhos.append(rho(x_adv.cpu(), x.cpu()).mean().item())
    return Agreement(target.name, (first, second), (accs[0], accs[1]), (rhos[0], rhos[1]), len(x))


def verify(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **params: Any
) -> Agreement:
    """`cross_check`, raising `VerificationError` (one line, both numbers) on disagreement."""
    agreement = cross_check(name, model, x, y, **params)
    if not agreement.ok:
        raise VerificationError(f"backends disagree: {agreement.describe()}")
    return agreement
