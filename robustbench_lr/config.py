"""Frozen settings of one training run; the checkpoint stores them so it can rebuild itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from robustbench_lr.data import dataset_label
from robustbench_lr.settings import Count, NonNegative, Positive, Seed, parse_fraction, setting

# parse_fraction: where budgets are parsed, re-exported for the code that reads them.
__all__ = ["TrainConfig", "checkpoint_dir", "count", "from_fields", "parse_fraction"]

T = TypeVar("T")


def count(default: T, help: str) -> T:
    """A setting (`settings.setting`) that counts something: epochs, steps, queries, examples."""
    return setting(default, Count, help)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model's weights (the device does not).

    Defaults are the paper's recipe (Appendix C): SGD, momentum 0.9, weight decay 5e-4,
    lr 0.1, batch 128, lr x0.1 at 150/350 and 250/350 of the run.
    """

    dataset: str = "digits"
    arch: str = "resnet18"
    method: str = "nlr"
    epochs: int = count(8, "epochs (the lr schedule scales to it)")
    seed: int = setting(0, Seed, "seed for init, data order and augmentation")
    width: float = setting(1.0, Positive, "channel width multiplier (1.0 = the paper's)")
    batch_size: int = count(128, "mini-batch size (paper: 128)")
    lr: float = setting(0.1, Positive, "initial SGD learning rate (paper: 0.1)")
    momentum: float = 0.9
    weight_decay: float = setting(5e-4, NonNegative, "SGD weight decay (paper: 5e-4)")
    train_limit: int | None = count(None, "deterministic stratified training subset of this size")
    test_limit: int | None = count(None, "deterministic stratified test subset of this size")
    svhn_extra: bool = setting(False, help="add SVHN's 'extra' split to its training set")
    method_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in meta.json."""
        return asdict(self)

    def as_stored(self) -> dict[str, Any]:
        """`to_dict` after a JSON round trip (tuples become lists): what meta.json reads back,
        so a stored config compares equal to the one that wrote it."""
        return json.loads(json.dumps(self.to_dict()))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict` (ignores keys a newer version may have added)."""
        return from_fields(cls, raw)


def from_fields(cls: type[T], values: Mapping[str, Any], **given: Any) -> T:
    """The dataclass `cls` from `given` and, for each other field, the value of that name in
    `values` (other keys are ignored; a field found in neither keeps its default).

    Settings arrive by field name from more than one place: a command's flags (`vars(args)`,
    named after the fields they set) and a stored meta.json (which may hold keys a newer
    version added). `given` holds what is named otherwise or parsed further, and must, where a
    key of a field's name means something else (the audit's `threat` is `--norm`).
    """
    named = {
        f.name: values[f.name] for f in fields(cls) if f.name in values and f.name not in given
    }
    return cls(**named, **given)


def checkpoint_dir(root: str | Path, cfg: TrainConfig) -> Path:
    """`<root>/<dataset label>/<arch>[-w<width>]/<method>/seed<S>`: one folder per trained model.

    The width joins the arch folder when it is not the paper's 1.0, so runs at different
    widths never overwrite each other. The dataset folder is `data.dataset_label`: an npz's
    folder names its content, not its path.
    """
    arch = cfg.arch if cfg.width == 1.0 else f"{cfg.arch}-w{cfg.width:g}"
    return Path(root) / dataset_label(cfg.dataset) / arch / cfg.method / f"seed{cfg.seed}"
