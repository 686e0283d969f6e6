"""Standard AutoAttack from its authors beside torchattacks' port.

The audit's APGD / FAB / Square come from torchattacks, whose AutoAttack numbers differ from
the original's (its users have reported gaps on the same models). A robustness claim checked
only by a port is checked by the port, so the audit also runs the authors' own
`AutoAttack(version="standard")` (Croce & Hein 2020, `pyautoattack`; the registered attack
`autoattack-standard`) and reports how far the two agree example by example.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robustbench_lr.attacks import DEFAULT_BATCH, robust_flags, run_attack

ATTACK = "autoattack-standard"


def standard_autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH,
    **budget: Any,
) -> torch.Tensor:
    """Per example (bool, shape (N,), on the CPU): still classified correctly under AutoAttack.

    `x` in [0, 1], `model` returns logits; runs on the model's device. `budget` lowers the
    standard settings for CPU profiles (`steps`, `targets`, `queries`; defaults 100, 9, 5000).
    The same seed gives the same flags for the same `batch_size` (each chunk's seed is derived
    from `seed` and the chunk's start, as for every randomized attack).
    """
    x_adv = run_attack(ATTACK, model, x, y, batch_size=batch_size, eps=eps, seed=seed, **budget)
    return robust_flags(model, x_adv, y)


def agreement(standard_flags: torch.Tensor, port_flags: torch.Tensor) -> dict[str, float]:
    """How far the authors' AutoAttack and torchattacks' port agree, example by example.

    Both are per-example robust flags over the same examples (True = still correct). Returns
    `agreement`, the share (%) with the same verdict (NaN on no examples), `n`, and the counts
    `both_robust`, `both_broken`, `only_port_broke` and `only_standard_broke` (the port
    overstated robustness there).
    """
    standard, port = standard_flags.bool().flatten().cpu(), port_flags.bool().flatten().cpu()
    if standard.shape != port.shape:
        raise ValueError(f"flags cover {len(standard)} and {len(port)} examples: not the same set")
    n = len(standard)
    return {
        "agreement": 100.0 * int((standard == port).sum()) / n if n else math.nan,
        "n": n,
        "both_robust": int((standard & port).sum()),
        "both_broken": int((~standard & ~port).sum()),
        "only_standard_broke": int((~standard & port).sum()),
        "only_port_broke": int((standard & ~port).sum()),
    }
