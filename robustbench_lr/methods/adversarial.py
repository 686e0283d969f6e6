"""Adversarial training: PGD-AT (Madry et al., ICLR 2018) and TRADES (Zhang et al., ICML 2019).

The leaderboard's reference points, trained by the same loop, schedule and seeds as the paper's
methods: they replace the data term of the loss (`Method.objective`) and nothing else. Both
craft their inputs with the suite's signed-gradient loop (`attacks.loop`), the L-inf update
behind IFSGM and the searches, so the attack inside training is the harness's own update.

- `pgd-at`: min_θ E[max_{‖δ‖∞≤ε} CE(f(x + δ), y)] (Madry et al., Eq. 2.1). The inner maximum is
  PGD: a uniform random start in the ε-ball, `at_steps` signed steps of size α on the
  cross-entropy (IFSGM's rule), the final iterate; the model trains on that batch alone.
- `trades`: CE(f(x), y) + β·KL(f(x) ‖ f(x')) (Zhang et al., Eq. 5), x' the inner maximizer of
  the KL, started at x + 0.001·N(0, I) as their code does. β = 6 is their CIFAR-10 choice.

Mode: both craft in eval mode (the loop freezes the model) and update in training mode. That is
TRADES's own code and MadryLab's `robustness` library (`AttackerModel.forward`); Madry et al.'s
TF CIFAR code attacked the training graph instead. Eval mode keeps the attack's forward passes
out of the batch-norm running statistics and makes each sample's attack independent of the rest
of its batch, as the loop's summed losses intend.

Budget: `at_eps` 8/255, `at_steps` 10, α = 2.5·ε/steps (Madry's rule; 2/255 at these values,
Madry's CIFAR step). TRADES's CIFAR recipe takes the same ε and 10 steps of 0.007 ≈ 1.8/255.
The random start is drawn on the CPU from the epoch's training generator (the one that
augments), so the same seed gives the same bytes on CPU and the same starts on any device.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from robustbench_lr.attacks.base import ALPHA_RULE, frozen
from robustbench_lr.attacks.loop import away_from_label, signed_gradient_loop
from robustbench_lr.config import parse_fraction
from robustbench_lr.methods.base import (
    Batch,
    Method,
    Objective,
    Option,
    PenaltyTerms,
    at_least,
    checked_option,
)
from robustbench_lr.models import StagedNet

# TRADES's start: x + 0.001·N(0, I) (their train_trades_cifar10.py), a nudge off the clean point,
# where the KL and its gradient are exactly zero.
TRADES_START_STD = 0.001


BUDGET = (
    Option(
        "at_eps",
        checked_option(
            "--at-eps", parse_fraction, lambda v: 0 < v <= 1, "a number in (0, 1] like 8/255"
        ),
        8 / 255,
        "L-inf radius ε of the attack inside training (PGD-AT, TRADES)",
    ),
    at_least("at_steps", int, 1, 10, "signed-gradient steps of the attack inside training"),
    Option(
        "at_alpha",
        checked_option("--at-alpha", parse_fraction, lambda v: v > 0, "a number > 0 like 2/255"),
        None,
        "step size α of that attack (None: Madry's 2.5·ε/steps)",
    ),
)


def step_size(opts: dict[str, Any]) -> float:
    """α as given, else Madry's 2.5·ε/steps: the iterate can cross the ball and walk its edge."""
    if opts["at_alpha"] is not None:
        return opts["at_alpha"]
    return ALPHA_RULE * opts["at_eps"] / opts["at_steps"]


def away_from_distribution(logits: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """TRADES's inner loss: KL(p_clean ‖ softmax(logits)), summed over the batch (a step rule)."""
    return F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="sum")


def _craft(
    model: StagedNet, batch: Batch, opts: dict[str, Any], noise: torch.Tensor, **rule
) -> torch.Tensor:
    """The attack inside training: `at_steps` signed steps of size α in the ε-ball around the
    batch, from `batch.x + noise`; `rule` names the step rule (and any labels it reads)."""
    return signed_gradient_loop(
        model,
        batch.x,
        batch.y,
        eps=opts["at_eps"],
        alpha=step_size(opts),
        steps=opts["at_steps"],
        start=batch.x + noise.to(batch.x.device),
        **rule,
    ).final


def _pgd_objective(model: StagedNet, batch: Batch, opts: dict[str, Any]) -> Objective:
    """Cross-entropy on PGD examples of the batch (uniform random start)."""
    eps = opts["at_eps"]
    noise = torch.empty(batch.x.shape).uniform_(-eps, eps, generator=batch.gen)
    x_adv = _craft(model, batch, opts, noise, rule=away_from_label)
    logits, acts = model.run(x_adv, batch.taps)
    return Objective(F.cross_entropy(logits.float(), batch.y), logits, acts)


def _trades_objective(model: StagedNet, batch: Batch, opts: dict[str, Any]) -> Objective:
    """Clean cross-entropy plus β·KL(f(x) ‖ f(x')), logged apart as `trades_kl`."""
    with torch.no_grad(), frozen(model):
        p_clean = F.softmax(model(batch.x).float(), dim=1)
    noise = TRADES_START_STD * torch.randn(batch.x.shape, generator=batch.gen)
    x_adv = _craft(model, batch, opts, noise, rule=away_from_distribution, labels=p_clean)
    logits, acts = model.run(batch.x, batch.taps)
    kl = F.kl_div(
        F.log_softmax(model(x_adv).float(), dim=1),
        F.softmax(logits.float(), dim=1),
        reduction="batchmean",
    )
    extra = PenaltyTerms(losses={"trades_kl": opts["trades_beta"] * kl})
    return Objective(F.cross_entropy(logits.float(), batch.y), logits, acts, extra)


def _describe(model: StagedNet, aux: torch.nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    """The step size actually used, when it was left to the 2.5·ε/steps rule."""
    return {"at_alpha_used": step_size(opts)}


PGD_AT = Method(
    name="pgd-at",
    summary="PGD adversarial training, L-inf, random start (Madry et al. 2018)",
    family="adversarial",
    options=BUDGET,
    objective=_pgd_objective,
    describe=_describe,
)

TRADES = Method(
    name="trades",
    summary="TRADES: clean CE + β·KL to PGD-crafted inputs (Zhang et al. 2019)",
    family="adversarial",
    options=(
        *BUDGET,
        Option(
            "trades_beta",
            checked_option(
                "--trades-beta", float, lambda v: 0 <= v < math.inf, "a finite number >= 0"
            ),
            6.0,
            "TRADES weight β of the KL term (paper: 6)",
        ),
    ),
    objective=_trades_objective,
    describe=_describe,
)
