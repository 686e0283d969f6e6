"""SNIP: single-shot network pruning at initialization (Lee, Ajanthan and Torr, ICLR 2019).

A Table 2 comparison (SPEC §2). On one seeded batch of training images, at the network's own
initialization, the connection sensitivity of weight j is s_j = |∂L/∂c_j| at mask c = 1, i.e.
|g_j · w_j|, normalized by its sum over every conv and linear weight (their Eq. 6). The global
top (1 − sparsity) fraction is kept, sparsity 0.7 as in the paper's Appendix A, and the mask
stays fixed: it is applied before the first step and after every optimizer step, so neither
momentum nor weight decay revives a pruned weight. The masks are buffers of the method's
auxiliary module (saved with the training state); the exported weights are already masked.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lr.methods.base import Method, Option, Progress, TrainContext
from robustbench_lr.methods.weights import weight_layers
from robustbench_lr.models import StagedNet


class SnipMasks(nn.Module):
    """One boolean keep-mask buffer per pruned weight, keyed by its layer's module name."""

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.layer_names = list(masks)
        for name, mask in masks.items():
            self.register_buffer(self._key(name), mask)

    @staticmethod
    def _key(layer: str) -> str:
        return layer.replace(".", "__")  # buffer names may not contain dots

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """(layer name, keep mask) pairs in model order."""
        return [(name, getattr(self, self._key(name))) for name in self.layer_names]


def connection_sensitivity(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> dict[str, torch.Tensor]:
    """|g ⊙ w| of every conv/linear weight on one batch, normalized by the global sum (Eq. 6).

    Computed on a copy in training mode (batch statistics, as the network will train), so the
    model's own BatchNorm running statistics and gradients are left untouched.
    """
    probe = copy.deepcopy(model).train()
    layers = weight_layers(probe)
    loss = F.cross_entropy(probe(x), y)
    grads = torch.autograd.grad(loss, [module.weight for _, module in layers])
    scores = {
        name: (grad * module.weight).abs().detach()
        for (name, module), grad in zip(layers, grads, strict=True)
    }
    total = sum(s.sum() for s in scores.values())
    return {name: s / total for name, s in scores.items()}


def global_keep_masks(
    scores: dict[str, torch.Tensor], keep_fraction: float
) -> dict[str, torch.Tensor]:
    """Keep exactly round(keep_fraction · N) of all N weights, the globally highest scores.

    Ties are broken by position (a stable sort of the flattened scores), so the same scores
    always give the same mask and the kept count is exact.
    """
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep_count = round(keep_fraction * flat.numel())
    order = torch.sort(flat, descending=True, stable=True).indices
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[order[:keep_count]] = True
    sizes = [s.numel() for s in scores.values()]
    return {
        name: part.view_as(s)
        for (name, s), part in zip(scores.items(), keep.split(sizes), strict=True)
    }


@torch.no_grad()
def apply_masks(model: nn.Module, masks: SnipMasks) -> None:
    """Zero every pruned weight in place."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        modules[name].weight.mul_(mask)


def _sparsity(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"--snip-sparsity must be in [0, 1), got {value:g}")
    return value


def _batch(text: str) -> int:
    value = int(text)
    if value < 2:
        raise ValueError(
            f"--snip-batch must be at least 2 (BatchNorm needs two images), got {value}"
        )
    return value


def _prepare(ctx: TrainContext, opts: dict[str, Any]) -> nn.Module:
    """Compute the mask on the first `snip_batch` images of the seeded first batch and apply it.

    That batch is the prefix of a seeded permutation of the training set, so any prefix is a
    uniform sample; a larger SNIP batch than one training batch is refused.
    """
    x, y = ctx.first_batch
    if opts["snip_batch"] > len(y):
        raise ValueError(
            f"--snip-batch {opts['snip_batch']} exceeds the training batch ({len(y)} images); "
            f"use at most {len(y)} or a larger --batch-size"
        )
    n = opts["snip_batch"]
    scores = connection_sensitivity(ctx.model, x[:n], y[:n])
    masks = SnipMasks(global_keep_masks(scores, 1.0 - opts["snip_sparsity"]))
    apply_masks(ctx.model, masks)
    return masks


def _after_step(model: StagedNet, aux: nn.Module, progress: Progress, opts: dict[str, Any]) -> None:
    apply_masks(model, aux)


def _describe(model: StagedNet, aux: nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    """Per-layer kept fractions and the overall kept fraction and count, for meta.json."""
    masks = aux.items()
    kept = sum(int(mask.sum()) for _, mask in masks)
    total = sum(mask.numel() for _, mask in masks)
    return {
        "snip_kept_fraction": {name: float(mask.float().mean()) for name, mask in masks},
        "snip_kept_total": kept / total,
        "snip_kept_weights": kept,
        "snip_prunable_weights": total,
    }


SNIP = Method(
    name="snip",
    summary="single-shot pruning at initialization by connection sensitivity (Lee et al. 2019; Table 2)",
    family="regularizer",
    options=(
        Option(
            "snip_sparsity",
            _sparsity,
            0.7,
            "fraction of conv/linear weights SNIP prunes (paper: 0.7)",
        ),
        Option("snip_batch", _batch, 128, "training images the SNIP sensitivity is computed on"),
    ),
    prepare=_prepare,
    after_step=_after_step,
    describe=_describe,
)
