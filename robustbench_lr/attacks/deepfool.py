"""L2 DeepFool (Moosavi-Dezfooli et al. 2016): the minimal perturbation r(x), ρ = ‖r‖₂/‖x‖₂.

Three backends with one semantics, foolbox's `L2DeepFoolAttack`: the `candidates` most likely
classes of the clean input, the linearized distance |f_k − f_0| / ‖∇(f_k − f_0)‖ to each, a step
to the closest boundary (+1e-4), the overshoot applied to the accumulated perturbation, [0, 1]
clipping, and no further change once a sample is misclassified.

`ours` (the default) is written here for speed: foolbox runs a forward and a backward pass per
candidate on the whole batch at every step, fooled samples included; torchattacks loops over
samples. Here each step runs one forward pass on the samples still standing, then one backward
pass per candidate through that retained graph, keeping only the best direction so far. `foolbox`
is the cross-check (`--verify`); `torchattacks` (its own variant: all classes, overshoot per
step) stays selectable. Crafting in another precision than float32, a sample's "fooled" is
confirmed in strict float32 before it leaves (`precision.confirm_fooled`): 2 % past a bf16 or
TF32 boundary can be short of the float32 one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustbench_lr.attacks.base import register, run_foolbox
from robustbench_lr.attacks.precision import confirm_fooled


def _as_image(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _closest_boundary_step(
    logits: torch.Tensor, x: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """The linearized step to the nearest of the candidate boundaries (foolbox's formula),
    keeping only the running best gradient: one input-sized tensor per sample."""
    rows = torch.arange(len(x), device=x.device)
    best_dist = torch.full((len(x),), float("inf"), device=x.device, dtype=x.dtype)
    best_grad = torch.zeros_like(x)
    last = classes.shape[1] - 1
    for k in range(1, classes.shape[1]):
        weight = torch.zeros_like(logits)
        weight[rows, classes[:, k]] = 1.0
        weight[rows, classes[:, 0]] = -1.0
        (grad,) = torch.autograd.grad(logits, x, grad_outputs=weight, retain_graph=k < last)
        loss = (logits.detach() * weight).sum(1)
        dist = loss.abs() / (grad.flatten(1).norm(dim=1) + 1e-8)
        better = dist < best_dist
        best_dist = torch.where(better, dist, best_dist)
        best_grad = torch.where(_as_image(better, x), grad, best_grad)
    size = (best_dist + 1e-4) / (best_grad.flatten(1).norm(dim=1) + 1e-8)
    return _as_image(size, x) * best_grad


# The rows still standing are processed in this many chunks per step: a graph retained through
# K-1 backward passes peaked above foolbox's K plain passes (745 vs 693 MiB on an H100, CIFAR
# ResNet18, batch 128); half the rows per graph halves that peak at the same arithmetic. Below
# 2 x 32 rows halves only run slower (digits batch 16 on the CPU: 8.0 vs 12.2 ms/image).
MEMORY_CHUNKS = 2
MIN_CHUNK_ROWS = 32


def _deepfool_ours(
    model: nn.Module, x: Tensor, y: Tensor, *, steps: int, overshoot: float, candidates: int
) -> Tensor:
    """L2 DeepFool, batched: the smallest perturbation that crosses the nearest boundary, ρ =
    rho(x_adv, x) (Table 3). `candidates`: the clean input's most likely classes, as foolbox."""
    x_adv = x.clone()
    p_total = torch.zeros_like(x)
    classes = None  # per sample: the clean input's most likely classes (foolbox's candidates)
    active = torch.arange(len(x), device=x.device)
    for step_index in range(steps):
        still = []
        chunks = MEMORY_CHUNKS if len(active) >= MEMORY_CHUNKS * MIN_CHUNK_ROWS else 1
        for rows in active.tensor_split(chunks):
            if len(rows) == 0:
                continue
            xa = x_adv[rows].requires_grad_(True)
            logits = model(xa)
            if classes is None:
                k = min(candidates, logits.shape[1])
                if k < 2:
                    raise ValueError(f"DeepFool needs at least 2 candidate classes, got {k}")
                classes = torch.zeros(len(x), k, dtype=torch.long, device=x.device)
            if step_index == 0:
                # The label first, then the likeliest others: in a fast precision a near-tie can
                # rank another class above the label of a sample that float32 classifies right.
                ranked = logits.detach().scatter(1, y[rows, None], float("inf"))
                classes[rows] = ranked.argsort(dim=1, descending=True)[:, :k]
            standing = ~confirm_fooled(model, xa.detach(), y[rows], logits.argmax(1) != y[rows])
            n_standing = int(standing.sum())
            if n_standing == 0:
                continue
            if (len(rows) - n_standing) * (k - 1) > n_standing:
                # Back-propagating K-1 times through the rows that just left would cost more
                # than one fresh forward pass on the rows that stay: rebuild the graph without
                # them (dropping the old graph first, so the two never coexist in memory).
                del logits, xa
                rows = rows[standing]
                xa = x_adv[rows].requires_grad_(True)
                step = _closest_boundary_step(model(xa), xa, classes[rows])
            else:
                step = _closest_boundary_step(logits, xa, classes[rows])[standing]
                rows = rows[standing]
            p_total[rows] += step
            x_adv[rows] = torch.clamp(x[rows] + (1.0 + overshoot) * p_total[rows], 0, 1)
            still.append(rows)
        if not still:
            break
        active = torch.cat(still)
    return x_adv


def _deepfool_foolbox(
    model: nn.Module, x: Tensor, y: Tensor, *, steps: int, overshoot: float, candidates: int
) -> Tensor:
    import foolbox as fb

    attack = fb.attacks.L2DeepFoolAttack(steps=steps, candidates=candidates, overshoot=overshoot)
    return run_foolbox(attack, model, x, y, None)


def _deepfool_torchattacks(
    model: nn.Module, x: Tensor, y: Tensor, *, steps: int, overshoot: float, candidates: int
) -> Tensor:
    """torchattacks' own variant: every class is a candidate, the overshoot applied per step."""
    import torchattacks

    return torchattacks.DeepFool(model, steps=steps, overshoot=overshoot)(x, y)


register(
    "deepfool",
    {
        "ours": _deepfool_ours,
        "foolbox": _deepfool_foolbox,
        "torchattacks": _deepfool_torchattacks,
    },
    "l2",
    {"steps": 50, "overshoot": 0.02, "candidates": 10},
    verify="deepfool",
    fills=("deepfool_rho",),
)
