"""How SN's and SRN's power-iteration vectors advance: `--power-iteration torch | batched`.

Both methods normalize every conv/linear weight with a subclass of torch's spectral-norm
parametrization, whose u, v buffers take one power-iteration step per training-mode forward
pass. A strategy here is the auxiliary module `prepare` returns; training calls its `step()`
after every optimizer step, so the methods never ask which strategy runs.

- `torch` (default): torch's own step inside each layer's forward; `step()` does nothing.
- `batched`: the layers' in-forward step is switched off, and `step()` advances all layers
  whose weights share a shape with one batched matmul per direction. Nothing in torch batches
  spectral norm across layers, and on a GPU its per-layer power step's 8 tiny kernels are
  launch-bound (SN/SRN cost 3.2-3.5x N-LR's step on an H100, reports/perf.md). The gain is
  bounded by how many layers share a shape (a ResNet18's 21 weight layers come in 12 shapes);
  σ = uᵀWv and W/σ (and their backward) stay per layer, as torch computes them.

The batched step is the same arithmetic at the same moments: torch steps on W at the start of
forward k, i.e. on the weights optimizer step k−1 produced; `batched` steps right after that
optimizer step (and once in `prepare`, for the first forward), on the same weights. u, v stay
each layer's buffers, so checkpoints and resumes are unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

from robustbench_lr.methods.base import Option, Progress, choice_option
from robustbench_lr.methods.weights import weight_layers
from robustbench_lr.registry import Registry


def normalized_layers(model: nn.Module) -> list[tuple[_SpectralNorm, nn.Parameter]]:
    """(parametrization, unnormalized weight) of every spectral-norm-parametrized layer."""
    weights = [module.parametrizations.weight for _, module in weight_layers(model)]
    return [(weight[0], weight.original) for weight in weights]


class InForward(nn.Module):
    """torch's schedule: every layer steps its own u, v in each training-mode forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()

    def step(self) -> None:
        """Nothing to do: the parametrizations stepped during the forward pass."""


class Batched(nn.Module):
    """One power-iteration step for every group of same-shape weights at once (~10 kernels per
    group instead of 8 per layer). Holds no state of its own: the groups are a plain list, not
    submodules, so nothing is saved twice.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        groups: dict[torch.Size, list[tuple[_SpectralNorm, nn.Parameter]]] = defaultdict(list)
        for norm, original in normalized_layers(model):
            norm.n_power_iterations = 0  # so the forward pass leaves u, v as they are
            groups[original.shape].append((norm, original))
        self.groups = list(groups.values())
        self.step()  # the step torch would take in the first training forward

    @torch.no_grad()
    def step(self) -> None:
        """u ← normalize(W v), v ← normalize(Wᵀ u) for every layer, in float32, as torch.

        Conv weights are stacked before they are flattened (on CUDA they are channels_last, and
        flattening each first costs a copy per layer). The new vectors go back into the layers'
        own buffers with one `_foreach_copy_`: buffers that are views of one stacked tensor
        would share storage, which the checkpoint's safetensors file refuses to save.
        """
        targets, values = [], []
        for group in self.groups:
            norms = [norm for norm, _ in group]
            eps = norms[0].eps
            w = torch.stack([original for _, original in group]).float().flatten(2)
            v = torch.stack([norm._v for norm in norms])
            u = F.normalize(torch.bmm(w, v.unsqueeze(2)).squeeze(2), dim=1, eps=eps)
            v = F.normalize(torch.bmm(w.mT, u.unsqueeze(2)).squeeze(2), dim=1, eps=eps)
            targets += [norm._u for norm in norms] + [norm._v for norm in norms]
            values += [*u.unbind(), *v.unbind()]
        torch._foreach_copy_(targets, values)


POWER_ITERATIONS: Registry[type[nn.Module]] = Registry("power iteration")
POWER_ITERATIONS.add("torch", InForward)
POWER_ITERATIONS.add("batched", Batched)


POWER_ITERATION = Option(
    "power_iteration",
    choice_option("--power-iteration", POWER_ITERATIONS),
    "torch",
    "how the spectral-norm power iteration steps: torch (each layer in its forward, "
    "torch.nn.utils.parametrizations) or batched (all same-shape layers in one bmm after each "
    "optimizer step)",
)


def normalize_weights(
    model: nn.Module, parametrization: Callable[[torch.Tensor], nn.Module], strategy: str
) -> nn.Module:
    """SN's and SRN's `prepare`: register `parametrization(weight)` on every conv and linear
    layer, before the optimizer is built so that it trains the unnormalized originals, and
    return the power-iteration `strategy` over them (the aux module)."""
    for _, module in weight_layers(model):
        parametrize.register_parametrization(module, "weight", parametrization(module.weight))
    return POWER_ITERATIONS.get(strategy)(model)


def after_step(model: nn.Module, aux: nn.Module, progress: Progress, opts: dict[str, Any]) -> None:
    """The methods' `after_step` hook: advance u, v as the chosen strategy does."""
    aux.step()
