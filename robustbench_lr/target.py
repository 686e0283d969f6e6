"""What an experiment evaluates: a checkpoint's model on its seeded test subset, and the model
black-box examples are crafted on.

Attacks, ρ searches, analyses, audits and `evaluate` all look at "a uniformly sampled subset of
the test set" (Section 3, D.3) of a trained checkpoint, sometimes with a second checkpoint
whose examples are transferred (the black-box source) or whose verdict stops an attack (Table
6's matched partner). This is the one place that loads them, draws the subset, and checks that
two checkpoints saw the same data, so every command that says `--n 500 --seed 0` looks at the
same images and no transfer between two datasets goes through.

A target's model may also come from outside the suite (`external`: a user's factory and
weights, or a RobustBench zoo entry): such an `external.ExternalTarget` builds its own model and
metadata, and the subset, the black-box source and the same-data check are the ones every
checkpoint gets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robustbench_lr.checkpoints import CheckpointError, load_model
from robustbench_lr.data import Data, LoadOptions, dataset_label, load_for_checkpoint
from robustbench_lr.devices import model_device
from robustbench_lr.results import model_fields

if TYPE_CHECKING:  # external builds its Target from this module: a runtime import would loop
    from robustbench_lr.external import ExternalTarget

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
class Target:
    """A checkpoint's model (eval mode) and metadata, its test subset in [0, 1], and the
    optional black-box source. `data` is the checkpoint's dataset with `x_test/y_test` cut to
    the subset (its training split is one image unless `load_target(..., train=True)`)."""

    model: nn.Module
    meta: dict[str, Any]
    checkpoint: str
    data: Data
    subset_seed: int = 0
    source: nn.Module | None = None
    source_path: str = ""

    @property
    def x(self) -> torch.Tensor:
        return self.data.x_test

    @property
    def y(self) -> torch.Tensor:
        return self.data.y_test

    @property
    def box(self) -> str:
        return "white" if self.source is None else "black"

    @property
    def crafter(self) -> nn.Module:
        """The model whose gradients craft the examples."""
        return self.source if self.source is not None else self.model

    @property
    def judge(self) -> nn.Module | None:
        """The model that decides "fooled" when it is not the crafter (black-box), else None."""
        return self.model if self.source is not None else None

    @property
    def columns(self) -> dict[str, Any]:
        """The results columns that identify the evaluated model."""
        return model_fields(self.meta, self.checkpoint)

    @property
    def subset_extra(self) -> dict[str, Any]:
        """What the `param` column records about the subset (nothing for the default seed)."""
        return {"subset_seed": self.subset_seed} if self.subset_seed else {}


def load_target(
    checkpoint: str | Path | ExternalTarget,
    *,
    n: int | None = DEFAULT_N,
    seed: int = 0,
    source: str | Path | None = None,
    device: torch.device | str = "cpu",
    options: LoadOptions | None = None,
    train: bool = False,
    test_limit: int | None = None,
) -> Target:
    """Load `checkpoint`, its seeded uniform test subset (`n=None`: the whole test split) and,
    for black-box runs, `source` (a trained checkpoint of the same data).

    The test split is the checkpoint's own (its `test_limit`, unless one is given), and its
    content must be what the model was trained on (`data.load_for_checkpoint`). `train=True`
    keeps the training split (hybrid models are fitted on it). An `ExternalTarget` loads its
    own model and data; the subset it is cut to is the same one a checkpoint gets.
    """
    if isinstance(checkpoint, str | Path):
        whole = _checkpoint_target(checkpoint, device, options, train, test_limit)
    else:
        whole = checkpoint.load(device, options, train, test_limit)
    idx = uniform_subset(len(whole.data.y_test), n, seed)
    data = replace(whole.data, x_test=whole.data.x_test[idx], y_test=whole.data.y_test[idx])
    target = replace(whole, data=data, subset_seed=seed)
    if source:
        crafter = load_companion(source, target, "--source")
        return replace(target, source=crafter, source_path=str(source))
    return target


def _checkpoint_target(
    checkpoint: str | Path,
    device: torch.device | str,
    options: LoadOptions | None,
    train: bool,
    test_limit: int | None,
) -> Target:
    """A trained checkpoint's model and its whole (limited) test split."""
    model, meta = load_model(checkpoint, device)
    cfg = meta["config"]
    data = load_for_checkpoint(
        meta,
        checkpoint,
        options,
        train_limit=cfg.get("train_limit") if train else 1,
        test_limit=test_limit if test_limit is not None else cfg.get("test_limit"),
    )
    return Target(model, meta, str(checkpoint), data)


def load_companion(path: str | Path, target: Target, role: str) -> nn.Module:
    """Another checkpoint used with `target` (a black-box source, a stop-on judge), on the
    target's device; refused unless it was trained on the same data."""
    other, other_meta = load_model(path, model_device(target.model))
    check_same_data(target.meta, other_meta, f"{role} {path}", target.checkpoint)
    weights = other_meta.get("files")
    if weights and weights == target.meta.get("files"):
        # Filed as black-box, a white-box number would pass for transfer robustness.
        raise CheckpointError(
            f"{role} {path} holds the same weights as the target {target.checkpoint}: "
            "it must be another model"
        )
    return other


def check_same_data(meta: dict[str, Any], other: dict[str, Any], role: str, target: str) -> None:
    """The one "same dataset?" test: name as shown, classes and content fingerprint."""
    mine, theirs = _data_identity(meta), _data_identity(other)
    if mine != theirs:
        raise CheckpointError(
            f"{role} was trained on {theirs[0]} ({theirs[1]} classes), the target {target} on "
            f"{mine[0]} ({mine[1]}): both must see the same data"
        )


def _data_identity(meta: dict[str, Any]) -> tuple[str, int, str]:
    """Dataset name (as shown), classes and content fingerprint of a checkpoint's data."""
    label = meta.get("dataset_label") or dataset_label(meta["config"]["dataset"])
    return label, int(meta["dataset_spec"]["num_classes"]), meta.get("data_fingerprint", "")
