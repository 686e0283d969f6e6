"""Architecture shapes and taps on digits-sized and CIFAR-sized inputs."""

from __future__ import annotations

import pytest
import torch

from robustbench_lr import models
from robustbench_lr.data import DatasetSpec

CASES = {
    # (arch, channels, size, width): expected tap sizes
    "resnet18-1x8x8": ("resnet18", 1, 8, 0.25, {"pre_block4": 64 * 2 * 2, "pre_fc": 128}),
    "resnet18-3x32x32": ("resnet18", 3, 32, 1.0, {"pre_block4": 16384, "pre_fc": 512}),
    "resnet50-1x8x8": ("resnet50", 1, 8, 0.25, {"pre_block4": 256 * 2 * 2, "pre_fc": 512}),
    "resnet50-3x32x32": ("resnet50", 3, 32, 1.0, {"pre_block4": 1024 * 8 * 8, "pre_fc": 2048}),
    "vgg19-1x8x8": ("vgg19", 1, 8, 0.25, {"fc1_in": 128, "fc3_in": 128}),
    "vgg19-3x32x32": ("vgg19", 3, 32, 1.0, {"fc1_in": 512, "fc3_in": 512}),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_logits_and_tap_sizes(case: str):
    arch, channels, size, width, taps = CASES[case]
    spec = DatasetSpec("t", channels, size, 7, (0.5,) * channels, (0.25,) * channels)
    model = models.build(arch, spec, width).eval()
    x = torch.rand(2, channels, size, size)
    logits, acts = model.run(x, list(taps))
    assert logits.shape == (2, 7)
    assert {k: v.shape[1] for k, v in acts.items()} == taps
    assert models.tap_sizes(model, channels, size) == taps
    assert torch.equal(model(x), logits)


# The stage each architecture's deep tap feeds: ResNet's 4th block, VGG19's first (third-last) FC.
DEEP_STAGE = {"resnet18": "layer4", "resnet50": "layer4", "vgg19": "fc1"}


@pytest.mark.parametrize("arch", models.ARCHS.names())
def test_the_entry_taps_sit_where_the_paper_puts_them(arch: str):
    model = models.build(arch, DatasetSpec("t", 1, 8, 10, (0.3,), (0.5,)), 0.25)
    stages = list(model.stages.items())
    entry = models.ARCHS.get(arch)
    _, last_stage = stages[model.tap_index[entry.last_tap]]
    assert model.tap_index[entry.last_tap] == len(stages) - 1  # the input of the last FC
    assert isinstance(last_stage, torch.nn.Linear)
    assert stages[model.tap_index[entry.deep_tap]][0] == DEEP_STAGE[arch]
    assert (models.last_tap(arch), models.deep_tap(arch)) == (entry.last_tap, entry.deep_tap)


def test_normalization_is_inside_the_model():
    spec = DatasetSpec("t", 1, 8, 10, (0.3,), (0.5,))
    model = models.build("resnet18", spec, 0.25)
    assert isinstance(model.normalize, torch.nn.Module)
    x = torch.full((1, 1, 8, 8), 0.8)
    assert torch.allclose(model.normalize(x), torch.ones_like(x))


def test_activations_batched_equal_single_pass():
    spec = DatasetSpec("t", 1, 8, 10, (0.3,), (0.5,))
    model = models.build("vgg19", spec, 0.25).eval()
    x = torch.rand(10, 1, 8, 8)
    batched = models.activations(model, x, ["fc1_in"], batch_size=3)["fc1_in"]
    with torch.no_grad():
        whole = model.run(x, ["fc1_in"])[1]["fc1_in"]
    assert torch.allclose(batched, whole, atol=1e-6)


def test_unknown_arch_and_tap_errors():
    spec = DatasetSpec("t", 1, 8, 10, (0.3,), (0.5,))
    with pytest.raises(KeyError, match="resnet18, resnet50, vgg19"):
        models.build("alexnet", spec)
    model = models.build("resnet18", spec, 0.25)
    with pytest.raises(KeyError, match="pre_block4, pre_fc"):
        model.run(torch.rand(1, 1, 8, 8), ["fc1_in"])
