"""Model factories for tests/test_external_models.py: what `--model MODULE:FACTORY` imports.

Tiny networks that normalize their own inputs, as an external model must, plus factories that
are wrong in one way each (not a module, other input sizes, other class counts).
"""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv -> ReLU -> linear on `channels` x `size` x `size` images, `classes` logits."""

    def __init__(self, channels: int = 1, size: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), 0.5))
        self.features = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * size * size, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - self.mean) / 0.5))


def tiny_cnn() -> nn.Module:
    """For digits (1 x 8 x 8, 10 classes)."""
    return TinyNet()


def cifar_cnn() -> nn.Module:
    """For CIFAR-10 (3 x 32 x 32): takes no digits images."""
    return TinyNet(channels=3, size=32)


def five_classes() -> nn.Module:
    """Digits-sized, but 5 logits where digits has 10 classes."""
    return TinyNet(classes=5)


class NanNet(TinyNet):
    """Digits-sized, the right logit shape, every logit NaN (a diverged or broken network)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


def nan_logits() -> nn.Module:
    return NanNet()


def not_a_module() -> str:
    return "a string is not a network"


class Payload:
    """An object a weights file may pickle and `torch.load(weights_only=True)` refuses."""

    def __init__(self) -> None:
        self.weight = torch.zeros(1)
