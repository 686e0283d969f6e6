"""`SEARCHES`: one entry per minimum-perturbation search (Tables 3 and 10), DeepFool's beside
the step-rule ones, so callers (minrho, Table 6's matched protocol) look a search up instead of
asking whether it is DeepFool. Black-box variants pass a `judge`: gradients come from `model`
(the source), success is decided by the judge (the target).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robustbench_lr.attacks import DEFAULT_BATCH, run_attack
from robustbench_lr.attacks.harness import evaluate_attack
from robustbench_lr.attacks.loop import STEP_RULES
from robustbench_lr.attacks.precision import verdict
from robustbench_lr.attacks.search.threshold import EpsSearch, accuracy_curve, attack_until_fooled
from robustbench_lr.registry import Registry
from robustbench_lr.settings import Budget, Count, Rate, setting


@dataclass(frozen=True)
class SearchSettings:
    """The knobs of every search (`robustbench-lr minrho`'s flags; D.3: α = 1/255).

    The step-rule searches read the rest; DeepFool finds its own minimum and reads only backend
    and batch_size.
    """

    alpha: float = setting(1 / 255, Budget, "step size of ifsgm / ill, as in Appendix D")
    max_steps: int = setting(50, Count, "steps before a sample counts as not fooled")
    tol: float = setting(0.5 / 255, Budget, "bisection resolution in eps")
    eps_max: float = setting(64 / 255, Budget, "largest eps searched")
    rate: float = setting(0.99, Rate, "misclassified share to exceed")
    per_sample: bool = setting(
        False,
        help="also each sample's minimal eps (batched bisection) -> accuracy-vs-eps curve rows",
    )
    backend: str | None = setting(None, help="deepfool backend (default: ours)")
    batch_size: int = DEFAULT_BATCH


@dataclass(frozen=True)
class MinimumPerturbation:
    """What one search found on a subset, in the terms the `minrho` rows record (Tables 3, 10).

    - `params`: the settings, ready for `harness.setting_fields(params, extra)`.
    - `metrics`: rho, rho_fooled, misclassified (%); for the step-rule searches eps (Table 10)
      and, with `per_sample`, median_eps.
    - `bisection`: (ε, misclassified %) at every ε the bisection ran, in order; `curve`:
      (ε, robust accuracy %) at every grid ε from each sample's minimal ε (`per_sample`). Both
      empty for DeepFool.
    """

    attack: str
    backend: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    bisection: tuple[tuple[float, float], ...] = ()
    curve: tuple[tuple[float, float], ...] = ()


# find(target, x, y, settings, source): the search on `target`, crafted on `source` if given.
Find = Callable[[nn.Module, Tensor, Tensor, SearchSettings, nn.Module | None], MinimumPerturbation]
# matched(model, judge, x, y, backend, params): Table 6's N-LR protocol (D.5), examples from
# `model`'s gradients, each pushed on until `judge` misclassifies it; `backend` and `params` are
# the attack's resolved ones (`attacks.resolve`); the step-rule searches run the loop (ours).
Matched = Callable[[nn.Module, nn.Module, Tensor, Tensor, str, Mapping[str, Any]], Tensor]


@dataclass(frozen=True)
class Search:
    """One minimum-perturbation search: how it finds the minimum, and how it is matched."""

    name: str
    find: Find
    matched: Matched


SEARCHES: Registry[Search] = Registry("minrho attack")


def _step_rule_search(name: str) -> Search:
    """`name`'s ε bisection of its early-stopped update, and the matched protocol's version of
    that early stop: `model`'s gradients, the other model's verdict, the run's own ε and steps."""

    def find(
        target: nn.Module, x: Tensor, y: Tensor, settings: SearchSettings, source: nn.Module | None
    ) -> MinimumPerturbation:
        crafter, judge = (target, None) if source is None else (source, target)
        s = EpsSearch(
            name, settings.alpha, settings.max_steps, settings.tol, settings.eps_max, judge
        )
        min_eps = s.min_eps(crafter, x, y) if settings.per_sample else None
        found = s.threshold(crafter, x, y, settings.rate, min_eps)
        metrics = {
            "eps": found.eps,
            "rho": found.rho,
            "rho_fooled": found.rho_fooled,
            "misclassified": 100.0 * found.misclassified,
        }
        curve: tuple[tuple[float, float], ...] = ()
        if min_eps is not None:
            grid = s.grid()
            curve = tuple(zip(grid.tolist(), accuracy_curve(min_eps, grid).tolist(), strict=True))
            metrics["median_eps"] = min_eps.median().item()
        params = {
            "alpha": settings.alpha,
            "steps": settings.max_steps,
            "tol": settings.tol,
            "eps_max": settings.eps_max,
            "rate": settings.rate,
        }
        bisection = tuple((eps, 100.0 * share) for eps, share in found.evaluations)
        return MinimumPerturbation(name, "ours", params, metrics, bisection, curve)

    def matched(
        model: nn.Module, judge: nn.Module, x: Tensor, y: Tensor, backend: str, params: Mapping
    ) -> Tensor:
        eps, alpha, steps = float(params["eps"]), float(params["alpha"]), int(params["steps"])
        x_adv, _ = attack_until_fooled(
            model, x, y, attack=name, eps=eps, alpha=alpha, max_steps=steps, judge=judge
        )
        return x_adv

    return Search(name, find, matched)


def _deepfool_find(
    target: nn.Module, x: Tensor, y: Tensor, settings: SearchSettings, source: nn.Module | None
) -> MinimumPerturbation:
    """L2 DeepFool's own minimal perturbation: ρ of the subset (Table 3), no ε to search."""
    run = {"backend": settings.backend, "batch_size": settings.batch_size}
    ev = evaluate_attack("deepfool", target, x, y, source=source, **run)
    metrics = {"rho": ev.mean_rho, "rho_fooled": ev.rho_fooled, "misclassified": 100.0 - ev.acc}
    return MinimumPerturbation("deepfool", ev.backend, ev.params, metrics)


# Scales DeepFool's perturbation is tried at under the matched protocol: 1, 1.05, ..., ~20.
EXTEND_SCALES = tuple(1.05**k for k in range(62))


def extend_until_fooled(judge: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
    """Per sample, `clip(x + s·(x_adv − x), 0, 1)` at the smallest s in EXTEND_SCALES that
    `judge` misclassifies (the largest s where none does). Batched over samples; one forward
    pass of the batch per scale."""
    x, y = x.to(x_adv.device), y.to(x_adv.device)
    r = x_adv - x
    out = (x + EXTEND_SCALES[-1] * r).clamp(0, 1)
    standing = torch.arange(len(x), device=x.device)  # samples the judge still gets right
    for scale in EXTEND_SCALES:
        candidate = (x[standing] + scale * r[standing]).clamp(0, 1)
        fooled = (~verdict(judge, candidate, y[standing])).to(x.device)
        out[standing[fooled]] = candidate[fooled]
        standing = standing[~fooled]
        if len(standing) == 0:
            break
    return out


def _deepfool_matched(
    model: nn.Module, judge: nn.Module, x: Tensor, y: Tensor, backend: str, params: Mapping
) -> Tensor:
    """DeepFool has no iteration past `model`'s own boundary (its next step would walk back),
    so its perturbation r is extended along its direction, x + s·r, until `judge` is fooled."""
    x_adv = run_attack("deepfool", model, x, y, backend=backend, **params)
    return extend_until_fooled(judge, x, x_adv, y)


for _rule in STEP_RULES:
    SEARCHES.add(_rule, _step_rule_search(_rule))
SEARCHES.add("deepfool", Search("deepfool", _deepfool_find, _deepfool_matched))
