"""Device selection and the determinism switches the regression gate relies on."""

from __future__ import annotations

import itertools
import os

import torch
from torch import nn

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Map `auto|cpu|cuda` to a device; asking for CUDA without one is an error, not a fallback."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; valid choices: {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but torch sees no CUDA device")
    return torch.device(name)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (inputs are moved there); a model without parameters
    or buffers (a fixed function) runs on the CPU."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def set_deterministic(device: torch.device) -> None:
    """Make runs bit-for-bit repeatable on CPU and as repeatable as cuDNN allows on CUDA.

    The regression gate compares numbers across runs, so nondeterministic kernels are off.
    TF32 is off too: float32 work (every evaluation, every robust/fooled verdict) must be
    float32, because DeepFool's examples sit 2 % past the boundary and TF32 convolutions
    (10-bit mantissas, on by default for cuDNN) moved 7 % of them back across it when
    re-evaluated in another batch (H100, digits ResNet18). Attacks may craft in TF32 or bf16
    inside `attacks.precision.crafting` (strict float32 unless chosen), which restores these
    flags after and decides every verdict in strict float32. Training is unaffected: it runs
    in bf16 autocast.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def use_device(name: str = "auto") -> torch.device:
    """Resolve `name` and apply the determinism policy: what every entry point does first.

    One call, so no command can compute on a device without the policy (an analysis once ran
    on CUDA with TF32 convolutions because only attacks and training set it).
    """
    device = resolve_device(name)
    set_deterministic(device)
    return device
