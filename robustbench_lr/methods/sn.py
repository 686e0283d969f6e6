"""SN: spectral normalization (Miyato et al., ICLR 2018), a Table 2 comparison (SPEC §2).

Every conv and linear weight W is trained as W / σ₁(W), σ₁ estimated by one power iteration per
training forward pass (the paper's setting; torch starts from 15). Conv weights are normalized as
the (out, in·k·k) matrix, torch's reshape, not as the convolution operator. The parametrization
(and its power-iteration vectors u, v) is part of the training model's state dict, so a resume
continues the same iteration; the exported weights are W / σ₁ materialized, loadable into a
plain model.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from robustbench_lr.methods.base import Method, TrainContext
from robustbench_lr.methods.weights import spectra, weight_layers
from robustbench_lr.models import StagedNet

POWER_ITERATIONS = 1


def _prepare(ctx: TrainContext, opts: dict[str, Any]) -> nn.Module:
    """Register torch's spectral-norm parametrization on every conv and linear layer.

    Runs before the optimizer is built, so the optimizer trains the unnormalized originals.
    """
    for _, module in weight_layers(ctx.model):
        spectral_norm(module, n_power_iterations=POWER_ITERATIONS)
    return nn.Module()


def _describe(model: StagedNet, aux: nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    """Power iterations per step and each layer's exact σ₁ / stable rank for meta.json."""
    return {"sn_power_iterations": POWER_ITERATIONS, "sn_layers": spectra(model)}


SN = Method(
    name="sn",
    summary="spectral normalization of every conv/linear weight (Miyato et al. 2018; Table 2)",
    prepare=_prepare,
    describe=_describe,
)
