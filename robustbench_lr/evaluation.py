"""Batched prediction and clean accuracy: the building blocks every attack and table uses."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lr.devices import model_device


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels for `x` (any device), batched, in eval mode, on the model's device.

    The model's device, so an attack loop that judges its iterates never copies to the host.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    out = [model(x[i : i + batch_size].to(device)).argmax(1) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=device)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy in percent (the unit of every table)."""
    if len(y) == 0:
        return float("nan")
    return 100.0 * (predict(model, x, batch_size).cpu() == y.cpu()).float().mean().item()
