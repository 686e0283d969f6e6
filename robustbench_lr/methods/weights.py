"""The weight layers the parameter-space methods act on, and the spectra they are judged by.

SNIP prunes, SN and SRN normalize exactly these layers (SPEC §2, Table 2): every convolution and
every fully connected layer, classifier included; BatchNorm's per-channel scales are not linear
operators between layers and stay untouched.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv and linear layer of `model` as (module name, module), in model order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, WEIGHT_LAYERS)
    ]


def like(value: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`value` in `weight`'s dtype and memory format: a parametrization's output for the layer.

    On CUDA `train()` keeps conv weights channels_last; a normalized weight handed back in the
    default layout would make cuDNN convert it (or pick slower kernels) in every forward and
    backward pass.
    """
    fmt = (
        torch.channels_last
        if weight.dim() == 4
        and weight.is_contiguous(memory_format=torch.channels_last)
        and not weight.is_contiguous()
        else torch.contiguous_format
    )
    return value.to(dtype=weight.dtype).contiguous(memory_format=fmt)


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A weight as the matrix SN and SRN normalize: conv (out, in, k, k) -> (out, in·k·k).

    This is the reshape torch's `spectral_norm` uses (dim 0 first), so σ₁ of this matrix is
    what both methods hold at 1 (Miyato et al. 2018, §2.1; Sanyal et al. 2020, §4).
    """
    return weight.flatten(1)


def stable_rank(matrix: torch.Tensor) -> float:
    """‖W‖²_F / ‖W‖²₂, the soft rank SRN bounds (Sanyal et al. 2020, Definition 3.1)."""
    sigma = torch.linalg.matrix_norm(matrix, ord=2)
    return float(matrix.square().sum() / sigma.square())


@torch.no_grad()
def spectra(model: nn.Module) -> dict[str, dict[str, float]]:
    """Exact σ₁ and stable rank of every parametrized weight, as inference will see it.

    Read in eval mode, so no power-iteration step runs and nothing in the model changes; the
    numbers go to meta.json so a reader can check the normalization without loading weights.
    """
    was_training = model.training
    model.eval()
    found: dict[str, dict[str, float]] = {}
    for name, module in weight_layers(model):
        if parametrize.is_parametrized(module, "weight"):
            matrix = weight_matrix(module.weight).float()
            found[name] = {
                "sigma_max": float(torch.linalg.matrix_norm(matrix, ord=2)),
                "stable_rank": stable_rank(matrix),
            }
    model.train(was_training)
    return found
