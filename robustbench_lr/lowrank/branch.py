"""The LR virtual branch and the Bottle-LR bottleneck (paper Section 2, Appendix B.1, Section 3.1).

`LowRankBranch` holds the branch's parameters `Ws` (m × m) and `b` (m) and uses the symmetric
W = (Ws + Wsᵀ)/2. It is never in the prediction path: its losses read tap activations a,

    Lc = (1/n) Σ_i ‖Wᵀ(a_i + b) − (a_i + b)‖²,      Ln = (1/n) Σ_i |1 − ‖a_i‖|,

and back-propagate into the network. `Bottleneck` is the opposite design the paper compares
against: h ↦ h W̄l W̄lᵀ inside the prediction path, rank ≤ r by construction.
"""

from __future__ import annotations

import torch
from torch import nn


class LowRankBranch(nn.Module):
    """Parameters of one LR branch at a tap of m units (saved with the training state).

    W starts at 0 and b at 0; the branch is fitted to the (detached) activations from the first
    step on, so that when the losses reach the network after the warm-up, W is already the
    rank-r fit of the representation and Lc only penalizes what lies outside it (starting
    from W = 0 would push every activation towards the constant −b, a trivial minimum).
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


class Bottleneck(nn.Module):
    """Bottle-LR's explicit low-rank linear map W̄ = W̄l W̄lᵀ, W̄l ∈ R^{m×r} (paper Section 3.1).

    Applied to the flattened activation and reshaped back, so it fits any tap. W̄l starts with
    orthonormal columns: W̄ is then the projection onto a random r-dimensional subspace, which
    passes the signal at unit gain instead of shrinking or blowing it up at initialization.
    """

    def __init__(self, m: int, rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.left = nn.Parameter(nn.init.orthogonal_(torch.empty(m, rank)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        flat = h.flatten(1)
        return ((flat @ self.left) @ self.left.T).view_as(h)
