"""Probes of the model that are not attacks: input gradients, determinism, loss stability."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robustbench_lr.attacks import frozen
from robustbench_lr.devices import model_device


@dataclass(frozen=True)
class GradientProbe:
    """Input gradients of the cross-entropy on the correctly classified inputs."""

    correct: int
    zero: int
    nonfinite: int

    @property
    def zero_share(self) -> float:
        return 100.0 * self.zero / self.correct if self.correct else 0.0


def probe_gradients(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> GradientProbe:
    """Count correct inputs whose loss gradient is exactly zero or not finite (Athalye et al.).

    Summed loss, so a sample's gradient does not depend on its batch. Every gradient attack
    ascends this gradient: zero means it cannot move, non-finite means it moves nowhere sane.
    """
    device = model_device(model)
    correct = zero = nonfinite = 0
    with frozen(model):
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            xb, yb = xb.to(device).requires_grad_(True), yb.to(device)
            logits = model(xb)
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, yb, reduction="sum"), xb)
            grad = grad.flatten(1)[logits.argmax(1) == yb]
            finite = torch.isfinite(grad).all(1)
            correct += len(grad)
            nonfinite += int((~finite).sum())
            zero += int(((grad == 0).all(1) & finite).sum())
    return GradientProbe(correct, zero, nonfinite)


def probe_determinism(model: nn.Module, x: Tensor) -> float:
    """Largest |difference| between the outputs of three eval-mode forward passes on `x`.

    Zero for a deterministic model; anything else is a randomized defence, which single-run
    attacks under-estimate (Athalye et al. 2018, §4.2: use EOT).
    """
    device = model_device(model)
    with frozen(model), torch.no_grad():
        first = model(x.to(device))
        return max((model(x.to(device)) - first).abs().max().item() for _ in range(2))


def probe_stability(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    radius: float,
    draws: int,
    seed: int = 0,
    batch_size: int = 256,
) -> Tensor:
    """Per example, the mean relative change of its cross-entropy under uniform input noise.

    |L(x + u) − L(x)| / |L(x)| over `draws` draws of u ~ U[−radius, radius]^d (clipped to
    [0, 1]), Pintor et al. 2022's "unstable predictions" indicator: a smooth loss barely moves
    under noise far smaller than ε, a shattered or stochastic one (quantized inputs, a
    randomized defence) jumps, and attacks that follow it are misled. The noise comes from a
    CPU generator seeded by `seed`, so it is the same on every device. Returned on CPU.
    """
    device = model_device(model)
    gen = torch.Generator().manual_seed(int(seed))
    noise = (torch.rand((draws, *x.shape), generator=gen) * 2 - 1) * radius
    noisy = (x.cpu()[None] + noise).clamp(0, 1).flatten(0, 1)
    inputs = torch.cat([x.cpu(), noisy])
    targets = y.cpu().repeat(draws + 1)
    losses = []
    with frozen(model), torch.no_grad():
        for xb, yb in zip(inputs.split(batch_size), targets.split(batch_size), strict=True):
            logits = model(xb.to(device))
            losses.append(F.cross_entropy(logits.float(), yb.to(device), reduction="none").cpu())
    loss = torch.cat(losses)
    reference, perturbed = loss[: len(x)], loss[len(x) :].view(draws, len(x))
    scale = reference.abs().clamp_min(torch.finfo(loss.dtype).eps)
    return ((perturbed - reference).abs() / scale).mean(0)
