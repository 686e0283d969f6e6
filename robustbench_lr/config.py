"""Frozen settings of one training run; the checkpoint stores them so it can rebuild itself."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model's weights (the device does not).

    Defaults are the paper's recipe (Appendix C): SGD, momentum 0.9, weight decay 5e-4,
    lr 0.1, batch 128, lr x0.1 at 150/350 and 250/350 of the run.
    """

    dataset: str = "digits"
    arch: str = "resnet18"
    method: str = "nlr"
    epochs: int = 8
    seed: int = 0
    width: float = 1.0
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    train_limit: int | None = None
    test_limit: int | None = None
    svhn_extra: bool = False
    method_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in meta.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict` (ignores keys a newer version may have added)."""
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def checkpoint_dir(root: str | Path, cfg: TrainConfig) -> Path:
    """`<root>/<dataset>/<arch>[-w<width>]/<method>/seed<S>`: one folder per trained model.

    The width joins the arch folder when it is not the paper's 1.0, so runs at different
    widths never overwrite each other.
    """
    dataset = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.dataset.replace("npz:", "npz-")).strip("-")
    arch = cfg.arch if cfg.width == 1.0 else f"{cfg.arch}-w{cfg.width:g}"
    return Path(root) / dataset / arch / cfg.method / f"seed{cfg.seed}"


def parse_fraction(text: str | float) -> float:
    """Parse `8/255`, `0.03` or `3e-2` (how budgets are written on the command line)."""
    if isinstance(text, (int, float)):
        return float(text)
    text = text.strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)
