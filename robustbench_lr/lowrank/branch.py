"""The LR virtual branch and the Bottle-LR bottleneck (paper Section 2, Appendix B.1, Section 3.1).

`LowRankBranch` holds the branch's parameters `Ws` (m × m) and `b` (m) and uses the symmetric
W = (Ws + Wsᵀ)/2. It is never in the prediction path: its losses read tap activations a,

    Lc = (1/n) Σ_i ‖Wᵀ(a_i + b) − (a_i + b)‖²,      Ln = (1/n) Σ_i |1 − ‖a_i‖|,

and back-propagate into the network. `Bottleneck` is the opposite design the paper compares
against: h ↦ h W̄l W̄lᵀ inside the prediction path, rank ≤ r by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robustbench_lr.registry import Registry


class LowRankBranch(nn.Module):
    """Parameters of one LR branch at a tap of m units (saved with the training state).

    W and b start at 0; the branch is fitted to the (detached) activations from the first step
    on (see methods/lowrank.py), so the losses never see W = 0, whose trivial minimum is the
    constant activation −b.
    """

    def __init__(self, m: int, rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.ws = nn.Parameter(torch.zeros(m, m))
        self.b = nn.Parameter(torch.zeros(m))
        # mean ‖a + b‖² of the current batch: set by the penalty, read by W's step (not saved)
        self.register_buffer("scale", torch.ones(()), persistent=False)

    def weight(self) -> torch.Tensor:
        """The effective symmetric matrix W = (Ws + Wsᵀ)/2 (Appendix B.1)."""
        return (self.ws + self.ws.T) / 2

    def residual(
        self, acts: torch.Tensor, detach_branch: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z W − z, z) with z = a + b; W is symmetric, so z W = (Wᵀ zᵀ)ᵀ as in Lc."""
        w, b = self.weight(), self.b
        if detach_branch:
            w, b = w.detach(), b.detach()
        z = acts + b
        return z @ w - z, z


def reconstruction_loss(residual: torch.Tensor) -> torch.Tensor:
    """Lc = (1/n) Σ_i ‖r_i‖² for residual rows r_i = Wᵀ(a_i + b) − (a_i + b) (paper Eq. 2)."""
    return residual.square().sum(1).mean()


def norm_loss(acts: torch.Tensor) -> torch.Tensor:
    """Ln = (1/n) Σ_i |1 − ‖a_i‖|: keeps the activations from collapsing to 0 (paper Eq. 2)."""
    return (1 - acts.norm(dim=1)).abs().mean()


# How Bottle-LR's W̄l enters W̄ = W̄l W̄lᵀ (see `Bottleneck`).
BOTTLENECK_MAPS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry(
    "bottle-lr parametrization"
)
BOTTLENECK_MAPS.add("normalized", lambda left: left / left.norm(dim=0, keepdim=True))
BOTTLENECK_MAPS.add("free", lambda left: left)


class Bottleneck(nn.Module):
    """Bottle-LR's explicit low-rank linear map W̄ = W̄l W̄lᵀ, W̄l ∈ R^{m×r} (paper Section 3.1).

    Applied to the flattened activation and reshaped back, so it fits any tap. W̄l starts with
    orthonormal columns: W̄ is then the projection onto a random r-dimensional subspace, which
    passes the signal at unit gain instead of shrinking or blowing it up at initialization.

    `parametrization="normalized"` (default) uses W̄l's columns scaled to unit norm, as weight
    normalization does: the paper's literal ("free") W̄l diverged to NaN at the recipe's lr 0.1
    on digits ResNet18, because W̄l W̄lᵀ's gradient grows with ‖W̄l‖², which the step itself
    grows. With unit columns the gradient shrinks as ‖W̄l‖ grows instead, so the step
    stabilizes itself; rank ≤ r is unchanged, and before the last FC nothing is lost (any
    W̄l W̄lᵀ = U S² Uᵀ, and the FC absorbs S²). Exactly orthonormal columns (torch's
    `parametrizations.orthogonal`) rotate the subspace every step at lr 0.1: chance accuracy.
    """

    def __init__(self, m: int, rank: int, parametrization: str = "normalized") -> None:
        super().__init__()
        self.rank = rank
        self.effective = BOTTLENECK_MAPS.get(parametrization)
        self.left = nn.Parameter(nn.init.orthogonal_(torch.empty(m, rank)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        flat = h.flatten(1)
        left = self.effective(self.left)
        return ((flat @ left) @ left.T).view_as(h)
