"""The ε searches themselves: per-sample early-stopped attacks, batched bisection of the
smallest fooling ε, and the prediction after every step (Appendix D.3-D.4, Fig. 11).

Written here because no library does them: torchattacks and foolbox run a fixed number of
steps on a whole batch with one ε. All run `loop.signed_gradient_loop`, the update of
`iterative.py`; every success test is `precision.verdict`'s, in strict float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robustbench_lr.attacks.base import rho
from robustbench_lr.attacks.loop import STEP_RULES, signed_gradient_loop, stop_when_fooled
from robustbench_lr.attacks.precision import crafting_in, verdict
from robustbench_lr.devices import model_device


def attack_until_fooled(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: str,
    eps: float | Tensor,
    alpha: float,
    max_steps: int,
    judge: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Iterate `attack`'s update, each sample stopping at its first misclassification (D.3).

    Returns `(x_adv, steps)`: the first misclassified iterate (or the last one) and how many
    updates each sample received. `eps` may be per-sample (N,).
    """
    run = signed_gradient_loop(
        model,
        x,
        y,
        rule=STEP_RULES.get(attack),
        eps=eps,
        alpha=alpha,
        steps=max_steps,
        stop=stop_when_fooled,
        judge=judge,
    )
    return run.best, run.steps


@dataclass(frozen=True)
class ThresholdResult:
    """Smallest grid ε at which more than `rate` of the subset is misclassified (Table 10).

    `eps` is NaN when even `eps_max` does not reach the rate. `rho` is the mean ρ over the whole
    subset at that ε (SPEC §3), `rho_fooled` over the samples the attack turned wrong.
    `evaluations` lists every (ε, misclassified fraction) the bisection ran, in order.
    """

    eps: float
    misclassified: float
    rho: float
    rho_fooled: float
    evaluations: tuple[tuple[float, float], ...]


def _history(runs: dict[int, tuple[float, Tensor]], tol: float) -> tuple[tuple[float, float], ...]:
    return tuple((k * tol, share) for k, (share, _) in runs.items())


@dataclass(frozen=True)
class EpsSearch:
    """One search over ε of an early-stopped step-rule attack (D.3).

    The ε grid is k·tol for k = 0..size, the first point at or past `eps_max` its last;
    `attack`, `alpha`, `max_steps` and `judge` are `attack_until_fooled`'s. `threshold` finds
    the subset's threshold (Table 10), `min_eps` each sample's minimal ε (the minrho curve).
    """

    attack: str
    alpha: float
    max_steps: int
    tol: float
    eps_max: float
    judge: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.tol <= 0 or self.eps_max <= 0:
            raise ValueError(
                f"tol and eps_max must be positive, got tol={self.tol}, eps_max={self.eps_max}"
            )

    @property
    def size(self) -> int:
        """The largest grid index k."""
        return max(1, math.ceil(self.eps_max / self.tol - 1e-9))

    def grid(self) -> Tensor:
        """Every grid ε, k·tol for k = 0..size (float64, on CPU)."""
        return torch.arange(0, self.size + 1, dtype=torch.float64) * self.tol

    def attack_at(self, model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor) -> Tensor:
        """The early-stopped attack's examples at `eps` (a float or per-sample (N,))."""
        budget = {"alpha": self.alpha, "max_steps": self.max_steps, "judge": self.judge}
        return attack_until_fooled(model, x, y, attack=self.attack, eps=eps, **budget)[0]

    def threshold(
        self, model: nn.Module, x: Tensor, y: Tensor, rate: float, min_eps: Tensor | None = None
    ) -> ThresholdResult:
        """Bisection over the grid for the >`rate` misclassification threshold (D.3).

        The reported ε misclassifies more than `rate` and ε − tol was evaluated and does not.
        Given the samples' minimal ε (`min_eps`), the threshold they imply is tried first with
        its lower neighbour: two attack runs instead of about log2(size) + 2 when it holds, and
        the bisection goes on from the bracket they leave when it does not.
        """
        judge_model = self.judge or model
        runs: dict[int, tuple[float, Tensor]] = {}

        def evaluate(k: int) -> float:
            if k not in runs:
                x_adv = self.attack_at(model, x, y, k * self.tol)
                fooled = ~verdict(judge_model, x_adv, y.to(x_adv.device))
                # An exact fraction: a float32 mean makes 99/100 = 0.99000001, "more than 99 %".
                runs[k] = (int(fooled.sum()) / len(fooled), x_adv)
            return runs[k][0]

        # Invariant of the bracket: evaluate(hi) > rate >= evaluate(lo), once both are run.
        lo, hi = 0, self.size
        implied = self._implied_threshold(min_eps, rate) if min_eps is not None else None
        if implied is not None and implied > 0:
            if evaluate(implied) > rate:
                hi = implied
                if evaluate(implied - 1) <= rate:
                    lo = implied - 1
                else:
                    hi = implied - 1
            else:
                lo = implied
        if lo == 0 and evaluate(0) > rate:
            hi = 0
        elif hi == self.size and evaluate(self.size) <= rate:
            history = _history(runs, self.tol)
            return ThresholdResult(math.nan, runs[self.size][0], math.nan, math.nan, history)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if evaluate(mid) > rate:
                hi = mid
            else:
                lo = mid
        share, x_adv = runs[hi]
        x_dev, y_dev = x.to(x_adv.device), y.to(x_adv.device)
        per = rho(x_adv, x_dev)
        turned = ~verdict(judge_model, x_adv, y_dev) & verdict(judge_model, x_dev, y_dev)
        rho_fooled = per[turned].mean().item() if turned.any() else math.nan
        history = _history(runs, self.tol)
        return ThresholdResult(hi * self.tol, share, per.mean().item(), rho_fooled, history)

    def _implied_threshold(self, min_eps: Tensor, rate: float) -> int | None:
        """The smallest grid index at which more than `rate` of the samples have a minimal ε
        at or below it (None: not within `eps_max`)."""
        share = (min_eps[None, :] <= self.grid()[:, None] + 1e-12).sum(1)
        above = (share / len(min_eps) > rate).nonzero().flatten()
        return int(above[0]) if len(above) else None

    def min_eps(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Each sample's smallest grid ε at which the early-stopped attack fools it, (N,) on CPU.

        Batched bisection, one attack per round on the open brackets. 0 for samples misclassified
        clean, +inf if not fooled at `eps_max`.
        """
        judge_model = self.judge or model
        device = model_device(model)
        x, y = x.to(device), y.to(device)
        lo = torch.zeros(len(x), dtype=torch.long, device=device)
        hi = torch.full_like(lo, self.size)
        hi[~verdict(judge_model, x, y)] = 0
        idx = (hi > 0).nonzero().flatten()
        if len(idx):
            x_adv = self.attack_at(model, x[idx], y[idx], self.size * self.tol)
            hi[idx[verdict(judge_model, x_adv, y[idx])]] = self.size + 1  # "not within eps_max"
        while len(idx := ((hi - lo > 1) & (hi <= self.size)).nonzero().flatten()):
            mid = (lo[idx] + hi[idx]) // 2
            x_adv = self.attack_at(model, x[idx], y[idx], mid.float() * self.tol)
            fooled = ~verdict(judge_model, x_adv, y[idx])
            hi[idx[fooled]] = mid[fooled]
            lo[idx[~fooled]] = mid[~fooled]
        out = hi.double() * self.tol
        out[hi > self.size] = math.inf
        return out.cpu()


def threshold_search(
    model: nn.Module, x: Tensor, y: Tensor, *, rate: float = 0.99, **search: Any
) -> ThresholdResult:
    """`EpsSearch(**search).threshold(model, x, y, rate)`: the keyword form callers use."""
    return EpsSearch(**search).threshold(model, x, y, rate)


def per_sample_min_eps(model: nn.Module, x: Tensor, y: Tensor, **search: Any) -> Tensor:
    """`EpsSearch(**search).min_eps(model, x, y)`: the keyword form callers use."""
    return EpsSearch(**search).min_eps(model, x, y)


def accuracy_curve(min_eps: Tensor, grid: Tensor) -> Tensor:
    """Robust accuracy (%) at each ε of `grid` from per-sample minimal ε: mean(ε_min > ε)."""
    return 100.0 * (min_eps[None, :] > grid[:, None]).double().mean(1)


def step_curves(predictions: Tensor) -> tuple[Tensor, Tensor]:
    """a_I(k), a_C(k) (%) from the judge's predictions (steps + 1, N) after k = 0..steps steps.

    a_I(k) is the share of samples whose prediction after k steps equals the clean prediction
    y_a(x; 0) (row 0); a_C(k) the share whose prediction equalled it at every step j ≤ k, so
    a_C is non-increasing while a_I need not be (Fig. 11, D.4).
    """
    same = predictions == predictions[0]
    cumulative = same.int().cummin(0).values.bool()
    return 100.0 * same.float().mean(1).cpu(), 100.0 * cumulative.float().mean(1).cpu()


def step_accuracies(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: str,
    eps: float,
    alpha: float,
    steps: int,
    judge: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Instantaneous and cumulative accuracy a_I(k), a_C(k) for k = 0..steps (Appendix D.4).

    In percent, on CPU. Every step's predictions are reported accuracies, i.e. verdicts, so this
    run crafts in strict float32 whatever precision is chosen.
    """
    predictions: list[Tensor] = []
    with crafting_in("float32"):
        signed_gradient_loop(
            model,
            x,
            y,
            rule=STEP_RULES.get(attack),
            eps=eps,
            alpha=alpha,
            steps=steps,
            on_step=lambda step: predictions.append(step.logits.argmax(1)),
            judge=judge,
        )
    return step_curves(torch.stack(predictions))
