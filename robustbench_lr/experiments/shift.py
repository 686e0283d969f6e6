"""Accuracy under natural distribution shifts (`shifts.py`): one row per shifted test set.

Rows (`experiment = "shift"`, `attack` = the shift's name, `backend` = its folder): metric
`acc` on `n` images of the shifted set, and `clean_acc` on the model's own test subset, so a
table reads the drop from one row pair. A model of another dataset than the shift's is refused:
its labels would mean other classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_lr.attacks import DEFAULT_BATCH
from robustbench_lr.data import DEFAULT_DATA_ROOT
from robustbench_lr.evaluation import accuracy
from robustbench_lr.experiments import Outcome
from robustbench_lr.shifts import SHIFTS, ShiftError, load_shift, shift
from robustbench_lr.stats import accuracy_interval
from robustbench_lr.target import Target

EXPERIMENT = "shift"


def shifts_of(dataset: str) -> tuple[str, ...]:
    """The shifts registered for models of `dataset`; none is an error naming where some are."""
    names = tuple(name for name, spec in SHIFTS.items() if spec.dataset == dataset)
    if not names:
        tested = ", ".join(f"{name} ({spec.dataset})" for name, spec in SHIFTS.items())
        raise ShiftError(f"no distribution shift tests {dataset} models; shifts: {tested}")
    return names


@dataclass(frozen=True)
class ShiftSettings:
    """Which shifted test sets (`names=None`: every shift of the model's dataset), read under
    `data_root` (`fetch`: downloaded when missing), scored in batches of `batch_size`."""

    names: tuple[str, ...] | None = None
    data_root: str = DEFAULT_DATA_ROOT
    fetch: bool = False
    batch_size: int = DEFAULT_BATCH


def run_shifts(target: Target, settings: ShiftSettings) -> Outcome:
    """`target`'s model on each shifted test set of `settings.names` (as many images as its
    subset). Every set is read before the model sees one: a missing or truncated file fails the
    run before any evaluation."""
    dataset = target.meta["config"]["dataset"]
    names, data_root, batch_size = settings.names, settings.data_root, settings.batch_size
    names = shifts_of(dataset) if names is None else tuple(names)
    specs = {name: shift(name) for name in names}  # unknown names fail before any work
    for name, spec in specs.items():
        if spec.dataset != dataset:
            raise ShiftError(f"shift {name!r} tests {spec.dataset} models, not a {dataset} model")
    n = len(target.y)
    sets = {
        name: load_shift(name, data_root, n, target.subset_seed, settings.fetch) for name in specs
    }
    base = {**target.columns, "experiment": EXPERIMENT}
    clean = accuracy(target.model, target.x, target.y, batch_size)
    rows, lines = [], []
    for name, (x, y) in sets.items():
        acc = accuracy(target.model, x, y, batch_size)
        shifted = {**base, "attack": name, "backend": specs[name].folder}
        rows += [
            {**shifted, "metric": "acc", "value": acc, "n": len(y)},
            {**shifted, "metric": "clean_acc", "value": clean, "n": n},
        ]
        lo, hi = accuracy_interval(acc, len(y))
        lines.append(
            f"shift {name}: acc {acc:.2f}% (95% CI {lo:.2f}-{hi:.2f}), clean {clean:.2f}%, "
            f"n={len(y)}"
        )
    return Outcome(rows, lines)
