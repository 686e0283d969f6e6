"""One attack setting of the audit's battery (`Run`) and the ε values of its sweep.

Apart from `battery` so that the per-threat batteries (`threats`) and the battery's results
(`battery.Battery`) can both name a run without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Run:
    """One attack setting of the battery.

    `role`: "gradient" (white-box, uses the target's gradients), "blind" (no gradients of the
    target: Square, transfer, noise), "unbounded" (DeepFool, the ε-sweep). Gradient and blind
    runs at the audit ε form the worst case; `autoattack` marks AutoAttack's four components.
    `backend`: the attack's backend (None: its default). A white-box run whose backend is the
    signed-gradient loop has its path recorded (`Battery.paths`): what the indicators of attack
    failure read, at no extra attack run.
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
