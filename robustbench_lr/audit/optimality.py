"""Attack optimality (AttackBench, Cinà et al. 2024) from the battery's per-example results.

AttackBench scores an attack by how close its robust-accuracy-vs-ε curve comes to the
reference curve, the per-example best over all attacks: optimality = 1 − (area between the
attack's curve and the reference) / (area between the no-attack curve and the reference), so
1 matches the reference and 0 finds nothing beyond the clean errors.

The battery has no per-example minimal ε of every attack, so the curves live on its ε grid:
the audit ε and the sweep's ε values. Each attack setting (a run, or a run and the sweep
runs that repeat it at larger ε: IFSGM-20) has, per example, the smallest grid ε at which it
is known to fool it: a run at ε fools at every larger ε too (its point is in the larger ball);
DeepFool, unbounded, fools from its perturbation's size on (‖r‖₂, an upper bound on ‖r‖∞).
The reference takes the per-example minimum over every setting. Each setting is scored over
the grid points it was run at (all of them for DeepFool), each point one unit: the sweep
doubles ε, so this is the area on a log-ε axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from robustbench_lr.attacks.search import accuracy_curve
from robustbench_lr.audit.battery import Battery, Run
from robustbench_lr.audit.indicators import perturbation_l2


@dataclass(frozen=True)
class Optimality:
    """One attack setting's optimality and the curves behind it, at `grid` (its ε values)."""

    label: str
    grid: tuple[float, ...]
    acc: tuple[float, ...]  # its robust accuracy (%) at each grid ε
    reference: tuple[float, ...]  # the per-example best over all attacks (%)
    value: float


def settings(b: Battery) -> dict[str, list[str]]:
    """Run labels grouped by setting (runs alike but for ε), each under its smallest-ε label."""
    groups: dict[tuple, list[str]] = {}
    for label, run in b.runs.items():
        params = tuple(sorted((k, v) for k, v in run.params.items() if k != "eps"))
        groups.setdefault((run.attack, run.backend, run.transfer, params), []).append(label)
    eps = {label: b.runs[label].params.get("eps", 0.0) for label in b.runs}
    ordered = [sorted(labels, key=eps.__getitem__) for labels in groups.values()]
    return {labels[0]: labels for labels in ordered}


def _eps_of(runs: Iterable[Run]) -> set[float]:
    """Every ε the bounded runs among `runs` ran at."""
    return {float(r.params["eps"]) for r in runs if "eps" in r.params}


def min_eps(b: Battery, labels: list[str]) -> torch.Tensor:
    """Per example, the smallest ε at which one of `labels` fooled it (+inf if none did; 0 if
    the model gets it wrong clean). A minimum-norm run contributes its perturbation's size."""
    out = torch.where(b.clean, math.inf, 0.0).double()
    for label in labels:
        params = b.runs[label].params
        if "eps" in params:
            size = torch.full_like(out, float(params["eps"]))
        else:
            size = perturbation_l2(b, label).double()
        out = torch.where(~b.flags(label), torch.minimum(out, size), out)
    return out


def optimality(b: Battery) -> Mapping[str, Optimality]:
    """Every attack setting's optimality against the battery's per-example best, by label."""
    points = torch.tensor(sorted(_eps_of(b.runs.values())), dtype=torch.float64)
    groups = settings(b)
    found = {label: min_eps(b, labels) for label, labels in groups.items()}
    best = torch.stack(list(found.values())).amin(0)
    clean = 100.0 * b.clean.double().mean()
    out = {}
    for label, labels in groups.items():
        own = _eps_of(b.runs[k] for k in labels)
        at = points if not own else points[[float(p) in own for p in points.tolist()]]
        # + 1e-9: an example fooled at a grid ε, up to rounding, counts as fooled there.
        acc, ref = accuracy_curve(found[label], at + 1e-9), accuracy_curve(best, at + 1e-9)
        gap = float((clean - ref).sum())
        value = 1.0 - float((acc - ref).sum()) / gap if gap > 0 else 1.0
        out[label] = Optimality(
            label, tuple(at.tolist()), tuple(acc.tolist()), tuple(ref.tolist()), value
        )
    return out
