"""CIFAR-form ResNet18/50 (3x3 stem, no max-pool), as in Kuang Liu's pytorch-cifar.

Taps: `pre_block4` is the input of the 4th residual stage (256·w channels at 1/4 resolution:
16,384 units for ResNet18 on 32x32), `pre_fc` the pooled features before the classifier
(512·w for ResNet18, 2048·w for ResNet50).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from robustbench_lr.models.base import Normalize, StagedNet, scaled


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out)).relu()
        out = self.bn3(self.conv3(out))
        return (out + self.shortcut(x)).relu()


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
    )


def build_resnet(
    block: type,
    num_blocks: tuple[int, ...],
    normalize: Normalize,
    channels: int,
    size: int,
    num_classes: int,
    width: float,
) -> StagedNet:
    """Assemble a CIFAR ResNet as stages: stem, layer1..4, pool, fc (any input `size`: the
    pool is adaptive)."""
    planes = [scaled(c, width) for c in (64, 128, 256, 512)]
    stem = nn.Sequential(
        nn.Conv2d(channels, planes[0], 3, 1, 1, bias=False), nn.BatchNorm2d(planes[0]), nn.ReLU()
    )
    in_planes = planes[0]
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    for i, (p, n, stride) in enumerate(zip(planes, num_blocks, (1, 2, 2, 2), strict=True), start=1):
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(block(in_planes, p, s))
            in_planes = p * block.expansion
        stages.append((f"layer{i}", nn.Sequential(*blocks)))
    stages.append(("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    stages.append(("fc", nn.Linear(in_planes, num_classes)))
    return StagedNet(normalize, stages, taps={"pre_block4": 4, "pre_fc": 6})


resnet18 = partial(build_resnet, BasicBlock, (2, 2, 2, 2))
resnet50 = partial(build_resnet, Bottleneck, (3, 4, 6, 3))  # 2048·w features before the FC
