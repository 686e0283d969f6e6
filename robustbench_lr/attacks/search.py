"""Minimum-perturbation searches (Table 3, Table 10, Appendix D.3) and step curves (Fig. 11).

Written here because no library does them: torchattacks and foolbox run a fixed number of
steps on a whole batch with one ε. The paper's searches need per-sample early stopping (the
update stops at the first misclassification, D.3-D.4), per-sample ε (batched bisection) and the
prediction after every step (D.4). The update is Eq. 5 / Eq. 6 exactly as in `iterative.py`
(same projection, summed cross-entropy); `tests/test_attacks.py` checks that a sample the search
never fools ends where torchattacks' PGD ends.

Black-box variants pass a `judge`: gradients come from `model` (the source), success is
decided by the judge (the target).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lr.attacks.base import (
    frozen,
    least_likely,
    linf_project,
    model_device,
    rho,
)
from robustbench_lr.evaluation import predict
from robustbench_lr.registry import Registry

# A step rule turns logits and labels into the loss whose gradient sign the update ascends.
StepRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
STEP_RULES: Registry[StepRule] = Registry("searchable attack")
STEP_RULES.add("ifsgm", lambda logits, y: F.cross_entropy(logits, y, reduction="sum"))
STEP_RULES.add(
    "ill", lambda logits, y: -F.cross_entropy(logits, least_likely(logits, y), reduction="sum")
)


def _ascend(
    rule: StepRule,
    logits: torch.Tensor,
    xa: torch.Tensor,
    x0: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """One signed-gradient step from `xa` (whose graph produced `logits`), projected (Eq. 5-6)."""
    (grad,) = torch.autograd.grad(rule(logits, y), xa)
    return linf_project(xa.detach() + alpha * grad.sign(), x0, eps)


def _per_sample(eps: float | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    if torch.is_tensor(eps):
        return eps.to(device=device, dtype=torch.float32)
    return torch.full((n,), float(eps), device=device)


def attack_until_fooled(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str,
    eps: float | torch.Tensor,
    alpha: float,
    max_steps: int,
    judge: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Iterate `attack`'s update, each sample stopping at its first misclassification (D.3).

    Returns `(x_adv, steps)`: the first misclassified iterate (or the last one) and how many
    updates each sample received. Stopped samples leave the batch, so the cost is at most one
    forward+backward pass more than the steps the samples actually needed. `eps` may be a
    per-sample tensor (N,).
    """
    with frozen(model), frozen(judge or model):
        return _until_fooled(STEP_RULES.get(attack), model, x, y, eps, alpha, max_steps, judge)


def _until_fooled(
    rule: StepRule,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    alpha: float,
    max_steps: int,
    judge: nn.Module | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    x_adv = x.clone()
    steps = torch.zeros(len(x), dtype=torch.long, device=device)
    # The samples still standing, kept compact: their original index, iterate, clean input,
    # label and ε. A sample that falls is written back to x_adv and dropped.
    idx = torch.arange(len(x), device=device)
    cur, x0, yy, ee = x.clone(), x, y, _per_sample(eps, len(x), device)
    for t in range(max_steps + 1):
        final = t == max_steps
        xa = cur.detach().requires_grad_(not final)
        if judge is None or not final:
            with torch.set_grad_enabled(not final):
                logits = model(xa)
        if judge is None:
            judged = logits.detach()
        else:
            with torch.no_grad():
                judged = judge(xa.detach())
        standing = judged.argmax(1) == yy
        rows = None
        if not standing.all():
            x_adv[idx[~standing]] = xa.detach()[~standing]
            rows = standing.nonzero().flatten()
            idx, cur, x0, yy, ee = idx[rows], cur[rows], x0[rows], yy[rows], ee[rows]
        if final or len(idx) == 0:
            break
        kept = logits if rows is None else logits[rows]
        (grad,) = torch.autograd.grad(rule(kept, yy), xa)
        base, grad = (xa.detach(), grad) if rows is None else (xa.detach()[rows], grad[rows])
        cur = linf_project(base + alpha * grad.sign(), x0, ee)
        steps[idx] += 1
    x_adv[idx] = cur.detach()
    return x_adv, steps


def _fooled(judge: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return predict(judge, x_adv) != y.to(model_device(judge))


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
    tol: float
    evaluations: tuple[tuple[float, float], ...]


def _grid_size(eps_max: float, tol: float) -> int:
    if tol <= 0 or eps_max <= 0:
        raise ValueError(f"tol and eps_max must be positive, got tol={tol}, eps_max={eps_max}")
    return max(1, math.ceil(eps_max / tol - 1e-9))


def threshold_search(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str,
    alpha: float,
    max_steps: int,
    tol: float,
    eps_max: float,
    rate: float = 0.99,
    judge: nn.Module | None = None,
) -> ThresholdResult:
    """Bisection over ε on the grid k·tol for the >`rate` misclassification threshold (D.3).

    On a grid, the reported ε misclassifies more than `rate` and ε − tol was evaluated and
    does not: the bisection ends when the bracket is one grid step wide.
    """
    judge_model = judge or model
    k_max = _grid_size(eps_max, tol)
    runs: dict[int, tuple[float, torch.Tensor]] = {}

    def evaluate(k: int) -> float:
        x_adv, _ = attack_until_fooled(
            model, x, y, attack=attack, eps=k * tol, alpha=alpha, max_steps=max_steps, judge=judge
        )
        fooled = _fooled(judge_model, x_adv, y.to(x_adv.device))
        # An exact fraction: a float32 mean makes 99/100 = 0.99000001, "more than 99 %".
        runs[k] = (int(fooled.sum()) / len(fooled), x_adv)
        return runs[k][0]

    lo, hi = 0, k_max
    if evaluate(0) > rate:
        hi = 0
    elif evaluate(k_max) <= rate:
        return ThresholdResult(
            math.nan, runs[k_max][0], math.nan, math.nan, tol, _history(runs, tol)
        )
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if evaluate(mid) > rate:
            hi = mid
        else:
            lo = mid
    share, x_adv = runs[hi]
    x_dev = x.to(x_adv.device)
    per = rho(x_adv, x_dev)
    turned = _fooled(judge_model, x_adv, y.to(x_adv.device)) & ~_fooled(
        judge_model, x_dev, y.to(x_adv.device)
    )
    rho_fooled = per[turned].mean().item() if turned.any() else math.nan
    return ThresholdResult(hi * tol, share, per.mean().item(), rho_fooled, tol, _history(runs, tol))


def _history(
    runs: dict[int, tuple[float, torch.Tensor]], tol: float
) -> tuple[tuple[float, float], ...]:
    return tuple((k * tol, share) for k, (share, _) in runs.items())


def per_sample_min_eps(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str,
    alpha: float,
    max_steps: int,
    tol: float,
    eps_max: float,
    judge: nn.Module | None = None,
) -> torch.Tensor:
    """Each sample's smallest grid ε (k·tol) at which the early-stopped attack fools it.

    Batched bisection: every round runs one early-stopped attack with a per-sample ε on the
    samples whose bracket is still open, so all samples share each forward/backward pass.
    0 for samples misclassified clean, +inf for samples not fooled at `eps_max`.
    Returned on CPU, shape (N,).
    """
    judge_model = judge or model
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    k_max = _grid_size(eps_max, tol)
    lo = torch.zeros(len(x), dtype=torch.long, device=device)
    hi = torch.full_like(lo, k_max)
    hi[_fooled(judge_model, x, y)] = 0
    open_ = hi > 0
    if open_.any():
        idx = open_.nonzero().flatten()
        x_adv, _ = attack_until_fooled(
            model,
            x[idx],
            y[idx],
            attack=attack,
            eps=k_max * tol,
            alpha=alpha,
            max_steps=max_steps,
            judge=judge,
        )
        never = ~_fooled(judge_model, x_adv, y[idx])
        hi[idx[never]] = k_max + 1  # marks "not fooled within eps_max"
    while True:
        idx = ((hi - lo > 1) & (hi <= k_max)).nonzero().flatten()
        if len(idx) == 0:
            break
        mid = (lo[idx] + hi[idx]) // 2
        x_adv, _ = attack_until_fooled(
            model,
            x[idx],
            y[idx],
            attack=attack,
            eps=mid.float() * tol,
            alpha=alpha,
            max_steps=max_steps,
            judge=judge,
        )
        fooled = _fooled(judge_model, x_adv, y[idx])
        hi[idx[fooled]] = mid[fooled]
        lo[idx[~fooled]] = mid[~fooled]
    out = hi.double() * tol
    out[hi > k_max] = math.inf
    return out.cpu()


def accuracy_curve(min_eps: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Robust accuracy (%) at each ε of `grid` from per-sample minimal ε: mean(ε_min > ε)."""
    return 100.0 * (min_eps[None, :] > grid[:, None]).double().mean(1)


def step_accuracies(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str,
    eps: float,
    alpha: float,
    steps: int,
    judge: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Instantaneous and cumulative accuracy a_I(k), a_C(k) for k = 0..steps (Appendix D.4).

    a_I(k) is the share of samples whose prediction after k steps equals the clean prediction
    y_a(x; 0); a_C(k) the share whose prediction equalled it at every step j ≤ k, so a_C is
    non-increasing while a_I need not be (Fig. 11). Both in percent, on CPU.
    """
    rule = STEP_RULES.get(attack)
    judge_model = judge or model
    with frozen(model), frozen(judge_model):
        return _step_accuracies(rule, model, judge_model, x, y, eps, alpha, steps)


def _step_accuracies(
    rule: StepRule,
    model: nn.Module,
    judge_model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    eps_t = _per_sample(eps, len(x), device)
    with torch.no_grad():
        clean_pred = judge_model(x).argmax(1)
    same = torch.ones(len(x), dtype=torch.bool, device=device)
    instant, cumulative = [100.0], [100.0]
    x_adv = x.clone()
    for _ in range(steps):
        xa = x_adv.requires_grad_(True)
        x_adv = _ascend(rule, model(xa), xa, x, y, eps_t, alpha)
        with torch.no_grad():
            now = judge_model(x_adv).argmax(1) == clean_pred
        same &= now
        instant.append(100.0 * now.float().mean().item())
        cumulative.append(100.0 * same.float().mean().item())
    return torch.tensor(instant), torch.tensor(cumulative)
