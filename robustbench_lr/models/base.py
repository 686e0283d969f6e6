"""The shape every architecture shares: Normalize -> named stages -> logits, with named taps.

A *tap* is a named point between two stages where the representation is read (LR branches,
analyses) or transformed in the prediction path (Bottle-LR's bottleneck). Architectures only
declare their stages and where their taps sit; `StagedNet.run` does the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robustbench_lr.devices import model_device


class Normalize(nn.Module):
    """Per-channel (x - mean) / std as the model's first layer, so attacks work in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class StagedNet(nn.Module):
    """A network as an ordered list of stages with named taps before some of them.

    `taps` maps a tap name to the index of the stage whose *input* it is (e.g. ResNet `pre_fc`
    is the input of the final linear stage). `tap_transforms` holds modules applied to the
    activation at a tap in the prediction path; it is empty for every method but Bottle-LR.
    `input_shape` (channels, height, width) is set by `models.build`, so a method's `structure`
    hook can size a tap transform (Bottle-LR) without being handed the dataset.
    """

    input_shape: tuple[int, int, int] | None = None

    def __init__(
        self, normalize: Normalize, stages: Sequence[tuple[str, nn.Module]], taps: dict[str, int]
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.stages = nn.ModuleDict(dict(stages))
        self.tap_index = dict(taps)
        self.tap_transforms = nn.ModuleDict()
        self._stage_taps: dict[int, list[str]] = {}
        for name, index in self.tap_index.items():
            self._stage_taps.setdefault(index, []).append(name)

    @property
    def tap_names(self) -> list[str]:
        return list(self.tap_index)

    def run(
        self, x: torch.Tensor, taps: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits plus the activations at `taps`, each flattened to (batch, m).

        The returned activations are the tensors of the prediction path (after any tap
        transform), so a loss on them back-propagates into every layer before the tap.
        """
        unknown = set(taps) - set(self.tap_index)
        if unknown:
            raise KeyError(
                f"unknown taps {sorted(unknown)}; this model has: {', '.join(self.tap_index)}"
            )
        wanted = set(taps)
        found: dict[str, torch.Tensor] = {}
        h = self.normalize(x)
        for index, stage in enumerate(self.stages.values()):
            for tap in self._stage_taps.get(index, ()):
                if tap in self.tap_transforms:
                    h = self.tap_transforms[tap](h)
                if tap in wanted:
                    found[tap] = h.flatten(1)
            h = stage(h)
        return h, found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]


def scaled(channels: int, width: float) -> int:
    """A layer's channel count at width multiplier `width` (at least one channel)."""
    return max(1, int(round(channels * width)))


def tap_sizes(model: StagedNet, channels: int, size: int) -> dict[str, int]:
    """Number of units m at every tap, measured with one dummy forward pass in eval mode."""
    acts = activations(model, torch.zeros(1, channels, size, size), model.tap_names)
    return {name: act.shape[1] for name, act in acts.items()}


def activations(
    model: StagedNet, x: torch.Tensor, taps: Sequence[str], batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Activations at `taps` for a whole tensor of inputs, batched, in eval mode, on CPU."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    chunks: dict[str, list[torch.Tensor]] = {t: [] for t in taps}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            _, acts = model.run(x[start : start + batch_size].to(device), taps)
            for t in taps:
                chunks[t].append(acts[t].float().cpu())
    model.train(was_training)
    return {t: torch.cat(v) for t, v in chunks.items()}
