"""The one signed-gradient loop behind IFSGM, ILL (Eq. 5-6), the ρ searches and the step curves.

    x_{n+1} = clip_{x,ε}(x_n + α·sign(∇ L(x_n)))

Every hand-written L-inf attack of the suite is this update with its own loss (step rule),
stopping rule and record of the path, so a fix or a speed-up reaches every number built on it.

The loop returns each sample's best iterate: the latest one that fooled the judge, else the
final one. An attack whose last step walks back across the boundary has still found an
adversarial example; reporting it robust would count the attack's silent success for the defence.

Crafting in another precision than float32, a "fooled" call that stops a sample is confirmed in
strict float32 before it stops (`precision.confirm_fooled`), and the best iterates are confirmed
once at the end (one pass, not one per fooled sample per step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lr.attacks.base import frozen, least_likely, linf_project
from robustbench_lr.attacks.precision import confirm_fooled, crafting
from robustbench_lr.devices import model_device
from robustbench_lr.registry import Registry

# A step rule turns logits and the labels it is given into the summed loss whose signed
# gradient the update ascends. Summed, not averaged: a sample's path must not depend on which
# other samples share its batch.
StepRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def away_from_label(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """IFSGM (Eq. 5): ascend the cross-entropy of the true class."""
    return F.cross_entropy(logits, labels, reduction="sum")


def towards_least_likely(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ILL (Eq. 6): descend the cross-entropy of `argmin_y P(y|x_n)`, read from these logits.

    The target comes from the same forward pass that gives the gradient, so recomputing it at
    every step costs nothing.
    """
    return -F.cross_entropy(logits, least_likely(logits, labels), reduction="sum")


def towards_label(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Descend the cross-entropy of a target fixed up front (passed as the loop's `labels`)."""
    return -F.cross_entropy(logits, labels, reduction="sum")


# The step rules an attack name selects for the searches and the step curves.
STEP_RULES: Registry[StepRule] = Registry("searchable attack")
STEP_RULES.add("ifsgm", away_from_label)
STEP_RULES.add("ill", towards_least_likely)

# A stopping rule maps "the current iterate fools the judge" (per sample still iterating) to
# "this sample stops here".
StopRule = Callable[[torch.Tensor], torch.Tensor]


def run_all_steps(fooled: torch.Tensor) -> torch.Tensor:
    """Fixed-step attacks (Tables 1-2) and step curves: nobody stops early."""
    return torch.zeros_like(fooled)


def stop_when_fooled(fooled: torch.Tensor) -> torch.Tensor:
    """The searches' early stopping (D.3): the update stops at the first misclassification."""
    return fooled


@dataclass(frozen=True)
class Step:
    """What the per-step callback sees: the iterates after `step` updates (0: the start).

    `index` (M,) are the original positions of the M samples still iterating, `x_adv` their
    iterates, `logits` the judge's logits on them (detached, in the crafting precision), `fooled`
    the loop's call `argmax ≠ y`, confirmed in strict float32 where it stops a sample.
    """

    step: int
    index: torch.Tensor
    x_adv: torch.Tensor
    logits: torch.Tensor
    fooled: torch.Tensor


StepHook = Callable[[Step], None]

# Hooks every loop run inside an `observing` block calls besides its own `on_step`.
_OBSERVERS: ContextVar[tuple[StepHook, ...]] = ContextVar("loop_observers", default=())


@contextmanager
def observing(hook: StepHook) -> Iterator[StepHook]:
    """Every `signed_gradient_loop` run inside the block also calls `hook` at each judged iterate.

    Callers that reach the loop only through `run_attack` (the audit) record paths this way,
    without an `on_step` argument threaded through every layer between them and it.
    """
    token = _OBSERVERS.set((*_OBSERVERS.get(), hook))
    try:
        yield hook
    finally:
        _OBSERVERS.reset(token)


@dataclass(frozen=True)
class PathRecord:
    """Per sample, at every judged iterate t = 0..T: `loss` (T + 1, N), the cross-entropy of the
    true label on the judge's logits (NaN once the sample had stopped), and `fooled` (T + 1, N),
    the loop's call that the iterate is misclassified (`Step.fooled`). On CPU."""

    loss: torch.Tensor
    fooled: torch.Tensor


class PathRecorder:
    """A step hook that keeps the path of every sample: the loss and the verdict at each iterate.

    What Pintor et al. 2022's indicators of attack failure read (silent success, incomplete
    optimization); the loss is the true label's cross-entropy, which every untargeted attack
    raises. `run_attack` calls the loop once per chunk, in order, each starting at step 0 with
    all of its samples, so a new step 0 starts the next chunk's positions.
    """

    def __init__(self, y: torch.Tensor) -> None:
        self.y = y.cpu()
        self.chunks: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.start, self.size = 0, 0

    def __call__(self, step: Step) -> None:
        if step.step == 0:
            self.start, self.size = self.start + self.size, len(step.index)
            self.chunks.append([])
        index = step.index.cpu()
        logits = step.logits.float().cpu()
        loss = torch.full((self.size,), math.nan)
        fooled = torch.zeros(self.size, dtype=torch.bool)
        loss[index] = F.cross_entropy(logits, self.y[self.start + index], reduction="none")
        fooled[index] = step.fooled.cpu()
        self.chunks[-1].append((loss, fooled))

    def record(self) -> PathRecord:
        """The recorded paths side by side, a shorter chunk padded at its end (NaN, False)."""
        steps = max((len(chunk) for chunk in self.chunks), default=0)
        loss = torch.full((steps, len(self.y)), math.nan)
        fooled = torch.zeros(steps, len(self.y), dtype=torch.bool)
        start = 0
        for chunk in self.chunks:
            rows = slice(start, start + len(chunk[0][0]))
            loss[: len(chunk), rows] = torch.stack([pair[0] for pair in chunk])
            fooled[: len(chunk), rows] = torch.stack([pair[1] for pair in chunk])
            start = rows.stop
        return PathRecord(loss, fooled)


@dataclass(frozen=True)
class Iterates:
    """Per sample: `best` (the latest iterate that fooled the judge, else `final`), `final`
    (where its iteration ended), `steps` (updates it received), `fooled` (some iterate fooled
    the judge; crafting in another precision than float32, `best` misclassified in float32).
    Shapes (N, ...) and (N,), on the model's device."""

    best: torch.Tensor
    final: torch.Tensor
    steps: torch.Tensor
    fooled: torch.Tensor


def signed_gradient_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rule: StepRule,
    eps: float | torch.Tensor,
    alpha: float,
    steps: int,
    stop: StopRule = run_all_steps,
    on_step: StepHook | None = None,
    judge: nn.Module | None = None,
    labels: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
) -> Iterates:
    """Up to `steps` signed-gradient updates of `rule`'s loss on `model`, projected (Eq. 5-6).

    Args: eps (L-inf radius, a float or per-sample (N,)), stop (`run_all_steps` or
    `stop_when_fooled`), on_step (called with a `Step` at every judged iterate 0..steps, before any
    enclosing `observing` hook), judge (whose misclassification counts, for black-box success;
    default `model`), labels (what `rule` reads, default `y`: `ill-fixed`'s target, TRADES's clean
    probabilities (N, K)), start (the first iterate, projected into the ball; default `x`: random
    starts are drawn by the callers).

    Every iterate is judged, the last one too (one forward pass more than the updates need),
    so the best iterate is known. Stopped samples leave the batch from the next forward pass on.
    """
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    labels = y if labels is None else labels.to(device)
    with frozen(model), frozen(judge or model), crafting(device):
        hooks = (*((on_step,) if on_step is not None else ()), *_OBSERVERS.get())
        best, final = x.clone(), x.clone()
        fooled_ever = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        taken = torch.zeros(len(x), dtype=torch.long, device=x.device)
        # The samples still iterating, kept compact: original index, iterate, clean input, true
        # label, the rule's label and ε. A sample that stops is written to `final` and dropped.
        idx = torch.arange(len(x), device=x.device)
        if torch.is_tensor(eps):
            ee = eps.to(device=x.device, dtype=torch.float32)
        else:
            ee = torch.full((len(x),), float(eps), device=x.device)
        cur = x.clone() if start is None else linf_project(start.to(x.device), x, ee)
        x0, yy, ll = x, y, labels
        for t in range(steps + 1):
            last = t == steps
            xa = cur.detach().requires_grad_(not last)
            if judge is None or not last:
                with torch.set_grad_enabled(not last):
                    logits = model(xa)
            if judge is None:
                judged = logits.detach()
            else:
                with torch.no_grad():
                    judged = judge(xa.detach())
            fooled = judged.argmax(1) != yy
            if not last:  # a call that stops a sample is a verdict: confirmed before it stops
                ends = stop(fooled) & fooled  # the fooled calls that would stop a sample
                fooled = (fooled & ~ends) | confirm_fooled(judge or model, xa.detach(), yy, ends)
            best[idx[fooled]] = xa.detach()[fooled]
            fooled_ever[idx[fooled]] = True
            if hooks:
                step = Step(t, idx, xa.detach(), judged, fooled)
                for hook in hooks:
                    hook(step)
            halt = torch.ones_like(fooled) if last else stop(fooled)
            rows = None
            if halt.any():
                final[idx[halt]] = xa.detach()[halt]
                rows = (~halt).nonzero().flatten()
                idx, x0, yy, ll, ee = idx[rows], x0[rows], yy[rows], ll[rows], ee[rows]
            if len(idx) == 0:
                break
            kept = logits if rows is None else logits[rows]
            (grad,) = torch.autograd.grad(rule(kept, ll), xa)
            base, grad = (xa.detach(), grad) if rows is None else (xa.detach()[rows], grad[rows])
            cur = linf_project(base + alpha * grad.sign(), x0, ee)
            taken[idx] += 1
        best[~fooled_ever] = final[~fooled_ever]
        confirmed = confirm_fooled(judge or model, best, y, fooled_ever)
        best[fooled_ever & ~confirmed] = final[fooled_ever & ~confirmed]
        return Iterates(best, final, taken, confirmed)
