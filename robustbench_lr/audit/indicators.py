"""Per-example indicators of attack failure (Pintor et al. 2022) and the cross-attack check.

Pintor et al., "Indicators of Attack Failure: Debugging and Improving Optimization of
Adversarial Examples" (NeurIPS 2022) flag, per example, the ways an attack fails without
saying so. The audit computes three of them from what the battery already has, the recorded
paths of its signed-gradient runs (`Battery.paths`) and one batched noise probe; the other two,
unconstrained-attack failure and transfer failure, are the `unbounded-to-chance`,
`deepfool-succeeds` and `whitebox-beats-transfer` checks.

The cross-attack check asks the battery to agree with itself: DeepFool's minimal perturbation
is an adversarial example; if it lies inside the ε-ball, an example every bounded attack calls
robust at ε is robust only because the attacks missed it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from robustbench_lr.audit.battery import Battery
from robustbench_lr.audit.verdict import TOLERANCE_PP, WARN_PP, Flagged, Measured, graded

# Incomplete optimization (Pintor et al.'s defaults; `still_rising`).
INCOMPLETE_LAST = 10
INCOMPLETE_RISE = 0.05
# Its verdict has wider bands than the other per-example checks: IFSGM-100 at Madry's step
# size leaves a few robust inputs still climbing slowly (4 % of the digits N-LR model's at
# 32/255, with CE ~0.05, far from the boundary, and APGD breaks none of them); a tenth of the
# examples means the budget decides the robust accuracy.
INCOMPLETE_PASS_PP, INCOMPLETE_WARN_PP = 5.0, 10.0
# Unstable predictions: noise U[−ε/8, ε/8] per pixel, far inside the ball (Pintor et al. use
# a width of 8/255, i.e. ±4/255, which is ε/8 at the digits ε of 32/255); 8 draws per example;
# flagged when the loss changes by more than itself on average (an honest digits model's
# largest change is ~0.6).
UNSTABLE_RADIUS_OF_EPS = 1 / 8
UNSTABLE_DRAWS = 8
UNSTABLE_RELATIVE = 1.0


_PER = f"{1 / UNSTABLE_RADIUS_OF_EPS:g}"
# By threat: the probe noise's per-pixel half-width per unit of ε/8 (d: values per input), and
# how the check's detail names that noise. L∞: r = ε/8. L2: r = ε/8·√(3/d), whose expected L2
# size √(d·r²/3) is ε/8: "far inside the ball" in the ball's own norm (per-pixel ε/8 noise
# would be most of an L2 ball's radius).
PROBE_NOISE: dict[str, tuple[Callable[[int], float], str]] = {
    "Linf": (lambda dims: 1.0, f"U[-eps/{_PER}, eps/{_PER}] noise"),
    "L2": (lambda dims: math.sqrt(3 / dims), f"uniform noise of L2 size ~eps/{_PER}"),
}


def probe_radius(eps: float, threat: str, dims: int) -> float:
    """The per-pixel half-width of the stability probe's noise at audit ε under `threat`."""
    return UNSTABLE_RADIUS_OF_EPS * eps * PROBE_NOISE[threat][0](dims)


def _skip(detail: str) -> Measured:
    return Measured("skip", "flagged %", math.nan, "allowed %", TOLERANCE_PP, detail)


def _graded_share(
    found: Flagged, detail: str, allowed: float = TOLERANCE_PP, warn: float = WARN_PP
) -> Measured:
    status = graded(found.share, allowed, warn)
    return found.measured(status, "flagged %", found.share, "allowed %", allowed, detail)


def silent_success(b: Battery) -> Measured:
    """Correct inputs that some iterate on a recorded path fooled but whose returned point the
    model still classifies correctly: the attack found an adversarial example and dropped it.

    The signed-gradient loop returns its best iterate, so on the audit's own runs this is 0 by
    construction and the check guards that; a run that returns its last iterate (a library
    PGD) is what it catches.
    """
    if not b.paths:
        return _skip("no run of the battery recorded its path")
    flags = torch.zeros_like(b.clean)
    for label, path in b.paths.items():
        flags |= path.fooled.any(0) & b.flags(label)
    found = Flagged.of(b.clean & flags)
    detail = (
        f"{found.count} of {len(flags)} examples fooled on the path of {', '.join(b.paths)} "
        "but not by the returned point"
    )
    return _graded_share(found, detail)


def still_rising(loss: torch.Tensor) -> torch.Tensor:
    """Per sample (columns of `loss`, (T + 1, N)): the best loss so far, scaled to [0, 1] over
    the path, rose by more than `INCOMPLETE_RISE` over the last `INCOMPLETE_LAST` iterates.

    The running best, not the loss itself: a path that oscillates around a maximum it has
    found has converged (Pintor et al.'s monotone rescaling). NaN (a sample that had stopped)
    never raises the best.
    """
    best = loss.nan_to_num(-math.inf).cummax(0).values
    low, high = best[0], best[-1]
    span = (high - low).clamp_min(torch.finfo(best.dtype).tiny)
    window = best[-min(INCOMPLETE_LAST, len(best))]
    return (high - window) / span > INCOMPLETE_RISE


def incomplete_optimization(b: Battery) -> Measured:
    """Inputs the audit calls robust (no attack at ε fools them) while the longest recorded
    run's loss was still rising at its end: the verdict rests on an attack that ran out of
    steps while still making progress, so the budget is too small."""
    # The recorded gradient run at ε with the most steps: the battery's largest budget, the
    # one whose convergence the verdict depends on.
    at_eps = [label for label in b.paths if b.runs[label].role == "gradient"]
    label = max(at_eps, key=lambda label: len(b.paths[label].loss), default=None)
    if label is None:
        return _skip("no gradient run at eps recorded its path")
    found = Flagged.of(b.worst_case & still_rising(b.paths[label].loss))
    detail = (
        f"{found.count} of {len(b.clean)} examples robust to every attack with the loss of "
        f"{label} still rising by > {INCOMPLETE_RISE:g} (scaled) over its last "
        f"{INCOMPLETE_LAST} iterates (allowed {INCOMPLETE_PASS_PP:g}%)"
    )
    return _graded_share(found, detail, INCOMPLETE_PASS_PP, INCOMPLETE_WARN_PP)


def unstable_predictions(b: Battery) -> Measured:
    """Correct inputs whose loss changes by more than itself under noise far inside the ball:
    a shattered or stochastic loss surface the attacks cannot follow."""
    if b.instability is None:
        return _skip("the stability probe was not run")
    found = Flagged.of(b.clean & (b.instability > UNSTABLE_RELATIVE))
    detail = (
        f"{found.count} of {len(b.clean)} correct inputs change their loss by > "
        f"{UNSTABLE_RELATIVE:.0%} on average under {PROBE_NOISE[b.threat][1]} "
        f"({UNSTABLE_DRAWS} draws)"
    )
    return _graded_share(found, detail)


def perturbation_l2(b: Battery, label: str) -> torch.Tensor:
    """Per example, ‖x_adv − x‖₂ of a run: its ρ times ‖x‖₂ (the harness keeps ρ only)."""
    return b.evaluations[label].rho.amax(0) * b.input_norms


def consistent_across_attacks(b: Battery) -> Measured:
    """Examples DeepFool fools within the ε-ball that every bounded attack at ε calls robust.

    The harness keeps DeepFool's ρ = ‖r‖₂/‖x‖₂, not its L∞ size; since ‖r‖∞ ≤ ‖r‖₂, a point
    with ρ·‖x‖₂ ≤ ε lies in the L∞ ε-ball, so every flagged example is a proven miss of the
    bounded attacks (some with ‖r‖∞ ≤ ε < ‖r‖₂ go unflagged: the check is one-sided). In an
    L2 audit ‖r‖₂ is the ball's own norm and the check is exact.
    """
    # The battery's unbounded minimum-norm run (DeepFool): the one without an ε of its own.
    label = next((k for k, r in b.runs.items() if "eps" not in r.params), None)
    if label is None or b.input_norms is None:
        return _skip("no minimum-norm (DeepFool) run in the battery")
    inside = ~b.flags(label) & (perturbation_l2(b, label) <= b.options.eps + 1e-7)
    found = Flagged.of(b.worst_case & inside)
    detail = (
        f"{found.count} of {len(b.clean)} examples fooled by {label} with ‖r‖₂ ≤ eps "
        f"but robust to every attack at eps: {list(found.indices)}"
    )
    return _graded_share(found, detail)
