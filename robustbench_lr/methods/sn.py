"""SN: spectral normalization (Miyato et al., ICLR 2018), a Table 2 comparison (SPEC §2).

Every conv and linear weight W is trained as W / σ₁(W), σ₁ estimated by one power iteration per
training forward pass (the paper's setting; torch starts from 15). Conv weights are normalized as
the (out, in·k·k) matrix, torch's reshape, not as the convolution operator. The parametrization
(and its power-iteration vectors u, v) is part of the training model's state dict, so a resume
continues the same iteration; the exported weights are W / σ₁ materialized, loadable into a
plain model. `--power-iteration batched` steps all same-shape layers' u, v together
(methods/power_iteration.py); the default is torch's own per-layer step.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm

from robustbench_lr.methods.base import Method, TrainContext
from robustbench_lr.methods.power_iteration import POWER_ITERATION, after_step, normalize_weights
from robustbench_lr.methods.weights import like, spectra
from robustbench_lr.models import StagedNet

POWER_ITERATIONS = 1


class Float32SpectralNorm(_SpectralNorm):
    """torch's spectral-norm parametrization, evaluated in float32 even under bf16 autocast.

    `torch.nn.utils.parametrizations.spectral_norm` runs its power iteration and σ₁ = uᵀWv with
    `mv`, which CUDA autocast lowers to bf16: σ₁, and with it every layer's scale, would carry
    bf16 rounding. Only the precision changes; the state (u, v) and its keys are torch's.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """W / σ₁(W) in float32, returned in the weight's own dtype and memory format."""
        with torch.autocast(weight.device.type, enabled=False):
            return like(super().forward(weight.float()), weight)


def _prepare(ctx: TrainContext, opts: dict[str, Any]) -> nn.Module:
    """Spectral-normalize every conv and linear layer; the aux module steps u, v."""
    norm = partial(Float32SpectralNorm, n_power_iterations=POWER_ITERATIONS)
    return normalize_weights(ctx.model, norm, opts["power_iteration"])


def _describe(model: StagedNet, aux: nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    """Power iterations per step and each layer's exact σ₁ / stable rank for meta.json."""
    return {"sn_power_iterations": POWER_ITERATIONS, "sn_layers": spectra(model)}


SN = Method(
    name="sn",
    summary="spectral normalization of every conv/linear weight (Miyato et al. 2018; Table 2)",
    family="regularizer",
    options=(POWER_ITERATION,),
    prepare=_prepare,
    after_step=after_step,
    describe=_describe,
)
