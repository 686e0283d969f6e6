"""1-LR, 2-LR and Bottle-LR: the paper's low-rank regularizer and its explicit-bottleneck rival.

1-LR / 2-LR (paper Section 2, Algorithm 1, Appendix B) attach a virtual LR branch (W, b) at one
or two taps; its losses λc·Lc + λn·Ln reach the network through the tap activations, and every
`lr_every` steps W is projected to rank r. Bottle-LR (Section 3.1) instead puts W̄ = W̄l W̄lᵀ in
the prediction path at the same taps.

How the defaults avoid the two failure modes seen on digits ("Pitfalls"):

- *Trivial minima.* A constant activation of norm 1 makes both Lc and Ln zero, so strong weights
  collapse the representation (λc = λn = 1 gave 61% accuracy on digits, λn = 10 gave 10%). The
  defaults keep cross-entropy dominant: λc = 0.1, and λn = 0.02 because Ln only has to stop a
  collapse to 0 — a strong Ln pins every ‖a‖ near 1, and features on a small sphere need more
  directions to stay separable. Measured on digits (ResNet18 w0.25, rank 5, 20 epochs, seed 0;
  N-LR: 97.8% clean, 18 singular values for 99% of `pre_fc` variance): λc/λn = 0.1/0.1 gave
  98.4% and 15, 0.25/0.1 96.9% and 10, 0.5/0.1 93.3% and 9, 1/0.1 66.7%, 0.25/0.25 96.2% and 19,
  0.1/0.02 98.0% and 6 (those runs used `exact`; with the default `randomized` projection:
  seed 0 98.0% and 6, seed 1 98.2% and 6 vs N-LR 97.6% and 16). The branch is also fitted to
  the (detached) activations from the first step, so when the losses reach the network after
  the warm-up W already spans the representation's top-r directions and Lc only removes what
  lies outside them, instead of dragging every activation towards a constant.
- *A W that never becomes a projection.* Plain SGD on W with the network's learning rate and
  momentum diverged or left W far from any projection. The Hessian of Lc in W is
  (2/n) Zᵀ Z with Z = A + b, whose largest eigenvalue is at most 2·mean‖a_i + b‖², so W takes
  its own step: η·∇W Lc / mean‖a_i + b‖² with η = `lr_w_step` = 0.5, no momentum, no weight
  decay, independent of the network's schedule. That is a stable, scale-free step of the SVP
  iteration (Jain et al. 2010), and W's kept eigenvalues converge to 1. b takes η·∇b Lc (the
  Hessian in b is 2(W − I)², already of order 1). W and b are updated from the unweighted Lc
  on detached activations, so λc only weights the network's side.
- The default projection is `randomized`: within 1.2% of the optimal rank-r error and 11x
  faster than `exact` at m = 4096, r = 100 (one CPU thread); the paper's ensembled Nyström is
  1.3-1.8x the optimal error on a smooth spectrum. At 2-LR's m = 16,384, r = 500,
  `randomized-lite` and `nystrom` take 0.75x and 0.39x its CPU time for 1.06x and 1.67x the
  optimal error (reports/perf.md, made by benchmarks/projection.py); the default stays until
  the same comparison on a GPU decides (committed reports depend on it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustbench_lr import models
from robustbench_lr.lowrank.branch import (
    BOTTLENECK_MAPS,
    Bottleneck,
    LowRankBranch,
    norm_loss,
    reconstruction_loss,
)
from robustbench_lr.lowrank.projection import PROJECTIONS, project
from robustbench_lr.methods.base import (
    Method,
    Option,
    PenaltyTerms,
    Progress,
    TrainContext,
    at_least,
    checked_option,
    choice_option,
)
from robustbench_lr.models import StagedNet

LAST_RANK = 100  # paper Appendix C: branches before an FC layer
DEEP_RANK = 500  # paper Appendix C: the branch before the 4th ResNet block
WARMUP_SHARE = 50 / 350  # paper Appendix C: 50 of 350 epochs without LR
# Nyström ensemble size: at m = 4096, r = 100 (reports/perf.md, one CPU thread) t = 1/2/4/8 gave
# 1.85/1.80/1.75/1.73x the optimal rank-r error; over two runs t <= 2 took 0.4-0.8 s and t = 8
# 1.1 s. t = 2 costs about what one member does; larger t buy at most 4% error for up to 3x time.
NYSTROM_ENSEMBLE = 2


def parse_rank_spec(text: str) -> dict[str, int]:
    """`5` (every branch) or `pre_fc=100,pre_block4=500` (per tap) -> {tap or "*": rank}."""
    text = str(text).strip()
    try:
        if "=" not in text:
            ranks = {"*": int(text)}
        else:
            pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
            ranks = {tap.strip(): int(rank) for tap, rank in pairs}
    except ValueError:
        raise ValueError(
            f"--lr-rank takes an integer or TAP=RANK pairs like pre_fc=100,pre_block4=500; got {text!r}"
        ) from None
    if not ranks or min(ranks.values()) < 1:
        raise ValueError(f"--lr-rank needs ranks >= 1, got {text!r}")
    return ranks


def _rank_spec(text: str) -> str:
    parse_rank_spec(text)
    return str(text).strip()


def target_ranks(
    model: StagedNet, arch: str, taps: list[str], spec: str | None
) -> dict[str, tuple[int, int]]:
    """(m, r) of each tap's branch: m units (of a model built by `models.build`) and rank r from
    `--lr-rank`, else 100 (last tap) / 500 (deep), ≤ m."""
    channels, size, _ = model.input_shape
    sizes = models.tap_sizes(model, channels, size)
    given = parse_rank_spec(spec) if spec is not None else {}
    stray = sorted(set(given) - set(taps) - {"*"})
    if stray:
        raise ValueError(
            f"--lr-rank names taps {stray} that this method does not use; its taps: {', '.join(taps)}"
        )
    last = models.last_tap(arch)
    ranks = {t: given.get(t, given.get("*", LAST_RANK if t == last else DEEP_RANK)) for t in taps}
    return {tap: (sizes[tap], min(rank, sizes[tap])) for tap, rank in ranks.items()}


def warmup_epochs(opts: dict[str, Any], epochs: int) -> int:
    """Epochs without the LR losses: `--lr-warmup-epochs`, else the paper's 50/350 of the run."""
    given = opts["lr_warmup_epochs"]
    return round(WARMUP_SHARE * epochs) if given is None else given


RANK = Option(
    "lr_rank",
    _rank_spec,
    None,
    f"target rank: one value for every branch or TAP=RANK pairs (default {LAST_RANK} before the last FC, {DEEP_RANK} deeper, capped at m)",
)
BRANCH_OPTIONS = (
    at_least("lr_lambda_c", float, 0, 0.1, "weight λc of the reconstruction loss Lc"),
    at_least("lr_lambda_n", float, 0, 0.02, "weight λn of the norm loss Ln"),
    at_least("lr_every", int, 1, 10, "project W to rank r every this many optimizer steps"),
    Option(
        "lr_projection",
        choice_option("--lr-projection", PROJECTIONS),
        "randomized",
        f"rank projection: {', '.join(PROJECTIONS.names())}",
    ),
    at_least(
        "lr_nystrom_ensemble",
        int,
        1,
        NYSTROM_ENSEMBLE,
        "Nyström ensemble size t (the paper gives none; chosen with benchmarks/projection.py)",
    ),
    RANK,
    at_least(
        "lr_warmup_epochs",
        int,
        0,
        None,
        "epochs before the LR losses switch on (default: round(50/350 x epochs))",
    ),
    Option(
        "lr_w_step",
        checked_option(
            "--lr-w-step",
            float,
            lambda v: 0 < v < 1,
            "a number in (0, 1) (larger steps make W diverge)",
        ),
        0.5,
        "step of W in units of 1/mean‖a+b‖² (and of b), plain SGD without momentum",
    ),
)


class Branches(nn.Module):
    """The LR branches of one run, keyed by tap; `seed` derives the projections' generators and
    `warmup` is the number of epochs before the losses reach the network."""

    def __init__(self, branches: dict[str, LowRankBranch], seed: int, warmup: int) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.seed = seed
        self.warmup = warmup


def _penalty(
    aux: nn.Module, acts: dict[str, torch.Tensor], progress: Progress, opts: dict[str, Any]
) -> PenaltyTerms:
    """Per tap: `lr_fit` (Lc on detached activations; only W and b learn from it), and after the
    warm-up `lr_c` = λc·Lc and `lr_n` = λn·Ln (only the network learns from them); logs Lc's
    relative error ‖(a+b)W − (a+b)‖_F / ‖a+b‖_F."""
    terms = PenaltyTerms()
    active = progress.epoch >= aux.warmup
    for tap, branch in aux.branches.items():
        a = acts[tap].float()
        residual, z = branch.residual(a.detach(), detach_branch=False)
        terms.losses[f"lr_fit@{tap}"] = reconstruction_loss(residual)
        with torch.no_grad():
            branch.scale.copy_(z.square().sum(1).mean())
            terms.logs[f"lr_relerr@{tap}"] = residual.norm() / z.norm().clamp_min(1e-12)
        if active:
            net_residual, _ = branch.residual(a, detach_branch=True)
            terms.losses[f"lr_c@{tap}"] = opts["lr_lambda_c"] * reconstruction_loss(net_residual)
            terms.losses[f"lr_n@{tap}"] = opts["lr_lambda_n"] * norm_loss(a)
    return terms


def projection_generator(seed: int, step: int, branch_index: int) -> torch.Generator:
    """A CPU generator that is a pure function of (run seed, step, branch): resumes replay it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 16 + branch_index)


@torch.no_grad()
def _after_step(model: StagedNet, aux: nn.Module, progress: Progress, opts: dict[str, Any]) -> None:
    """W ← W − η ∇W/mean‖a+b‖², b ← b − η ∇b; every `lr_every` steps W ← Π_r(W) (Algorithm 1)."""
    eta = opts["lr_w_step"]
    for index, branch in enumerate(aux.branches.values()):
        if branch.ws.grad is not None:
            branch.ws -= eta / branch.scale.clamp_min(1e-12) * branch.ws.grad
            branch.b -= eta * branch.b.grad
        if progress.step % opts["lr_every"] == 0:
            gen = projection_generator(aux.seed, progress.step, index)
            branch.ws.copy_(
                project(
                    opts["lr_projection"], branch.ws, branch.rank, gen, opts["lr_nystrom_ensemble"]
                )
            )


def _describe_branches(model: StagedNet, aux: nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    """Per branch m, r, and trace(W) and ‖W‖_F² (both equal r when W is a rank-r projection)."""
    out = {}
    for tap, branch in aux.branches.items():
        w = branch.weight().detach().float()
        out[tap] = {
            "m": w.shape[0],
            "rank": branch.rank,
            "w_trace": float(w.trace()),
            "w_fro2": float(w.square().sum()),
        }
    return {"lr_branches": out, "lr_warmup_epochs": aux.warmup}


def _lr_method(name: str, summary: str, *roles: models.TapRole) -> Method:
    """1-LR or 2-LR: one branch at the tap of each role."""

    def taps_of(arch: str, opts: dict[str, Any]) -> list[str]:
        return [role(arch) for role in roles]

    def check(model: StagedNet, arch: str, opts: dict[str, Any]) -> None:
        target_ranks(model, arch, taps_of(arch, opts), opts["lr_rank"])

    def prepare(ctx: TrainContext, opts: dict[str, Any]) -> nn.Module:
        shapes = target_ranks(ctx.model, ctx.arch, taps_of(ctx.arch, opts), opts["lr_rank"])
        branches = {tap: LowRankBranch(m, r) for tap, (m, r) in shapes.items()}
        return Branches(branches, ctx.seed, warmup_epochs(opts, ctx.epochs))

    return Method(
        name=name,
        summary=summary,
        family="low-rank",
        options=BRANCH_OPTIONS,
        check=check,
        prepare=prepare,
        taps=taps_of,
        penalty=_penalty,
        after_step=_after_step,
        aux_param_groups=lambda aux, opts: [],  # W and b take their own step in `_after_step`
        describe=_describe_branches,
    )


ONE_LR = _lr_method("1lr", "LR branch before the last FC layer (the paper's 1-LR)", models.last_tap)
TWO_LR = _lr_method(
    "2lr",
    "LR branches before the last FC and before ResNet block 4 / VGG FC1 (2-LR)",
    models.deep_tap,
    models.last_tap,
)


# ---- Bottle-LR -------------------------------------------------------------------------------


def _tap_list(text: str) -> str:
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if not names:
        raise ValueError(f"--bottle-taps takes comma-separated tap names, got {text!r}")
    return ",".join(names)


def bottle_taps(arch: str, opts: dict[str, Any]) -> list[str]:
    """`--bottle-taps`, else the 1-LR tap (the paper's Bottle-1LR; `pre_block4,pre_fc` = Bottle-2LR)."""
    given = opts["bottle_taps"]
    return [models.last_tap(arch)] if given is None else given.split(",")


def _bottle_param(text: str) -> str:
    BOTTLENECK_MAPS.get(text)  # an unknown name lists the valid choices
    return text


def _bottle_structure(model: StagedNet, arch: str, opts: dict[str, Any]) -> None:
    """Insert W̄l W̄lᵀ at each tap; run by training and by `load_model`, so both build it."""
    if model.input_shape is None:
        raise ValueError(
            "bottle-lr needs a model built by robustbench_lr.models.build (input shape unknown)"
        )
    taps = bottle_taps(arch, opts)
    unknown = sorted(set(taps) - set(model.tap_names))
    if unknown:
        raise ValueError(
            f"--bottle-taps {unknown} not in {arch}; its taps: {', '.join(model.tap_names)}"
        )
    for tap, (m, r) in target_ranks(model, arch, taps, opts["lr_rank"]).items():
        model.tap_transforms[tap] = Bottleneck(m, r, opts["bottle_param"])


def _describe_bottleneck(model: StagedNet, aux: nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    return {
        "bottlenecks": {
            tap: {"m": t.left.shape[0], "rank": t.rank} for tap, t in model.tap_transforms.items()
        }
    }


BOTTLE_LR = Method(
    name="bottle-lr",
    summary="explicit linear bottleneck W̄l W̄lᵀ of rank r in the prediction path (the paper's Bottle-LR)",
    family="low-rank",
    options=(
        RANK,
        Option(
            "bottle_taps", _tap_list, None, "taps that get a bottleneck (default: the 1-LR tap)"
        ),
        Option(
            "bottle_param",
            _bottle_param,
            "normalized",
            "how W̄l enters W̄l W̄lᵀ: normalized (unit columns; trains at lr 0.1) or free (the "
            "paper's literal W̄l; diverged at lr 0.1 on digits)",
        ),
    ),
    structure=_bottle_structure,
    describe=_describe_bottleneck,
)
