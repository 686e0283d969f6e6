"""Architecture registry: `build(arch, spec, width)` = Normalize -> network, with named taps."""

from __future__ import annotations

from collections.abc import Callable

from robustbench_lr.data import DatasetSpec
from robustbench_lr.models.base import Normalize, StagedNet, activations, tap_sizes
from robustbench_lr.models.resnet import resnet18, resnet50
from robustbench_lr.models.vgg import vgg19
from robustbench_lr.registry import Registry

ArchBuilder = Callable[[Normalize, int, int, int, float], StagedNet]
ARCHS: Registry[ArchBuilder] = Registry("architecture")
ARCHS.add("resnet18", resnet18)
ARCHS.add("resnet50", resnet50)
ARCHS.add("vgg19", vgg19)

# The tap each architecture's "before the last FC" / "deeper" LR branches use (SPEC §1).
LAST_TAP = {"resnet18": "pre_fc", "resnet50": "pre_fc", "vgg19": "fc3_in"}
DEEP_TAP = {"resnet18": "pre_block4", "resnet50": "pre_block4", "vgg19": "fc1_in"}


def build(arch: str, spec: DatasetSpec, width: float = 1.0) -> StagedNet:
    """Build `arch` for a dataset: channels, input size and classes come from `spec`."""
    if width <= 0:
        raise ValueError(f"--width must be positive, got {width}")
    builder = ARCHS.get(arch)
    model = builder(
        Normalize(spec.mean, spec.std), spec.channels, spec.size, spec.num_classes, width
    )
    model.input_shape = (spec.channels, spec.size, spec.size)
    return model


__all__ = ["ARCHS", "DEEP_TAP", "LAST_TAP", "StagedNet", "activations", "build", "tap_sizes"]
