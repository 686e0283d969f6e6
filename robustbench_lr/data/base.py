"""The types every dataset shares, the registry, and the helpers the format readers all use.

The readers (one module per on-disk format: `digits`, `cifar`, `svhn`, `npz`) import only
this module and `digests`; `robustbench_lr.data` registers them in `DATASETS` and is what the
rest of the suite imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from robustbench_lr.errors import RobustbenchLRError
from robustbench_lr.registry import Registry

DEFAULT_DATA_ROOT = "data"


class DatasetError(RobustbenchLRError, RuntimeError):
    """A dataset is missing or malformed; the message says what and which flag fixes it."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about its data: shape, classes and normalization."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = False  # pad-4 random crop + horizontal flip (CIFAR train only)


@dataclass
class Data:
    """Train and test tensors of one dataset: images float32 NCHW in [0, 1], labels int64."""

    spec: DatasetSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    # sha256 of what the loader read, before any limit; "" for tensors assembled by hand.
    fingerprint: str = ""


@dataclass(frozen=True)
class LoadOptions:
    """Where and how to find files; only the file-backed datasets use these."""

    data_root: str = DEFAULT_DATA_ROOT
    download: bool = False
    svhn_extra: bool = False
    # Where a checkpoint's npz lies now, if not where training read it (same content only).
    npz: str | None = None


Loader = Callable[[LoadOptions], Data]


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its loader and what other parts of the suite need to know of it.

    `audit_eps` is the L∞ budget the audit checks the dataset's models at (None: the audit's
    default, the paper's 8/255). `other_labelling` names a registered dataset holding the same
    images in the same order under other labels: the transfer analysis' default target (Table
    7c), None when there is none.
    """

    loader: Loader
    audit_eps: float | None = None
    other_labelling: str | None = None
    # The L2 track's budget (RobustBench's L2 leaderboard: 0.5 on CIFAR's 32 x 32 x 3 images).
    l2_eps: float = 0.5


DATASETS: Registry[Dataset] = Registry("dataset")


def stratified_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of a deterministic subset of size `n` keeping class proportions.

    Per class, a seeded permutation; classes get `round(n * share)` slots by largest remainder,
    so the result is exactly `n` long and the same for the same labels and seed.
    """
    total = len(labels)
    if n >= total:
        return torch.arange(total)
    if n <= 0:
        raise ValueError(f"a limit must be positive, got {n}")
    gen = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.double() * n / total
    take = quota.floor().long()
    remainder_order = torch.argsort(quota - take, descending=True, stable=True)
    take[remainder_order[: n - int(take.sum())]] += 1
    picked = []
    for cls, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(labels == cls).flatten()
        picked.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.sort(torch.cat(picked)).values


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of training images (the model's normalization layer).

    A channel of one single pixel has no sample std; it gets 1, i.e. no scaling.
    """
    mean = x.mean(dim=(0, 2, 3))
    if x.numel() == x.shape[1]:
        std = torch.ones_like(mean)
    else:
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def _missing(name: str, where: Path) -> DatasetError:
    return DatasetError(
        f"{name} not found under {where}: pass --data-root DIR pointing at it, "
        f"or add --download to fetch it (needs network)"
    )
