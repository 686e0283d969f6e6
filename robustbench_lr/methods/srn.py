"""SRN: stable-rank normalization (Sanyal, Torr and Dokania, ICLR 2020), a Table 2 comparison.

For each conv and linear weight W (conv as the (out, in·k·k) matrix), with σ₁, u, v from power
iteration: Ŵ = W/σ₁ = u vᵀ + R. SRN keeps the rank-1 part and shrinks the residual,
Ŵ ← u vᵀ + γ R with γ = min(1, √(r − 1) / ‖R‖_F), the unique optimum of the stable-rank
problem (their Theorem 1 and Algorithm 1), so that σ₁ = 1 and the stable rank
‖Ŵ‖²_F / ‖Ŵ‖²₂ ≤ r, where r = c · min(out, in·k·k), c = `--srn-rank-ratio`.

Default c = 0.3, the paper's "SRN-30", the strongest stable-rank reduction among the settings
its classification experiments report (SRN-30 / SRN-50); the authors' released code uses 0.7 as
its function default. Other settings: `--srn-rank-ratio 0.5` etc. A layer whose target r falls
below 1 is held at rank one (γ = 0), since no matrix has a smaller stable rank.

The u, v vectors are buffers of the parametrization, so they are saved with the training state
and a resume continues the same iteration; the exported weights are Ŵ materialized.
`--power-iteration batched` steps them for all same-shape layers at once, as for SN.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm

from robustbench_lr.methods.base import Method, Option, TrainContext
from robustbench_lr.methods.power_iteration import POWER_ITERATION, after_step, normalize_weights
from robustbench_lr.methods.weights import like, spectra, weight_layers, weight_matrix
from robustbench_lr.models import StagedNet

POWER_ITERATIONS = 1


class StableRankNorm(_SpectralNorm):
    """The SRN map W -> u vᵀ + γ (W/σ₁ − u vᵀ) as a `torch.nn.utils.parametrize` module.

    torch ships spectral normalization but not SRN; this subclasses torch's spectral-norm
    parametrization to reuse its u/v buffers, their 15-step warm start and its power iteration
    (the SRN authors' code is likewise a modified copy of torch's spectral norm), and replaces
    only the final step W/σ₁ by SRN's rank-1-plus-shrunk-residual (Algorithm 1).
    """

    def __init__(self, weight: torch.Tensor, rank_ratio: float) -> None:
        super().__init__(weight, n_power_iterations=POWER_ITERATIONS)
        rows, cols = weight_matrix(weight).shape
        self.target_rank = max(1.0, rank_ratio * min(rows, cols))
        self._residual_limit = math.sqrt(self.target_rank - 1.0)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The normalized weight; in training mode one power-iteration step first (as SN)."""
        # Full precision even under CUDA bf16 autocast (which would run `mv` in bf16): σ₁ and
        # the residual norm set the layer's scale.
        with torch.autocast(weight.device.type, enabled=False):
            matrix = weight_matrix(weight.float())
            if self.training:
                self._power_method(matrix, self.n_power_iterations)
            u = self._u.clone(memory_format=torch.contiguous_format)
            v = self._v.clone(memory_format=torch.contiguous_format)
            sigma = torch.vdot(u, torch.mv(matrix, v))
            rank_one = torch.outer(u, v)
            residual = matrix / sigma - rank_one
            # γ as a tensor op (no data-dependent branch, so no device sync on CUDA).
            gamma = torch.clamp(self._residual_limit / residual.norm().clamp_min(self.eps), max=1.0)
            return like((rank_one + gamma * residual).reshape(weight.shape), weight)


def _rank_ratio(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"--srn-rank-ratio must be in (0, 1], got {value:g}")
    return value


def _prepare(ctx: TrainContext, opts: dict[str, Any]) -> nn.Module:
    """Stable-rank-normalize every conv and linear layer; the aux module steps u, v."""
    norm = partial(StableRankNorm, rank_ratio=opts["srn_rank_ratio"])
    return normalize_weights(ctx.model, norm, opts["power_iteration"])


def _describe(model: StagedNet, aux: nn.Module, opts: dict[str, Any]) -> dict[str, Any]:
    """Each layer's target stable rank next to its exact σ₁ and stable rank, for meta.json."""
    layers = spectra(model)
    for name, module in weight_layers(model):
        layers[name]["target_stable_rank"] = module.parametrizations.weight[0].target_rank
    return {"srn_power_iterations": POWER_ITERATIONS, "srn_layers": layers}


SRN = Method(
    name="srn",
    summary="stable-rank normalization of every conv/linear weight (Sanyal et al. 2020; Table 2)",
    family="regularizer",
    options=(
        Option(
            "srn_rank_ratio",
            _rank_ratio,
            0.3,
            "SRN target stable rank as a fraction c of min(out, in·k·k); 0.3 = the paper's SRN-30",
        ),
        POWER_ITERATION,
    ),
    prepare=_prepare,
    after_step=after_step,
    describe=_describe,
)
