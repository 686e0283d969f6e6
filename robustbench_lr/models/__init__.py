"""Architecture registry: `build(arch, spec, width)` = Normalize -> network, with named taps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from robustbench_lr.data import DatasetSpec
from robustbench_lr.models.base import Normalize, StagedNet, activations, tap_sizes
from robustbench_lr.models.resnet import resnet18, resnet50
from robustbench_lr.models.vgg import vgg19
from robustbench_lr.registry import Registry

ArchBuilder = Callable[[Normalize, int, int, int, float], StagedNet]


@dataclass(frozen=True)
class Arch:
    """A registered architecture: its builder and the two taps the paper names (SPEC §1).

    `last_tap` is the representation before the last FC layer: 1-LR's branch, Bottle-LR's
    bottleneck and every analysis' default. `deep_tap` is 2-LR's second branch (before ResNet
    block 4; before VGG's first FC, i.e. the third-last) and the hybrid of Tables 5b and 8.
    """

    builder: ArchBuilder
    last_tap: str
    deep_tap: str


ARCHS: Registry[Arch] = Registry("architecture")
ARCHS.add("resnet18", Arch(resnet18, last_tap="pre_fc", deep_tap="pre_block4"))
ARCHS.add("resnet50", Arch(resnet50, last_tap="pre_fc", deep_tap="pre_block4"))
ARCHS.add("vgg19", Arch(vgg19, last_tap="fc3_in", deep_tap="fc1_in"))

# A tap role: the name of one of an architecture's taps, from the architecture's name.
TapRole = Callable[[str], str]


def last_tap(arch: str) -> str:
    """`arch`'s tap before the last FC layer."""
    return ARCHS.get(arch).last_tap


def deep_tap(arch: str) -> str:
    """`arch`'s deeper tap (2-LR's second branch)."""
    return ARCHS.get(arch).deep_tap


def build(arch: str, spec: DatasetSpec, width: float = 1.0) -> StagedNet:
    """Build `arch` for a dataset: channels, input size and classes come from `spec`."""
    if width <= 0:
        raise ValueError(f"--width must be positive, got {width}")
    model = ARCHS.get(arch).builder(
        Normalize(spec.mean, spec.std), spec.channels, spec.size, spec.num_classes, width
    )
    model.input_shape = (spec.channels, spec.size, spec.size)
    return model


__all__ = [
    "ARCHS",
    "Arch",
    "StagedNet",
    "TapRole",
    "activations",
    "build",
    "deep_tap",
    "last_tap",
    "tap_sizes",
]
