"""The precision attacks craft in, and the one strict-float32 verdict that scores them.

Crafting (the passes that choose a perturbation) may run in a fast precision: a slightly worse
gradient only makes the attack slightly weaker. Whether an example is adversarial may not:
DeepFool's examples sit 2 % past the boundary, and TF32 convolutions moved 7 % of them back
across it (H100, digits ResNet18, `devices.py`). So every "robust or fooled" decision is
`verdict`'s, one forward pass in strict float32 (no autocast, TF32 off), and the attacks' own
early stops confirm their "fooled" calls the same way (`confirm_fooled`), so a sample the fast
precision wrongly calls fooled keeps being attacked instead of being reported robust.

The precision in force is the scoped or process-wide choice (`crafting_in`, `choose`: the
`--craft-precision` flag), else the device's default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

import torch
from torch import nn

from robustbench_lr.devices import model_device
from robustbench_lr.evaluation import predict
from robustbench_lr.registry import Registry

Context = Callable[[torch.device], AbstractContextManager[None]]


@contextmanager
def _tf32(device: torch.device, allowed: bool = True) -> Iterator[None]:
    """TF32 matmuls and cuDNN convolutions on or off, the previous settings restored after.

    Only CUDA reads these flags: on the CPU (oneDNN keeps IEEE float32) they change nothing.
    """
    matmul, conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if allowed else "highest")
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = conv


@contextmanager
def strict(device: torch.device) -> Iterator[None]:
    """Strict float32 on `device`: autocast off (even inside a bf16 block), TF32 off."""
    with _tf32(device, False), torch.autocast(device.type, enabled=False):
        yield


def _bf16(device: torch.device) -> AbstractContextManager[None]:
    return torch.autocast(device.type, dtype=torch.bfloat16)


@dataclass(frozen=True)
class Precision:
    """One crafting precision: the context its passes run in, and whether it is strict float32
    itself (`exact`: its own "fooled" calls are already verdicts, so none is re-checked)."""

    name: str
    context: Context
    exact: bool


PRECISIONS: Registry[Precision] = Registry("crafting precision")
for _precision in (
    Precision("float32", strict, True),
    Precision("tf32", _tf32, False),
    Precision("bf16", _bf16, False),
):
    PRECISIONS.add(_precision.name, _precision)

CPU_DEFAULT = "float32"  # bit-for-bit the numbers committed under reports/cpu
# The rule: the cheapest precision that keeps every number honest. Until tf32 / bf16 are measured
# against float32 on a GPU (`benchmarks/attacks.py`, attacks-precision-cuda), that is float32.
CUDA_DEFAULT = "float32"
DEVICE_DEFAULTS = {"cpu": CPU_DEFAULT, "cuda": CUDA_DEFAULT}

_CHOSEN: ContextVar[str | None] = ContextVar("craft_precision", default=None)


def choose(name: str | None) -> Token[str | None]:
    """Make `name` the crafting precision of this process (None: each device's default), as
    `--craft-precision` does."""
    return _CHOSEN.set(None if name is None else PRECISIONS.get(name).name)


@contextmanager
def crafting_in(name: str | None) -> Iterator[None]:
    """Craft in `name` inside the block (None: each device's default), then restore the choice."""
    token = choose(name)
    try:
        yield
    finally:
        _CHOSEN.reset(token)


def craft_precision(device: torch.device) -> Precision:
    """The precision attacks on `device` craft in now: the choice in force, else its default."""
    return PRECISIONS.get(_CHOSEN.get() or DEVICE_DEFAULTS.get(device.type, CPU_DEFAULT))


def crafting(device: torch.device) -> AbstractContextManager[None]:
    """Run the block's crafting passes in `craft_precision(device)`."""
    return craft_precision(device).context(device)


def verdict(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per sample, True where `model` still classifies `x_adv` as `y` (robust), False where it
    is fooled: one strict-float32 forward pass on the model's device, the one place it is decided.
    """
    device = model_device(model)
    with strict(device):
        return predict(model, x_adv) == y.to(device)


def confirm_fooled(
    model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, fooled: torch.Tensor
) -> torch.Tensor:
    """`fooled` (an attack's own calls, in its crafting precision) with every True re-decided
    by `verdict`: one strict pass over those samples only. Under an exact precision the calls
    already are verdicts and come back unchanged, with no extra pass.
    """
    if craft_precision(x_adv.device).exact or not bool(fooled.any()):
        return fooled
    confirmed = fooled.clone()
    confirmed[fooled] = ~verdict(model, x_adv[fooled], y[fooled]).to(fooled.device)
    return confirmed
