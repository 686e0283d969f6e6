"""Accuracy under common corruptions: one row per (corruption, severity), plus their means.

Rows (`experiment = "corruption"`; `param` holds the generation `seed`):
- metric `acc` per corruption (`attack` = its name) and severity;
- metric `clean_acc` (`attack = "none"`) on the same images, which the relative mCE needs;
- metric `mean_acc`: the mean over every corruption and severity run (`attack = "all"`, the
  benchmark's mean corruption accuracy) and over each family's (`attack` = the family).
The relative mCE against N-LR needs two models, so `relative_mce` computes it from the rows.
`backend` says where the images came from: `imagecorruptions` (generated) or `<folder>`
(the published `CIFAR-10-C` files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from robustbench_lr.corruptions import (
    C_FOLDERS,
    CORRUPTIONS,
    FAMILIES,
    SEVERITIES,
    c_labels,
    check_choices,
    corrupt,
    read_c_files,
    relative_ce,
)
from robustbench_lr.evaluation import accuracy
from robustbench_lr.experiments import Outcome
from robustbench_lr.settings import Seed, setting
from robustbench_lr.target import Target, uniform_subset

EXPERIMENT = "corruption"
SOURCES = ("generate", "files")
# Generated sets kept per process, so the bench's many models of one dataset share them
# (generating digits' 75 sets of 200 images takes ~17 s; evaluating a model on them ~1 s).
_CACHE: dict[tuple, torch.Tensor] = {}
_CACHE_LIMIT_BYTES = 256 * 2**20


@dataclass(frozen=True)
class CorruptionSettings:
    """Which corruptions and severities, from which source (`generate` or the -C `files`
    under `data_root`), with which generation seed."""

    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    severities: tuple[int, ...] = SEVERITIES
    source: str = "generate"
    seed: int = setting(0, Seed, "seed of the generated corruptions")
    data_root: str = "data"
    batch_size: int = 512

    def __post_init__(self) -> None:
        check_choices(self.corruptions, self.severities)
        if self.source not in SOURCES:
            raise ValueError(
                f"unknown corruption source {self.source!r}; valid choices: {', '.join(SOURCES)}"
            )


def _generated(x: torch.Tensor, name: str, severity: int, seed: int) -> torch.Tensor:
    key = (hashlib.sha256(x.numpy().tobytes()).hexdigest(), tuple(x.shape), name, severity, seed)
    if key not in _CACHE:
        images = corrupt(x, name, severity, seed)
        if sum(t.numel() * 4 for t in _CACHE.values()) + images.numel() * 4 > _CACHE_LIMIT_BYTES:
            _CACHE.clear()
        _CACHE[key] = images
    return _CACHE[key]


def run_corruptions(target: Target, settings: CorruptionSettings) -> Outcome:
    """Accuracy of `target`'s model on its test subset under every corruption and severity.

    Generated: the target's own subset, corrupted. Files: the same uniform draw of `n` images
    out of each severity's block (rows follow the test set's order, so the images are those of
    the clean subset when the model's test split is the whole one); their labels are the file's.
    """
    model, n = target.model, len(target.y)
    dataset = target.meta["config"]["dataset"]
    generated = settings.source == "generate"
    extra = f";subset_seed={target.subset_seed}" if target.subset_seed else ""
    base = {
        **target.columns,
        "experiment": EXPERIMENT,
        "backend": "imagecorruptions" if generated else C_FOLDERS.get(dataset, ""),
        "n": n,
        "param": ((f"seed={settings.seed}" if generated else "") + extra).lstrip(";"),
    }
    index = None
    if not generated:
        per_severity = len(c_labels(settings.data_root, dataset)) // len(SEVERITIES)
        index = uniform_subset(per_severity, n, target.subset_seed)
        base["n"] = len(index)
    clean = accuracy(model, target.x, target.y, settings.batch_size)
    rows = [{**base, "attack": "none", "metric": "clean_acc", "value": clean}]
    by_name: dict[str, list[float]] = {}
    for name in settings.corruptions:
        for severity in settings.severities:
            if index is None:
                x, y = _generated(target.x.cpu(), name, severity, settings.seed), target.y
            else:
                x, y = read_c_files(settings.data_root, dataset, name, severity, index)
            acc = accuracy(model, x, y, settings.batch_size)
            by_name.setdefault(name, []).append(acc)
            rows.append(
                {**base, "attack": name, "metric": "acc", "value": acc, "severity": severity}
            )
    means = {"all": [a for accs in by_name.values() for a in accs]}
    for family in FAMILIES:
        means[family] = [a for c, accs in by_name.items() if CORRUPTIONS[c] == family for a in accs]
    for label, accs in means.items():
        if accs:
            value = sum(accs) / len(accs)
            rows.append({**base, "attack": label, "metric": "mean_acc", "value": value})
    shown = sum(means["all"]) / len(means["all"])
    line = (
        f"corruptions [{base['backend']}] {len(by_name)} x {len(settings.severities)} severities: "
        f"mean acc {shown:.2f}% (clean {clean:.2f}%), n={base['n']}"
    )
    return Outcome(rows, [line])


def relative_mce(frame: pd.DataFrame, baseline: str = "nlr") -> pd.Series:
    """Per model and seed (`dataset, arch, width, method, device, seed`), Hendrycks &
    Dietterich's relative mCE (%) with the `baseline` method as the reference model.

    The reference for a model is the baseline's rows of the same dataset, arch and width and
    backend (the same images), averaged over its seeds; a model with no such baseline (another
    architecture, e.g. a user's model) is compared with the baseline's models of its dataset
    pooled. Undefined (NaN) where the baseline lost no accuracy to a corruption.
    """
    rows = frame[frame["experiment"] == EXPERIMENT]
    if rows.empty:
        return pd.Series(dtype=float, name="relative_mce")
    rows = rows.assign(error=100.0 - rows["value"])
    model = ["dataset", "arch", "width", "method", "device", "seed", "backend"]
    per = rows[rows["metric"] == "acc"]
    clean = rows[rows["metric"] == "clean_acc"]
    base_rows = per[per["method"] == baseline]
    base_clean = clean[clean["method"] == baseline]
    out = {}
    for key, group in per.groupby(model):
        fields = dict(zip(model, key, strict=True))
        near = _matching(base_rows, fields, ("dataset", "arch", "width", "backend"))
        near_clean = _matching(base_clean, fields, ("dataset", "arch", "width", "backend"))
        if near.empty:
            near = _matching(base_rows, fields, ("dataset", "backend"))
            near_clean = _matching(base_clean, fields, ("dataset", "backend"))
        mine = _matching(clean, fields, tuple(model))
        if near.empty or near_clean.empty or mine.empty:
            continue
        ces = []
        for name, errors in group.groupby("attack"):
            base = near[near["attack"] == name].groupby("severity")["error"].mean()
            ordered = errors.set_index("severity")["error"]
            shared = ordered.index.intersection(base.index)
            ces.append(
                relative_ce(
                    ordered[shared].tolist(),
                    float(mine["error"].mean()),
                    base[shared].tolist(),
                    float(near_clean["error"].mean()),
                )
            )
        out[key[:-1]] = sum(ces) / len(ces) if ces else float("nan")
    series = pd.Series(out, name="relative_mce", dtype=float)
    if not series.empty:
        series.index.names = model[:-1]
    return series


def _matching(frame: pd.DataFrame, fields: dict, columns: Sequence[str]) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column in columns:
        mask &= frame[column] == fields[column]
    return frame[mask]
