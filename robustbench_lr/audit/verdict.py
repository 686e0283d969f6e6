"""What a check measures and how a difference becomes a verdict: shared by every check module."""

from __future__ import annotations

from dataclasses import dataclass

import torch

TOLERANCE_PP = 1.0  # Carlini et al.'s "more steps never help", with 1 pp of noise
WARN_PP = 3.0  # beyond the tolerance but within this: warn, not fail


@dataclass(frozen=True)
class Measured:
    """What a check function found: its verdict, the two numbers compared (a vs b), and, for a
    per-example check, the examples it flagged: `count`, `share` (% of all examples audited)
    and `flagged` (their positions in the audited subset)."""

    status: str
    a_label: str
    a: float
    b_label: str
    b: float
    detail: str
    count: int | None = None
    share: float | None = None
    flagged: tuple[int, ...] = ()


def graded(excess: float, tolerance: float = TOLERANCE_PP, warn: float = WARN_PP) -> str:
    """pass within the tolerance, warn within the warn band, fail beyond (both in pp)."""
    return "pass" if excess <= tolerance + 1e-9 else "warn" if excess <= warn + 1e-9 else "fail"


@dataclass(frozen=True)
class Flagged:
    """Examples a per-example check flagged: how many, their share (%) of all, and which."""

    count: int
    share: float
    indices: tuple[int, ...]

    @classmethod
    def of(cls, mask: torch.Tensor) -> Flagged:
        count = int(mask.sum())
        share = 100.0 * count / len(mask) if len(mask) else 0.0
        return cls(count, share, tuple(mask.nonzero().flatten().tolist()))

    def measured(
        self, status: str, a_label: str, a: float, b_label: str, b: float, detail: str
    ) -> Measured:
        """The `Measured` of a check whose verdict rests on these examples."""
        return Measured(
            status, a_label, a, b_label, b, detail, self.count, self.share, self.indices
        )
