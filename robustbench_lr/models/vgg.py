"""CIFAR-form VGG19 with batch norm and the paper's three fully connected layers.

On inputs smaller than 32x32 (digits: 8x8) the max-pools that would shrink the map below 1x1
are dropped; the convolutions are the same. Taps: `fc1_in` (input of the first FC layer) and
`fc3_in` (input of the last), the two places the paper's VGG19 2-LR regularizes.
"""

from __future__ import annotations

from torch import nn

from robustbench_lr.models.base import Normalize, StagedNet, scaled

_CFG19 = [64, 64, "M", 128, 128, "M", *[256] * 4, "M", *[512] * 4, "M", *[512] * 4, "M"]


def vgg19(
    normalize: Normalize, channels: int, size: int, num_classes: int, width: float
) -> StagedNet:
    """VGG19-BN: 16 conv layers, then FC(512w, 512w) -> FC(512w, 512w) -> FC(512w, classes)."""
    layers: list[nn.Module] = []
    in_ch, spatial = channels, size
    for item in _CFG19:
        if item == "M":
            if spatial > 1:
                layers.append(nn.MaxPool2d(2))
                spatial //= 2
            continue
        out_ch = scaled(item, width)
        layers += [
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        ]
        in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    hidden = scaled(512, width)
    stages = [
        ("features", nn.Sequential(*layers)),
        ("fc1", nn.Sequential(nn.Linear(in_ch, hidden), nn.ReLU())),
        ("fc2", nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())),
        ("fc3", nn.Linear(hidden, num_classes)),
    ]
    return StagedNet(normalize, stages, taps={"fc1_in": 1, "fc3_in": 3})
