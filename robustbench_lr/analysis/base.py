"""The analysis plug-in: a named function from a checkpoint to rows of the results file.

Every representation analysis of the paper (Section 4 of SPEC: variance ratio, hybrid
max-margin models, stability, cushion, ...) has the same shape: load a trained checkpoint,
compute numbers on its test set, return tidy rows (and maybe a figure next to the results
file). `robustbench-lr analyze KIND` looks KIND up in `ANALYSES` and appends the rows, so
adding an analysis is adding one `Analysis` value to the tuple in `analysis/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from robustbench_lr.data import Data, LoadOptions, load_for_checkpoint
from robustbench_lr.evalset import uniform_subset
from robustbench_lr.models import StagedNet


@dataclass(frozen=True)
class AnalysisOptions:
    """The flags every analysis shares, plus free-form `--option KEY=VALUE` pairs in `extra`.

    `tap=None` means the analysis' own default tap; `n=None` the checkpoint's whole test set
    (else the seeded uniform subset of n images that `attack --n` draws); `dims` lists target
    dimensions for analyses that reduce (PCA), empty when not given.
    """

    tap: str | None = None
    n: int | None = None
    seed: int = 0
    dims: tuple[int, ...] = ()
    device: str = "auto"
    load: LoadOptions = field(default_factory=LoadOptions)
    extra: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str, kind: Callable[[str], Any], default: Any) -> Any:
        """An `extra` value converted by `kind`, or `default` when it was not given."""
        return kind(self.extra[key]) if key in self.extra else default


@dataclass
class AnalysisResult:
    """What an analysis hands back: result rows, files it wrote, and a short human summary."""

    rows: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: `run(checkpoint_dir, results_path, options)`.

    `run` must not write to the results file itself (the command appends its rows); it may
    write figures beside `results_path` (analysis/plotting.py) and list them in
    `AnalysisResult.files`.
    """

    name: str
    summary: str
    run: Callable[[Path, Path, AnalysisOptions], AnalysisResult]


def load_checkpoint_data(
    checkpoint: Path, options: AnalysisOptions, train: bool = False
) -> tuple[StagedNet, dict[str, Any], Data]:
    """The checkpoint's inference model, its meta.json and its dataset; with `n`, the test set
    is the seeded uniform subset the attack commands draw for the same `--n/--seed`.

    The training split is only kept when `train=True` (hybrid models train on it); otherwise
    it is cut to one image so that large datasets do not cost memory for nothing.
    """
    from robustbench_lr.checkpoints import load_model
    from robustbench_lr.devices import use_device

    model, meta = load_model(checkpoint, use_device(options.device))
    cfg = meta["config"]
    train_limit = cfg.get("train_limit") if train else 1
    data = load_for_checkpoint(meta, checkpoint, options.load, train_limit, cfg.get("test_limit"))
    if options.n is not None:  # the same images as `attack --n N --seed S` (evalset.py)
        idx = uniform_subset(len(data.y_test), options.n, options.seed)
        data = replace(data, x_test=data.x_test[idx], y_test=data.y_test[idx])
    return model, meta, data


def resolve_tap(model: StagedNet, tap: str | None, default: str) -> str:
    """`tap` (or `default`) checked against the model's taps; an unknown one lists the valid taps."""
    name = tap or default
    if name not in model.tap_names:
        raise ValueError(f"unknown tap {name!r}; this model has: {', '.join(model.tap_names)}")
    return name
