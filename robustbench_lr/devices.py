"""Device selection and the determinism switches the regression gate relies on."""

from __future__ import annotations

import os

import torch

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


def set_deterministic(device: torch.device) -> None:
    """Make runs bit-for-bit repeatable on CPU and as repeatable as cuDNN allows on CUDA.

    The regression gate compares numbers across runs, so nondeterministic kernels are off.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
