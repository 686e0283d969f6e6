"""Blind perturbations: Table 4's random pixel noise and the audit's random points of the ball
(corners of the L-inf ball, points on the L2 sphere).

Table 4's N(0, 128/255) may name a variance or a standard deviation: we read it as a standard
deviation (σ ≈ 0.502) and record the reading in every result row (`sigma_is=std`); pass
`sigma=(128/255) ** 0.5` for the variance reading. A "pixel" is a spatial location: the mask is
shared by its channels, the Gaussian draws are not.

All are distributions, so their accuracy is averaged over draws. All draw from a CPU generator
seeded by `seed` (the same noise on any device), and none uses the model: it is blind.
"""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lr.attacks.base import register

SIGMA_READING = "std"
TABLE4_P = (0.4, 0.6, 0.8, 1.0)


def pixel_noise(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, p: float, sigma: float, seed: int
) -> torch.Tensor:
    """x + mask·N(0, σ²), clipped to [0, 1]; mask ~ Bernoulli(p) per pixel (Table 4).

    Hand-written: a few tensor ops, and no library has this exact perturbation.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"noise probability p must be in [0, 1], got {p}")
    gen = torch.Generator().manual_seed(int(seed))
    n, _, h, w = x.shape
    mask = (torch.rand((n, 1, h, w), generator=gen) < p).to(x.dtype)
    gauss = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return torch.clamp(x + (mask * gauss * sigma).to(x.device), 0, 1)


def linf_noise(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, seed: int
) -> torch.Tensor:
    """A random corner of the L-inf ball: x + eps·s with s uniform in {−1, +1}, clipped to [0, 1].

    The blind baseline of Carlini et al.'s checklist: if noise of the attack's own size fools a
    sample that gradient attacks cannot, the gradients mislead. Hand-written because no library
    draws corners (torchattacks' random start is uniform inside the ball, a weaker probe).
    """
    gen = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, x.shape, generator=gen, dtype=torch.int64).to(x.dtype) * 2 - 1
    return torch.clamp(x + eps * signs.to(x.device), 0, 1)


def l2_noise(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, seed: int
) -> torch.Tensor:
    """A random point on the L2 sphere of radius eps: x + eps·g/‖g‖₂, g ~ N(0, I), clipped.

    The L2 twin of `linf_noise`: a Gaussian draw's direction is uniform on the sphere, and the
    [0, 1] clip only shortens the step. Hand-written: no library draws points on the sphere.
    """
    gen = torch.Generator().manual_seed(int(seed))
    g = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    norms = g.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    step = eps * g / norms.view(-1, *([1] * (x.dim() - 1)))
    return torch.clamp(x + step.to(x.device), 0, 1)


register(
    "noise",
    {"ours": pixel_noise},
    "none",
    {"p": 0.4, "sigma": 128 / 255, "seed": 0},
    randomized=True,
    averaged_over_draws=True,
    sweep={"p": TABLE4_P},
    record={"sigma_is": SIGMA_READING, "mask": "pixel"},
    fills=("noise_acc",),
)
register(
    "linf-noise",
    {"ours": linf_noise},
    "linf",
    {"eps": 8 / 255, "seed": 0},
    randomized=True,
    averaged_over_draws=True,
)
register(
    "l2-noise",
    {"ours": l2_noise},
    "l2",
    {"eps": 0.5, "seed": 0},  # RobustBench's CIFAR-10 L2 budget, as `pgd-l2`'s default
    randomized=True,
    averaged_over_draws=True,
)
