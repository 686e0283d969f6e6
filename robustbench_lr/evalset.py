"""The evaluation set of a checkpoint: its model and a seeded, uniformly sampled test subset.

Attacks, ρ searches, analyses and audits all evaluate "a uniformly sampled subset of the test
set" (Section 3, D.3); this is the one place that draws it, so every command that says
`--n 500 --seed 0` looks at the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lr.data import LoadOptions, load_for_checkpoint

DEFAULT_N = 500


def uniform_subset(total: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices of `n` of `total` items drawn uniformly without replacement (all if fewer).

    Uniform, not stratified, because that is what the paper's D.3 says; seeded so the same
    `--n/--seed` selects the same images on every machine.
    """
    if n is None or n >= total:
        return torch.arange(total)
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    return torch.sort(torch.randperm(total, generator=gen)[:n]).values


@dataclass(frozen=True)
class EvalSet:
    """A checkpoint's model (eval mode), its metadata, and the chosen test images in [0, 1]."""

    model: nn.Module
    meta: dict[str, Any]
    checkpoint: str
    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor


def load_eval_set(
    checkpoint: str | Path,
    n: int | None = DEFAULT_N,
    seed: int = 0,
    device: torch.device | str = "cpu",
    options: LoadOptions | None = None,
) -> EvalSet:
    """Load a checkpoint and the seeded uniform subset of its dataset's test split (on CPU).

    The test split is the checkpoint's own (its `test_limit` applies), so the subset of a model
    trained on a limited test set comes from the images it was evaluated on; a dataset whose
    content changed since training is a DatasetError (`data.load_for_checkpoint`).
    """
    from robustbench_lr.checkpoints import load_model

    model, meta = load_model(checkpoint, device)
    test_limit = meta["config"].get("test_limit")
    data = load_for_checkpoint(meta, checkpoint, options, train_limit=1, test_limit=test_limit)
    idx = uniform_subset(len(data.y_test), n, seed)
    return EvalSet(model, meta, str(checkpoint), data.x_test[idx], data.y_test[idx], idx)
