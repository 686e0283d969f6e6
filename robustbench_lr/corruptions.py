"""Common corruptions (Hendrycks & Dietterich, ICLR 2019): 15 corruptions x 5 severities.

The paper claims robustness to random perturbations; the field tests that claim on CIFAR-10-C
/ CIFAR-100-C, RobustBench's corruptions track. Two sources of corrupted images, one result:
- `generate`: the benchmark's reference filters as packaged by `imagecorruptions-imaug` (the
  maintained fork; `imagecorruptions` 1.1.2 passes scikit-image's removed `multichannel=`),
  applied to any dataset's test images, deterministically from a seed;
- `read_c_files`: the published `.npy` files under `--data-root` (`CIFAR-10-C/<name>.npy`,
  5 x 10,000 uint8 NHWC images, severity 1 first, plus `labels.npy`).
`imagecorruptions` is an optional extra (`pip install .[corruptions]`), imported when used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# The 15 benchmark corruptions in the paper's order, by family (Fig. 1 of the paper).
_BY_FAMILY = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
CORRUPTIONS: dict[str, str] = {c: family for family, cs in _BY_FAMILY.items() for c in cs}
SEVERITIES = (1, 2, 3, 4, 5)
FAMILIES = tuple(_BY_FAMILY)
# The library refuses images under 32 pixels a side (its filters are sized in pixels).
MIN_SIDE = 32
# Where each dataset's published corrupted test set lives under --data-root.
C_FOLDERS = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}
# Filters the library seeds from an argument rather than from np.random.
_SEEDED_BY_ARGUMENT = ("impulse_noise", "glass_blur")


class CorruptionError(ValueError):
    """An unknown corruption or severity, or a missing/truncated -C file: one line, exit 2."""


def check_choices(corruptions: Sequence[str], severities: Sequence[int]) -> None:
    """Refuse an unknown corruption or severity, listing the valid ones."""
    if unknown := [c for c in corruptions if c not in CORRUPTIONS]:
        raise CorruptionError(
            f"unknown corruption {unknown[0]!r}; valid choices: {', '.join(CORRUPTIONS)}"
        )
    if bad := [s for s in severities if s not in SEVERITIES]:
        raise CorruptionError(
            f"unknown corruption severity {bad[0]!r}; valid choices: "
            f"{', '.join(map(str, SEVERITIES))}"
        )
    if not corruptions or not severities:
        raise CorruptionError("at least one corruption and one severity are needed")


def _seed(seed: int, name: str, severity: int) -> int:
    """A 32-bit seed per (seed, corruption, severity), the same on every machine."""
    digest = hashlib.sha256(f"{seed}:{name}:{severity}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`x` (N x C x H x W in [0, 1], C = 1 or 3) under corruption `name` at `severity`.

    The library draws from numpy's global RNG, seeded once per (seed, name, severity): the
    same call gives the same bytes. It wants H x W x 3 uint8 images of at least 32 pixels a
    side, its pixel-sized parameters set for CIFAR/ImageNet: grayscale is repeated to 3
    channels and averaged back, and a smaller image (digits' 8 x 8) is upscaled by nearest
    neighbour, corrupted, and area-averaged back (exact for an uncorrupted image), so a
    filter acts at the scale its severities were calibrated for.
    """
    check_choices([name], [severity])
    try:
        from imagecorruptions import corrupt as library_corrupt
    except ImportError as err:
        raise CorruptionError(
            f"generated corruptions need the `corruptions` extra: pip install "
            f"'robustbench-lr[corruptions]' ({err})"
        ) from err
    n, channels, height, width = x.shape
    factor = max(1, -(-MIN_SIDE // min(height, width)))  # ceil: the smallest legal upscale
    big = x.repeat_interleave(factor, 2).repeat_interleave(factor, 3) if factor > 1 else x
    images = (big.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if channels == 1:
        images = np.repeat(images, 3, axis=3)
    base = _seed(seed, name, severity)
    np.random.seed(base)
    out = np.empty(images.shape, dtype=np.float32)
    for i, image in enumerate(images):
        extra = {"seed": (base + i) % 2**32} if name in _SEEDED_BY_ARGUMENT else {}
        out[i] = library_corrupt(image, severity=severity, corruption_name=name, **extra)
    result = torch.from_numpy(out).permute(0, 3, 1, 2) / 255.0
    if channels == 1:
        result = result.mean(1, keepdim=True)
    if factor > 1:
        result = F.avg_pool2d(result, factor)
    return result.clamp(0, 1).contiguous()


def c_folder(data_root: str | Path, dataset: str) -> Path:
    """`<data-root>/CIFAR-10-C` (or -100-C); other datasets have no published -C set."""
    if dataset not in C_FOLDERS:
        raise CorruptionError(
            f"no published corrupted test set for dataset {dataset!r}; -C files exist for: "
            f"{', '.join(C_FOLDERS)} (use generated corruptions for the others)"
        )
    return Path(data_root) / C_FOLDERS[dataset]


def _npy(path: Path, data_root: str | Path) -> np.ndarray:
    """A -C array, memory-mapped (50,000 images stay on disk), never unpickled."""
    hint = f"(--data-root {data_root})"
    if not path.is_file():
        raise CorruptionError(f"{path} is missing {hint}: download CIFAR-10-C/-100-C there")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CorruptionError(f"{path} is truncated or not a .npy file {hint}: {err}") from err


def c_labels(data_root: str | Path, dataset: str) -> np.ndarray:
    """`labels.npy`: one label per image of each corruption file (5 severities x images)."""
    path = c_folder(data_root, dataset) / "labels.npy"
    labels = _npy(path, data_root)
    if labels.ndim != 1 or len(labels) % len(SEVERITIES):
        raise CorruptionError(
            f"{path} holds shape {labels.shape}, not one label per image of "
            f"{len(SEVERITIES)} severities (--data-root {data_root})"
        )
    return labels


def read_c_files(
    data_root: str | Path, dataset: str, name: str, severity: int, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images `index` (of one severity's block) of `<name>.npy` and their labels, as N x 3 x
    32 x 32 floats in [0, 1]; a file of the wrong shape or length (a cut download) is refused."""
    check_choices([name], [severity])
    labels = c_labels(data_root, dataset)
    per_severity = len(labels) // len(SEVERITIES)
    path = c_folder(data_root, dataset) / f"{name}.npy"
    images = _npy(path, data_root)
    if images.shape != (len(labels), 32, 32, 3) or images.dtype != np.uint8:
        raise CorruptionError(
            f"{path} holds {images.dtype} {images.shape}, expected uint8 "
            f"({len(labels)}, 32, 32, 3) as labels.npy says: truncated? (--data-root {data_root})"
        )
    rows = index.numpy() + (severity - 1) * per_severity
    x = torch.from_numpy(np.ascontiguousarray(images[rows])).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(labels[rows].astype(np.int64))


def relative_ce(
    errors: Sequence[float], clean_error: float, base_errors: Sequence[float], base_clean: float
) -> float:
    """Hendrycks & Dietterich's relative corruption error of one corruption, in %:
    sum over severities of (E_s - E_clean), over the same sum for the baseline model.
    Their relative mCE is the mean of this over the corruptions (here the baseline is N-LR)."""
    denominator = sum(base_errors) - len(base_errors) * base_clean
    numerator = sum(errors) - len(errors) * clean_error
    return 100.0 * numerator / denominator if denominator > 0 else float("nan")
