"""Accuracy under natural distribution shifts (`shifts.py`): one row per shifted test set.

Rows (`experiment = "shift"`, `attack` = the shift's name, `backend` = its folder): metric
`acc` on `n` images of the shifted set, and `clean_acc` on the model's own test subset, so a
table reads the drop from one row pair. A model of another dataset than the shift's is refused:
its labels would mean other classes.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lr.evaluation import accuracy
from robustbench_lr.experiments import Outcome
from robustbench_lr.shifts import ShiftError, load_shift, shift
from robustbench_lr.target import Target

EXPERIMENT = "shift"


def run_shifts(
    target: Target, names: Sequence[str], data_root: str, fetch: bool = False, batch_size: int = 512
) -> Outcome:
    """`target`'s model on each shifted test set of `names` (as many images as its subset)."""
    dataset = target.meta["config"]["dataset"]
    specs = {name: shift(name) for name in names}  # unknown names fail before any work
    for name, spec in specs.items():
        if spec.dataset != dataset:
            raise ShiftError(f"shift {name!r} tests {spec.dataset} models, not a {dataset} model")
    n = len(target.y)
    base = {**target.columns, "experiment": EXPERIMENT}
    clean = accuracy(target.model, target.x, target.y, batch_size)
    rows, lines = [], []
    for name, spec in specs.items():
        x, y = load_shift(name, data_root, n, target.subset_seed, fetch)
        acc = accuracy(target.model, x, y, batch_size)
        shifted = {**base, "attack": name, "backend": spec.folder}
        rows += [
            {**shifted, "metric": "acc", "value": acc, "n": len(y)},
            {**shifted, "metric": "clean_acc", "value": clean, "n": n},
        ]
        lines.append(f"shift {name}: acc {acc:.2f}% (clean {clean:.2f}%), n={len(y)}")
    return Outcome(rows, lines)
